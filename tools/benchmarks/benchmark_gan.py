"""Training throughput (images/s) of the GAN presets; prints a table, writes JSON.

    python tools/benchmarks/benchmark_gan.py [--presets=celeba_vae_gan,celeba_crvae_gan] [--batch_size=64]
        [--repeats=3] [--steps=3] [--set base_channels=8] [--precisions=float32,bfloat16]
        [--output=benchmark_gan.json]
    python tools/benchmarks/benchmark_gan.py --presets=mnist_dcgan,mnist_wgan,mnist_wgan_gp,mnist_infogan \
        --batch_size=320                                  # the lecture's standalone GANs (MNIST)

Each preset is built at its paper's width (unless overridden), compiled, warmed up (the first
step traces the train function), then timed over `repeats` runs of `steps` full iterations on a
fixed in-memory batch of the preset's image shape: real faces when `--npz` is given for 64x64
presets (else uniform noise). A VAE-GAN iteration is the encoder, decoder, discriminator and Q
forward/backward and both optimizers; a standalone GAN's (`GAN`, `InfoGAN`) is its `critic_steps`
critic updates on `batch / critic_steps` real images each plus one generator update, so images/s
counts real images and a WGAN pays for 5 critic steps per batch. The batch is rounded up to the
preset's multiple (4 for the VAE-GANs, `critic_steps` for the GANs); the median is reported. The
models run in one process, interleaved, so their ratio is comparable on a noisy machine. The
discriminator threshold is set to 1.0 so every step pays for a discriminator update.
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["celeba_vae_gan", "celeba_crvae_gan"], "Presets to time.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (rounded up to the preset's multiple).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_integer("steps", 3, "Training steps per repeat.")
flags.DEFINE_string("npz", None, "Optional npz of uint8 64x64 faces (key 'x') to time on.")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE, e.g. base_channels=8.")
flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA.")
flags.DEFINE_list("precisions", ["float32"], "Precisions to time side by side (float32, bfloat16).")
flags.DEFINE_string("output", "benchmark_gan.json", "JSON output path.")


def _images(batch_size, image_shape):
    import numpy as np

    if FLAGS.npz and tuple(image_shape) == (64, 64, 3):
        faces = np.load(FLAGS.npz)["x"][:batch_size]
        return (faces.astype("float32") / 127.5 - 1.0).astype("float32")
    return np.random.default_rng(0).uniform(-1, 1, (batch_size,) + tuple(image_shape)).astype(
        "float32")


def main(_):
    import keras

    from keras_crvae import presets

    overrides = presets.parse_overrides(FLAGS.set)
    models, batches = {}, {}
    for preset, precision in [(p, q) for p in FLAGS.presets for q in FLAGS.precisions]:
        name = f"{preset} {precision}" if len(FLAGS.precisions) > 1 else preset
        model = presets.from_preset(preset, seed=0, discriminator_threshold=1.0,
                                    precision=precision, **overrides)
        model.compile(model.generator_optimizer, model.discriminator_optimizer,
                      jit_compile=FLAGS.jit_compile)
        multiple, _ = presets.gan_batch_multiple(presets.get_preset(preset, **overrides))
        batch_size = -(-FLAGS.batch_size // multiple) * multiple
        images = batches[name] = _images(batch_size, model.image_shape)
        start = time.perf_counter()
        model.train_on_batch(images)
        trace_seconds = time.perf_counter() - start
        model.train_on_batch(images)
        models[name] = (model, trace_seconds)
    durations = {name: [] for name in models}
    for _ in range(FLAGS.repeats):
        for name, (model, _) in models.items():  # interleaved, so load changes hit both
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                model.train_on_batch(batches[name])
            durations[name].append((time.perf_counter() - start) / FLAGS.steps)
    rows = []
    for name, (model, trace_seconds) in models.items():
        median = statistics.median(durations[name])
        rows.append({
            "preset": name, "batch_size": len(batches[name]), "overrides": overrides,
            "parameters": int(model.count_params()),
            "first_step_seconds": round(trace_seconds, 2),
            "seconds_per_step": median,
            "images_per_second": len(batches[name]) / median,
        })
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'preset':30s} {'params':>10s} {'1st step s':>10s} {'s/step':>8s} {'images/s':>9s}")
    for row in rows:
        print(f"{row['preset']:30s} {row['parameters']:10d} {row['first_step_seconds']:10.1f} "
              f"{row['seconds_per_step']:8.3f} {row['images_per_second']:9.1f}")
    result = {"rows": rows, "backend": keras.backend.backend(), "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "jit_compile": FLAGS.jit_compile,
              "load_average": os.getloadavg()}
    with open(FLAGS.output, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
