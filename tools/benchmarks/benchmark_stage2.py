"""Throughput of one Stage2 training step and of image completion; prints a table, writes JSON.

    python tools/benchmarks/benchmark_stage2.py [--stage1_model=PATH.keras] [--repeats=3] [--steps=2]
        [--completion_steps=20] [--completion_batches=1,32,128] [--output=benchmark_stage2.json]

Stage2 (`celeba_vae_gan_stage2`, StackGAN Stage-II on a frozen Stage1): one full iteration (Stage1
encode/decode of a posterior and a prior sample, G on both, D on real and both fakes, the perceptual
features of real and generated images, both optimizers; the discriminator threshold set to 1.0 so
every step pays for its update), timed after a warm-up step (tracing) over `repeats` runs of `steps`
steps; median images/s. Configurations: the 32 -> 64 instance of docs (G 32 channels, 2 residual
blocks, D 32) with and without the perceptual term (VGG16 relu2_2, random weights: the cost is the
same as with ImageNet weights), and the paper's 64 -> 128 generator (G 128 channels, 4 residual
blocks, D 64) at batch 4. The ratio column is each row's time per image over the first row's.

Completion (`keras_crvae.completion.complete` on the Stage1 model), per batch size after a warm-up
call: calls of `completion_steps` and of twice as many steps are timed; their difference gives the
cost of one Adam step (reported as image-steps/s, the ratio column), the rest is the fixed cost of a
call (building and tracing its small model); images/s is for a 200-step completion; the Stage1
model is `--stage1_model` (e.g. a trained `celeba_vae_gan`) or, without it, an untrained
`celeba_vae_gan` at base_channels=16, discriminator_channels=32 (same cost per step).

Each row records the 1-minute load average before and after it: on a shared 2-core machine the
numbers move with the load.
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("stage1_model", None, "A trained Stage1 .keras (default: an untrained "
                    "celeba_vae_gan at base_channels=16).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_integer("steps", 2, "Stage2 training steps per repeat.")
flags.DEFINE_integer("completion_steps", 20, "Adam steps per timed completion call.")
flags.DEFINE_list("completion_batches", ["1", "32", "128"], "Completion batch sizes.")
flags.DEFINE_boolean("paper_size", True, "Also time the 64 -> 128 generator at the paper's widths.")
flags.DEFINE_boolean("stage2", True, "Time the Stage2 steps (--nostage2: completion only).")
flags.DEFINE_string("output", "benchmark_stage2.json", "JSON output path.")

STAGE2_CONFIGS = [
    # name, batch, overrides
    ("32->64 G32 D32 no perceptual", 32,
     dict(input_size=32, output_size=64, generator_channels=32, residual_blocks=2,
          discriminator_channels=32, perceptual_weight=0.0)),
    ("32->64 G32 D32 + VGG16 relu2_2", 32,
     dict(input_size=32, output_size=64, generator_channels=32, residual_blocks=2,
          discriminator_channels=32, perceptual_weights="none")),
    ("64->128 G128 D64 + VGG16 relu2_2 (paper)", 4,
     dict(input_size=64, output_size=128, perceptual_weights="none")),
]


def _load():
    return [round(v, 2) for v in os.getloadavg()]


def _stage1(keras_crvae):
    import keras

    if FLAGS.stage1_model:
        return FLAGS.stage1_model, keras.saving.load_model(FLAGS.stage1_model, compile=False)
    model = keras_crvae.from_preset("celeba_vae_gan", base_channels=16, discriminator_channels=32,
                                    compile=False, seed=0)
    return "untrained celeba_vae_gan (16/32)", model


def main(_):
    import tempfile

    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae import completion

    stage1_name, stage1 = _stage1(keras_crvae)
    stage1_path = os.path.join(tempfile.mkdtemp(), "stage1.keras")
    stage1.save(stage1_path)
    rng = np.random.default_rng(0)
    rows = []
    configs = STAGE2_CONFIGS if FLAGS.paper_size else STAGE2_CONFIGS[:2]
    configs = configs if FLAGS.stage2 else []
    for name, batch, overrides in configs:
        model = keras_crvae.from_preset("celeba_vae_gan_stage2", stage1_model=stage1_path,
                                        discriminator_threshold=1.0, seed=0, **overrides)
        size = model.output_size
        images = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
        load_before = _load()
        start = time.perf_counter()
        model.train_on_batch(images)
        trace = time.perf_counter() - start
        times = []
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                model.train_on_batch(images)
            times.append((time.perf_counter() - start) / FLAGS.steps)
        step = statistics.median(times)
        rows.append({"benchmark": "stage2_step", "config": name, "batch": batch,
                     "seconds_per_step": round(step, 3), "images_per_second": round(batch / step, 2),
                     "trace_seconds": round(trace, 1), "load_before": load_before,
                     "load_after": _load(),
                     "generator_parameters": int(model.generator.count_params()),
                     "discriminator_parameters": int(model.discriminator.count_params())})
        print(rows[-1], flush=True)

    faces = rng.uniform(-1, 1, (max(int(b) for b in FLAGS.completion_batches), 64, 64, 3))
    faces = faces.astype("float32")
    short, long = FLAGS.completion_steps, 2 * FLAGS.completion_steps
    for batch in (int(b) for b in FLAGS.completion_batches):
        mask = completion.make_mask("centre", (64, 64, 3))
        completion.complete(stage1, faces[:batch], mask, steps=2)  # warm-up
        load_before = _load()
        timings = {short: [], long: []}
        for _ in range(FLAGS.repeats):
            for steps in (short, long):
                start = time.perf_counter()
                completion.complete(stage1, faces[:batch], mask, steps=steps)
                timings[steps].append(time.perf_counter() - start)
        t_short, t_long = (statistics.median(timings[k]) for k in (short, long))
        per_step = max(t_long - t_short, 1e-9) / (long - short)
        # Each call builds and traces its own small model (the z variable has the batch's
        # shape): a fixed cost per call, the rest is per Adam step.
        rows.append({"benchmark": "completion", "config": f"batch {batch}", "batch": batch,
                     "seconds_per_call_of_200_steps": round(t_short + per_step * (200 - short), 2),
                     "seconds_per_step": round(per_step, 4),
                     "fixed_seconds_per_call": round(t_short - per_step * short, 2),
                     "image_steps_per_second": round(batch / per_step, 1),
                     "images_per_second_at_200_steps": round(
                         batch / (t_short + per_step * (200 - short)), 3),
                     "load_before": load_before, "load_after": _load()})
        print(rows[-1], flush=True)

    first = rows[0]["seconds_per_step"] / rows[0]["batch"] if FLAGS.stage2 else 1.0
    print(f"\n{'benchmark':12s} {'configuration':42s} {'batch':>5s} {'images/s':>10s} "
          f"{'ratio':>6s} {'load':>11s}")
    for row in rows:
        if row["benchmark"] == "stage2_step":
            per_image = row["seconds_per_step"] / row["batch"]
            value, ratio = f"{row['images_per_second']:.2f}", f"{per_image / first:.2f}"
        else:
            value = f"{row['images_per_second_at_200_steps']:.3f}"
            ratio = f"{row['image_steps_per_second']:.0f} i*s"
        load = f"{row['load_before'][0]}->{row['load_after'][0]}"
        print(f"{row['benchmark']:12s} {row['config']:42s} {row['batch']:5d} {value:>10s} "
              f"{ratio:>6s} {load:>11s}")
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "backend": keras.backend.backend(), "stage1": stage1_name,
              "threads": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS",
                                                          "TF_NUM_INTEROP_THREADS")},
              "rows": rows}
    with open(FLAGS.output, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
