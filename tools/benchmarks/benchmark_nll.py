"""Overhead of `importance_sampled_nll` against plain decoder forward passes; table + JSON.

    python tools/benchmarks/benchmark_nll.py [--preset=mnist_crvae] [--images=20] [--num_samples=250]
        [--decoder_batch=5000] [--repeats=3] [--output=benchmark_nll.json]

Both sides run at the same decoder batch (`decoder_batch` rows = chunk * images): the evaluator's
decoder passes per second (one pass = one latent sample of one image, including encoding, sampling,
the Bernoulli log-likelihood and the streaming log-sum-exp) against `model.decode_logits` on the same
number of random latents. The ratio is the evaluator's overhead (1.0 = none).
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "mnist_crvae", "Model preset (untrained weights: speed only).")
flags.DEFINE_integer("images", 20, "Images per evaluator batch.")
flags.DEFINE_integer("num_samples", 250, "Importance samples per image.")
flags.DEFINE_integer("decoder_batch", 5000, "Rows per decoder call on both sides.")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_string("output", "benchmark_nll.json", "JSON output path.")


def main(_):
    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae import evaluation

    model = keras_crvae.from_preset(FLAGS.preset, seed=0)
    images = (np.random.default_rng(0).random((FLAGS.images, 28, 28, 1)) < 0.3).astype("float32")
    # NumPy latents: the same compiled decoder path the evaluator uses (VAE.decode_logits).
    z = np.random.default_rng(0).standard_normal(
        (FLAGS.decoder_batch,) + model.latent_shape).astype("float32")
    passes = FLAGS.images * FLAGS.num_samples
    calls = max(1, passes // FLAGS.decoder_batch)

    def plain():
        for _ in range(calls):
            keras.ops.convert_to_numpy(model.decode_logits(z))

    def evaluator():
        evaluation.importance_sampled_nll(model, images, num_samples=FLAGS.num_samples,
                                          batch_size=FLAGS.images,
                                          max_decoder_batch=FLAGS.decoder_batch, seed=0, verbose=0)

    timings = {}
    for name, function in (("plain_decoder", plain), ("importance_sampled_nll", evaluator)):
        function()  # warm-up
        durations = []
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            function()
            durations.append(time.perf_counter() - start)
        rows = calls * FLAGS.decoder_batch if name == "plain_decoder" else passes
        timings[name] = rows / statistics.median(durations)
    ratio = timings["plain_decoder"] / timings["importance_sampled_nll"]
    print(f"{'path':24s} {'decoder passes/s':>17s}")
    for name, rate in timings.items():
        print(f"{name:24s} {rate:17.1f}")
    print(f"overhead ratio (plain / evaluator): {ratio:.3f}")
    report = {"preset": FLAGS.preset, "backend": keras.backend.backend(),
              "decoder_batch": FLAGS.decoder_batch, "images": FLAGS.images,
              "num_samples": FLAGS.num_samples, "passes_per_second": timings,
              "overhead_ratio": ratio, "machine": platform.platform(), "cpu_count": os.cpu_count()}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
