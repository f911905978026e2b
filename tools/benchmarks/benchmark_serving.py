"""Serving speed of an exported SavedModel's `decode` and `sample` signatures; table + JSON.

    python tools/benchmarks/benchmark_serving.py \
        [--saved_model=saved_models/mnist_crvae_narrow/saved_model/1]
        [--latency_calls=200] [--batch_size=64] [--throughput_calls=30] [--warmup=10]
        [--output=benchmark_serving.json]

The SavedModel is loaded with `tf.saved_model.load`, as TF Serving's Python-free path loads it, and
each signature is called through `loaded.signatures[name]` with float32 latents `z ~ N(0, I)`:
- batch-1 latency: `latency_calls` single-image calls, each timed until its outputs are NumPy
  arrays; reported as p50 / p90 in milliseconds;
- batch throughput: `throughput_calls` calls of `batch_size` latents; images per second.
Without `--saved_model`, an untrained `--preset` model is exported to a temporary folder first
(speed does not depend on the weights). Numbers include no network or request (de)serialisation.
"""

import os
import platform
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
DEFAULT_SAVED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))),
                                   "saved_models", "mnist_crvae_narrow", "saved_model", "1")
flags.DEFINE_string("saved_model", None,
                    "Version folder of an exported SavedModel (default: the shipped "
                    "mnist_crvae_narrow's, else a fresh export of --preset).")
flags.DEFINE_string("preset", "mnist_crvae", "Preset exported when no SavedModel is given.")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE for the fresh export.")
flags.DEFINE_multi_string("signature", ["decode", "sample"], "Signatures measured.")
flags.DEFINE_integer("latency_calls", 200, "Timed batch-1 calls per signature.")
flags.DEFINE_integer("batch_size", 64, "Batch size of the throughput measurement.")
flags.DEFINE_integer("throughput_calls", 30, "Timed batched calls per signature.")
flags.DEFINE_integer("warmup", 10, "Untimed calls first (graph optimisation, allocations).")
flags.DEFINE_integer("seed", 0, "Latent noise seed.")
flags.DEFINE_string("output", "benchmark_serving.json", "JSON output path.")


def _export_preset(directory):
    import keras_crvae
    from keras_crvae.export import export_saved_model

    overrides = {}
    for item in FLAGS.set:
        key, value = item.split("=", 1)
        overrides[key] = int(value) if value.lstrip("-").isdigit() else value
    model = keras_crvae.from_preset(FLAGS.preset, compile=False, **overrides)
    return export_saved_model(model, directory)


def _percentile(values, fraction):
    import numpy as np

    return float(np.percentile(np.asarray(values), 100 * fraction))


def measure(function, latent_shape, latency_calls, batch_size, throughput_calls, warmup, seed=0):
    """Batch-1 latency percentiles (ms) and batched throughput (images/s) of one signature.

    Args:
        function: a loaded SavedModel signature taking `z` `(B, *latent_shape)` float32.
        latent_shape: tuple, the per-example latent shape.
        latency_calls, batch_size, throughput_calls, warmup: see the module docstring.
        seed: int, the latent noise seed.

    Returns:
        dict with `p50_ms`, `p90_ms`, `mean_ms` (batch 1) and `images_per_second` (batch_size).
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    single = tf.constant(rng.standard_normal((1,) + tuple(latent_shape)).astype("float32"))
    batch = tf.constant(rng.standard_normal((batch_size,) + tuple(latent_shape)).astype("float32"))

    def call(z):
        return {name: value.numpy() for name, value in function(z=z).items()}

    for _ in range(warmup):
        call(single)
        call(batch)
    latencies = []
    for _ in range(latency_calls):
        start = time.perf_counter()
        call(single)
        latencies.append(1000.0 * (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(throughput_calls):
        call(batch)
    seconds = time.perf_counter() - start
    return {
        "p50_ms": round(_percentile(latencies, 0.5), 3),
        "p90_ms": round(_percentile(latencies, 0.9), 3),
        "mean_ms": round(float(np.mean(latencies)), 3),
        "batch_size": batch_size,
        "images_per_second": round(throughput_calls * batch_size / seconds, 1),
    }


def main(_):
    import tensorflow as tf

    from keras_crvae.export import read_metadata
    from keras_crvae.io import write_json

    directory = FLAGS.saved_model
    temporary = None
    if directory is None and os.path.isdir(DEFAULT_SAVED_MODEL):
        directory = DEFAULT_SAVED_MODEL
    if directory is None:
        temporary = tempfile.TemporaryDirectory()
        directory = _export_preset(temporary.name)
    loaded = tf.saved_model.load(directory)
    latent_shape = tuple(read_metadata(directory)["latent_shape"])

    results = {}
    for name in FLAGS.signature:
        if name not in loaded.signatures:
            raise ValueError(f"--signature={name!r} is not in the SavedModel: {list(loaded.signatures)}.")
        results[name] = measure(loaded.signatures[name], latent_shape, FLAGS.latency_calls,
                                FLAGS.batch_size, FLAGS.throughput_calls, FLAGS.warmup, FLAGS.seed)

    print(f"{'signature':12s} {'batch-1 p50 ms':>15s} {'p90 ms':>8s} "
          f"{f'batch-{FLAGS.batch_size} images/s':>20s}")
    for name, row in results.items():
        print(f"{name:12s} {row['p50_ms']:15.2f} {row['p90_ms']:8.2f} {row['images_per_second']:20.1f}")
    report = {
        "saved_model": directory if temporary is None else f"fresh export of {FLAGS.preset}",
        "signatures": results,
        "latency_calls": FLAGS.latency_calls,
        "throughput_calls": FLAGS.throughput_calls,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "tensorflow": tf.__version__,
    }
    write_json(report, FLAGS.output)
    print(f"Written to {FLAGS.output}")
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    app.run(main)
