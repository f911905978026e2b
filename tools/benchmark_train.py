"""Training throughput (images/s) of one `fit` step per MNIST and sprites preset; prints a table,
writes JSON.

    python tools/benchmark_train.py [--presets=mnist_vae,mnist_crvae] [--batch_size=128]
        [--repeats=5] [--steps=5] [--output=benchmark_train.json]

Each preset is compiled once, warmed up, then timed over `repeats` runs of `steps` training steps on
a fixed in-memory batch (so the input pipeline is not measured); the median is reported. All presets
run in one process so their ratios are comparable on a noisy machine. `--batch_size` applies to every
preset (the IWAE-table presets train with 20; pass `--batch_size=20` to time them as they train).
The sprites presets (64x64x1, `presets/disentangling.py`) time on random binary 64x64 images; a
FactorVAE step's batch holds both halves (the VAE's and the discriminator's), so its images/s
counts both.
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", None, "Presets to time (default: every MNIST preset: Table 1, the "
                  "2-stochastic-layer crVAE / VAE and the IWAE-table MLPs; and the sprites "
                  "presets).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.")
flags.DEFINE_integer("steps", 5, "Training steps per repeat.")
flags.DEFINE_string("output", "benchmark_train.json", "JSON output path.")


def time_preset(name, batch_size, repeats, steps):
    import keras
    import numpy as np

    import keras_crvae

    model = keras_crvae.from_preset(name, seed=0)
    shape = tuple(model.image_shape)  # (28, 28, 1) for MNIST, (64, 64, 1) for the sprites
    images = (np.random.default_rng(0).random((batch_size,) + shape) < 0.3).astype("float32")
    model.train_on_batch(images)  # trace / compile
    model.train_on_batch(images)
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images)
        durations.append((time.perf_counter() - start) / steps)
    median = statistics.median(durations)
    return {
        "preset": name,
        "backend": keras.backend.backend(),
        "parameters": int(model.count_params()),
        "seconds_per_step": median,
        "images_per_second": batch_size / median,
    }


def main(_):
    from keras_crvae import presets

    names = FLAGS.presets or [n for n in presets.list_presets() if n != "mnist_crvae_quickstart"
                              and not isinstance(presets.PRESETS[n], presets.TwoStagePreset)
                              and not presets.is_gan_preset(n)]
    rows = [time_preset(name, FLAGS.batch_size, FLAGS.repeats, FLAGS.steps) for name in names]
    print(f"{'preset':26s} {'params':>10s} {'s/step':>8s} {'images/s':>9s}")
    for row in rows:
        print(f"{row['preset']:26s} {row['parameters']:10d} {row['seconds_per_step']:8.3f} "
              f"{row['images_per_second']:9.1f}")
    report = {"batch_size": FLAGS.batch_size, "repeats": FLAGS.repeats, "steps": FLAGS.steps,
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "results": rows}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
