"""Where one training step's time goes, op by op (TensorFlow's profiler), next to the machine's
matmul and convolution ceilings measured in the same run.

    python tools/benchmarks/profile_step.py [--presets=mnist_crvae,mnist_vae] [--precision=bfloat16]
        [--kernels=fast] [--threads=1] [--steps=3] [--output=profile_step.json]

Per preset: the model is built and compiled as `crvae train` builds it, warmed up on a fixed batch,
then `--steps` `train_on_batch` calls run under `tf.profiler`. The ops each step executed (from the
profiler's XSpace, no TensorBoard needed) are summed per op type and per part of the network:

| part | ops |
|---|---|
| conv | convolutions and transposed convolutions, their bias adds and gradients |
| lstm/recurrence | the channel-recurrent block: LSTMs, per-step projections, their gradients |
| batchnorm | BatchNormalization and its gradient (`FusedBatchNormV3` on the fast path) |
| activation | LeakyReLU / CReLU and gradients |
| optimizer | the Adam update (`ResourceApplyAdam` on the fast path) |
| cast | dtype casts outside the parts above |
| other | the loss, sampling, everything else |

`--kernels=reference` profiles the Keras layers the fast kernels replace (tools/benchmarks/kernels.py).
The ceilings: a 2048x2048x2048 matmul and a 3x3 convolution (128x14x14x64 -> 64, the size of the
MNIST decoder's), in float32 and bfloat16, as GFLOP/s. The share of the ceiling a step reaches needs
the step's arithmetic: `benchmark_train.py` counts it on JAX (`gflop_per_step`).
TensorFlow only (the profiler's op names); writes a table and JSON.
"""

import collections
import json
import os
import platform
import tempfile
import time

from absl import app, flags

from op_profile import PARTS, op_times, part_of

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_crvae", "mnist_vae"], "Presets to profile.")
flags.DEFINE_string("precision", "bfloat16", "float32 or bfloat16 (mixed).")
flags.DEFINE_string("kernels", "fast", "'fast' (as shipped), 'reference' (Keras' own layers) or "
                    "'no_NAME' (tools/benchmarks/kernels.py).")
flags.DEFINE_integer("threads", 1, "TensorFlow intra-op threads (inter-op: 1).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("steps", 3, "Profiled training steps (after three warm-up steps).")
flags.DEFINE_integer("top", 12, "Op types listed per preset.")
flags.DEFINE_string("output", "profile_step.json", "JSON output path.")

def profile_preset(name, precision, kernels, batch_size, steps):
    import numpy as np
    import tensorflow as tf

    import keras_crvae
    import kernels as kernel_switch

    with kernel_switch.kernels_context(kernels):
        model = keras_crvae.from_preset(name, seed=0, precision=precision)
        shape = (batch_size,) + tuple(model.image_shape)
        images = (np.random.default_rng(0).random(shape) < 0.3).astype("float32")
        for _ in range(3):
            model.train_on_batch(images)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images)
        seconds = (time.perf_counter() - start) / steps
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            for _ in range(steps):
                model.train_on_batch(images)
            tf.profiler.experimental.stop()
            totals = op_times(logdir)
    per_step = lambda picoseconds: picoseconds / 1e9 / steps  # milliseconds per step
    parts = collections.Counter()
    types = collections.Counter()
    for (op_name, op_type), picoseconds in totals.items():
        parts[part_of(op_name, op_type)] += picoseconds
        types[op_type] += picoseconds
    total = sum(totals.values())
    return {
        "preset": name, "precision": model.dtype_policy.name, "kernels": kernels,
        "seconds_per_step_unprofiled": round(seconds, 4),
        "images_per_second_unprofiled": round(batch_size / seconds, 1),
        "op_milliseconds_per_step": round(per_step(total), 1),
        "parts_ms": {part: round(per_step(parts[part]), 1) for part in PARTS},
        "parts_share": {part: round(parts[part] / total, 4) for part in PARTS},
        "op_types_ms": {op_type: round(per_step(value), 1)
                        for op_type, value in types.most_common()},
    }


def ceilings(repeats=5):
    """GFLOP/s of a 2048^3 matmul and a 3x3 conv (128x14x14x64 -> 64), float32 and bfloat16."""
    import tensorflow as tf

    results = {}
    matmul = tf.random.normal((2048, 2048))
    image = tf.random.normal((128, 14, 14, 64))
    kernel = tf.random.normal((3, 3, 64, 64))
    cases = {
        "matmul_2048": (lambda a: tf.matmul(a, a), (matmul,), 2 * 2048 ** 3),
        "conv3x3_128x14x14x64": (lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"), (image, kernel),
                                 2 * 128 * 14 * 14 * 64 * 64 * 9),
    }
    for dtype in ("float32", "bfloat16"):
        for case, (function, arguments, flop) in cases.items():
            arguments = [tf.cast(a, dtype) for a in arguments]
            compiled = tf.function(function)
            compiled(*arguments).numpy()
            start = time.perf_counter()
            for _ in range(repeats):
                compiled(*arguments).numpy()
            seconds = (time.perf_counter() - start) / repeats
            results[f"{case}_{dtype}"] = round(flop / seconds / 1e9, 1)
    return results


def main(_):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise app.UsageError("profile_step.py reads TensorFlow's profiler: run it with "
                             "KERAS_BACKEND=tensorflow.")
    import kernels as kernel_switch

    if FLAGS.kernels not in kernel_switch.SPECS:
        raise app.UsageError(f"--kernels={FLAGS.kernels}: expected one of "
                             f"{', '.join(kernel_switch.SPECS)}.")
    if FLAGS.threads < 1 or FLAGS.steps < 1:
        raise app.UsageError("--threads and --steps must be >= 1.")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = [profile_preset(name, FLAGS.precision, FLAGS.kernels, FLAGS.batch_size, FLAGS.steps)
            for name in FLAGS.presets]
    limits = ceilings()
    for row in rows:
        print(f"\n{row['preset']} ({row['precision']}, {row['kernels']} kernels, "
              f"{FLAGS.threads} thread(s)): {row['images_per_second_unprofiled']} images/s "
              f"unprofiled; ops {row['op_milliseconds_per_step']} ms per step")
        for part in PARTS:
            print(f"  {part:18s} {row['parts_ms'][part]:8.1f} ms {100 * row['parts_share'][part]:5.1f}%")
        for op_type, milliseconds in list(row["op_types_ms"].items())[:FLAGS.top]:
            print(f"    {op_type:42s} {milliseconds:8.1f} ms")
    print("\nCeilings (GFLOP/s): " + ", ".join(f"{k} {v}" for k, v in limits.items()))
    load = list(os.getloadavg())
    print(f"Load average (1, 5, 15 min): {load}")
    report = {"threads": FLAGS.threads, "batch_size": FLAGS.batch_size, "steps": FLAGS.steps,
              "ceilings_gflops": limits, "load_average": load, "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "results": rows}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
