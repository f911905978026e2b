"""Decoding with and without the BatchNormalization fold (`keras_crvae.networks.inference_network`):
samples per second and error against float32, side by side in one run; table + JSON.

    python tools/benchmarks/benchmark_decode.py [--presets=mnist_crvae,mnist_vae]
        [--precisions=bfloat16,float32] [--batch=2000] [--rounds=3] [--threads=1]
        [--output=benchmark_decode.json]

Per preset and precision, three ways to run the same decoder on the same `--batch` latents (the
importance-sampled NLL's decoder batch), each through its compiled predict function, interleaved
over `--rounds` rounds (best round reported):

| path | what runs |
|---|---|
| `network` | the decoder as built: convolution, bias, BatchNormalization, activation as separate ops |
| `folded` | `InferenceNetwork(decoder, phases=False)`: BatchNormalization folded into the convolutions |
| `folded_phases` | `InferenceNetwork(decoder, phases=True)`: also the 4x4 stride-2 transposed convolutions as four phases with bias and activation before the interleave |

`run_network` (every model's decode / sample) uses `phases="auto"`: the `folded_phases` path on
JAX and for bfloat16 on CPUs with AMX, the `folded` path elsewhere on TensorFlow (float32, and
bfloat16 without AMX), as measured on both CPU kinds (docs/performance.md section 0).

Error: each path's logits against the float32 `network` path on the same weights (mean and max
absolute difference; the moving statistics are set to random values so the fold has work to do).
Speed only needs random weights. Report the load average with the numbers (printed, and in the JSON).

`--profile` (TensorFlow): one more call of each path under TensorFlow's profiler, its op time summed
per op type (`op_profile.py`), the top `--top` types printed and all kept in the JSON. Profile on a
quiet machine: memory-bound ops are inflated beside other jobs (docs/performance.md, section 0).
"""

import json
import os
import platform
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_crvae", "mnist_vae"], "Presets whose decoders run.")
flags.DEFINE_list("precisions", ["bfloat16", "float32"], "Precisions (bfloat16: mixed).")
flags.DEFINE_integer("batch", 2000, "Latents per decoder call.")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds; the best is reported.")
flags.DEFINE_integer("threads", 1, "Intra-op threads (TensorFlow).")
flags.DEFINE_string("output", "benchmark_decode.json", "JSON output path.")
flags.DEFINE_bool("profile", False, "Also profile one call of each path (TensorFlow only).")
flags.DEFINE_integer("top", 8, "Op types printed per profiled path.")

PATHS = ("network", "folded", "folded_phases")


def randomize_moving_statistics(network, rng):
    """Moving means ~ N(0, 0.3), moving variances and gammas ~ U(0.5, 1.5), betas ~ N(0, 0.3)."""
    import keras

    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.weights:
                spread = "variance" in variable.path or "gamma" in variable.path
                variable.assign(rng.uniform(0.5, 1.5, variable.shape) if spread
                                else rng.normal(0.0, 0.3, variable.shape))


def op_type_milliseconds(network, z):
    """{op type: milliseconds} of one profiled `network.predict_on_batch(z)`, largest first."""
    import collections
    import tempfile

    import keras
    import tensorflow as tf

    from op_profile import op_times  # tools/benchmarks/op_profile.py

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        keras.ops.convert_to_numpy(network.predict_on_batch(z))
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    types = collections.Counter()
    for (_, op_type), picoseconds in totals.items():
        types[op_type] += picoseconds
    return {op_type: round(value / 1e9, 1) for op_type, value in types.most_common()}


def run_preset(name, precision, rng):
    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae.networks.inference import InferenceNetwork

    reference = keras_crvae.from_preset(name, seed=0, precision="float32")
    randomize_moving_statistics(reference.decoder, rng)
    model = keras_crvae.from_preset(name, seed=0, precision=precision)
    model.decoder.set_weights(reference.decoder.get_weights())
    networks = {"network": model.decoder,
                "folded": InferenceNetwork(model.decoder, phases=False),
                "folded_phases": InferenceNetwork(model.decoder, phases=True)}
    z = rng.standard_normal((FLAGS.batch,) + tuple(model.latent_shape)).astype("float32")
    exact = keras.ops.convert_to_numpy(reference.decoder.predict_on_batch(z)).astype("float64")
    errors, seconds = {}, {path: [] for path in PATHS}
    for path, network in networks.items():
        logits = keras.ops.convert_to_numpy(network.predict_on_batch(z)).astype("float64")
        difference = np.abs(logits - exact)
        errors[path] = {"mean_abs": float(difference.mean()), "max_abs": float(difference.max())}
    for _ in range(FLAGS.rounds):
        for path, network in networks.items():
            start = time.perf_counter()
            keras.ops.convert_to_numpy(network.predict_on_batch(z))
            seconds[path].append(time.perf_counter() - start)
    best = {path: min(values) for path, values in seconds.items()}
    profiles = {path: op_type_milliseconds(network, z) for path, network in networks.items()} if (
        FLAGS.profile) else None
    return {"op_type_milliseconds": profiles, "preset": name, "precision": precision, "batch": FLAGS.batch,
            "folded_layers": len(networks["folded"].folded),
            "samples_per_second": {path: round(FLAGS.batch / best[path], 1) for path in PATHS},
            "speedup_over_network": {path: round(best["network"] / best[path], 3) for path in PATHS},
            "error_vs_float32": errors, "seconds_per_round": seconds}


def main(_):
    import keras
    import numpy as np

    if FLAGS.profile and keras.backend.backend() != "tensorflow":
        raise app.UsageError("--profile reads TensorFlow's profiler: run with "
                             "KERAS_BACKEND=tensorflow.")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    rows = [run_preset(name, precision, rng)
            for name in FLAGS.presets for precision in FLAGS.precisions]
    print(f"\n{'preset':14s} {'precision':9s} " + " ".join(f"{p + ' samples/s':>24s}" for p in PATHS)
          + "   error vs float32 (mean abs)")
    for row in rows:
        rates = " ".join(f"{row['samples_per_second'][p]:>10.1f} ({row['speedup_over_network'][p]:.2f}x)"
                         .rjust(24) for p in PATHS)
        error = ", ".join(f"{p} {row['error_vs_float32'][p]['mean_abs']:.2e}" for p in PATHS)
        print(f"{row['preset']:14s} {row['precision']:9s} {rates}   {error}")
    for row in rows:
        for path, types in (row["op_type_milliseconds"] or {}).items():
            total = sum(types.values())
            top = ", ".join(f"{op_type} {ms:.0f} ({100 * ms / total:.0f}%)"
                            for op_type, ms in list(types.items())[:FLAGS.top])
            print(f"{row['preset']} {row['precision']} {path}: {total:.0f} ms of ops: {top}")
    load = list(os.getloadavg())
    print(f"Backend {keras.backend.backend()}, {FLAGS.threads} thread(s); load average (1, 5, 15 "
          f"min): {load}")
    report = {"backend": keras.backend.backend(), "threads": FLAGS.threads, "rounds": FLAGS.rounds,
              "load_average": load, "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "results": rows}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
