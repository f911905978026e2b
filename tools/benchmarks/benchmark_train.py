"""Training throughput (images/s) of one `fit` step per MNIST and sprites preset; prints a table,
writes JSON.

    python tools/benchmarks/benchmark_train.py [--presets=mnist_vae,mnist_crvae] [--batch_size=128]
        [--repeats=5] [--steps=5] [--precisions=float32,bfloat16]
        [--transposed_convs=phases,native] [--output=benchmark_train.json]

Each preset is compiled once, warmed up, then timed over `repeats` runs of `steps` training steps on
a fixed in-memory batch (so the input pipeline is not measured); the median is reported. All presets
run in one process so their ratios are comparable on a noisy machine. `--batch_size` applies to every
preset (the IWAE-table presets train with 20; pass `--batch_size=20` to time them as they train).
The sprites presets (64x64x1, `presets/disentangling.py`) time on random binary 64x64 images; a
FactorVAE step's batch holds both halves (the VAE's and the discriminator's), so its images/s
counts both.

On the JAX backend each row also gives the arithmetic of a step, `gflop_per_step` (XLA's cost
analysis of the forward and backward pass of the model's call on the batch; the optimizer update
and the loss's elementwise terms are left out, a small share), and the rate it ran at, `tflops` =
gflop_per_step / seconds_per_step / 1000: a rate far below the device's peak with many GFLOP per
step says the step is bound by its arithmetic precision and kernels, not by dispatch.
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
flags.DEFINE_list("precisions", ["preset"], "Training precisions to time each preset under, side "
                  "by side: 'preset' (the preset's own), 'float32', 'bfloat16' (mixed, "
                  "keras_crvae.precision); e.g. float32,bfloat16 on a GPU.")
flags.DEFINE_list("transposed_convs", ["auto"], "How the 4x4 stride-2 transposed convolutions run, "
                  "side by side: 'auto' (the layer's default: four phases on JAX, the native op "
                  "elsewhere), 'phases', 'native' (keras_crvae.layers.PhaseConv2DTranspose).")
flags.DEFINE_list("kernels", ["fast"], "Which kernels each row trains with, side by side: 'fast' "
                  "(as shipped), 'reference' (Keras' own BatchNormalization, Cropping2D, LSTM and "
                  "Adam update), or 'no_NAME' (all fast but NAME, to measure one change alone; "
                  "NAME in batch_norm, crop, lstm, adam: tools/benchmarks/kernels.py).")
flags.DEFINE_bool("input_pipeline", True, "Also time the MNIST training input pipeline alone "
                  "(`data.binarized_dataset` over the packaged images: shuffle, batch, dynamic "
                  "binarization) and give each 28x28 row's ratio pipeline / step (goal: >= 5x, "
                  "issue 32).")
flags.DEFINE_string("output", "benchmark_train.json", "JSON output path.")


def step_gflops(model, images):
    """GFLOP of one forward + backward pass of `model` on `images` (JAX: XLA's cost analysis of the
    compiled gradient), or None on other backends or when XLA gives no count."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def summed_outputs(trainable, images):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
        leaves = jax.tree_util.tree_leaves(outputs)
        return sum(jax.numpy.sum(leaf.astype("float32")) for leaf in leaves)

    try:
        compiled = jax.jit(jax.grad(summed_outputs)).lower(trainable, images).compile()
    except Exception as error:  # a model whose call does not take an image batch alone
        print(f"{model.name}: no GFLOP count ({type(error).__name__}: {error})")
        return None
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return None if not flops or flops < 0 else flops / 1e9


def time_preset(name, batch_size, repeats, steps, precision="preset", transposed_conv="auto",
                kernels="fast"):
    import kernels as kernel_switch

    with kernel_switch.kernels_context(kernels):
        row = _time_preset(name, batch_size, repeats, steps, precision, transposed_conv)
    row["kernels"] = kernels
    return row


def _time_preset(name, batch_size, repeats, steps, precision, transposed_conv):
    import keras
    import numpy as np

    import keras_crvae
    from keras_crvae.layers import PhaseConv2DTranspose

    overrides = {} if precision == "preset" else {"precision": precision}
    model = keras_crvae.from_preset(name, seed=0, **overrides)
    implementation = {"auto": "auto", "phases": True, "native": False}[transposed_conv]
    for layer in model._flatten_layers():
        if isinstance(layer, PhaseConv2DTranspose):  # read when the step is traced, below
            layer.phase_implementation = implementation
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
    gflops = step_gflops(model, images)
    return {
        "preset": name,
        "precision": model.dtype_policy.name,
        "transposed_conv": transposed_conv,
        "backend": keras.backend.backend(),
        "parameters": int(model.count_params()),
        "image_shape": list(shape),
        "seconds_per_step": median,
        "images_per_second": batch_size / median,
        "gflop_per_step": None if gflops is None else round(gflops, 2),
        "tflops": None if gflops is None else round(gflops / median / 1000, 3),
    }


def time_input_pipeline(batch_size, batches=200):
    """Images/s of the MNIST training pipeline alone: `data.binarized_dataset` (dynamic
    binarization, reshuffled each epoch) over the packaged 10,000 images, `batches` batches after
    one warm-up batch, repeating epochs as needed."""
    from keras_crvae import data

    images = data.load_embedded_mnist()["x_train"]
    dataset = data.binarized_dataset(images, batch_size=batch_size, seed=0).repeat()
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(_):
    from keras_crvae import presets

    names = FLAGS.presets or [n for n in presets.list_presets() if n != "mnist_crvae_quickstart"
                              and not isinstance(presets.PRESETS[n], presets.TwoStagePreset)
                              and not presets.is_gan_preset(n)]
    from keras_crvae import precision as crvae_precision

    for precision in FLAGS.precisions:
        if precision != "preset":
            try:
                crvae_precision.normalize(precision)
            except ValueError as error:
                raise app.UsageError(f"--precisions={precision}: {error}") from None
    for transposed_conv in FLAGS.transposed_convs:
        if transposed_conv not in ("auto", "phases", "native"):
            raise app.UsageError(f"--transposed_convs={transposed_conv}: expected auto, phases or "
                                 "native.")
    import kernels as kernel_switch

    for kernels in FLAGS.kernels:
        if kernels not in kernel_switch.SPECS:
            raise app.UsageError(f"--kernels={kernels}: expected one of "
                                 f"{', '.join(kernel_switch.SPECS)}.")
    rows = [time_preset(name, FLAGS.batch_size, FLAGS.repeats, FLAGS.steps, precision,
                        transposed_conv, kernels)
            for name in names for precision in FLAGS.precisions
            for transposed_conv in FLAGS.transposed_convs for kernels in FLAGS.kernels]
    print(f"{'preset':26s} {'precision':>15s} {'deconv':>7s} {'kernels':>13s} {'params':>10s} "
          f"{'s/step':>8s} {'images/s':>9s} {'GFLOP/step':>10s} {'TFLOP/s':>8s}")
    for row in rows:
        gflops = "-" if row["gflop_per_step"] is None else f"{row['gflop_per_step']:.1f}"
        tflops = "-" if row["tflops"] is None else f"{row['tflops']:.2f}"
        print(f"{row['preset']:26s} {row['precision']:>15s} {row['transposed_conv']:>7s} "
              f"{row['kernels']:>13s} {row['parameters']:10d} {row['seconds_per_step']:8.3f} "
              f"{row['images_per_second']:9.1f} {gflops:>10s} {tflops:>8s}")
    pipeline = time_input_pipeline(FLAGS.batch_size) if FLAGS.input_pipeline else None
    if pipeline is not None:
        print(f"Input pipeline alone (binarized_dataset, batch {FLAGS.batch_size}): "
              f"{pipeline:.0f} images/s")
        for row in rows:
            if row["image_shape"] == [28, 28, 1]:
                row["pipeline_over_step"] = round(pipeline / row["images_per_second"], 1)
                print(f"  {row['preset']} {row['precision']} {row['kernels']}: pipeline / step "
                      f"= {row['pipeline_over_step']}x")
    report = {"batch_size": FLAGS.batch_size, "input_pipeline_images_per_second": pipeline, "precisions": FLAGS.precisions,
              "transposed_convs": FLAGS.transposed_convs, "kernels": FLAGS.kernels,
              "repeats": FLAGS.repeats, "load_average": list(os.getloadavg()),
              "steps": FLAGS.steps,
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "results": rows}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Load average (1, 5, 15 min) at the end: {report['load_average']}")
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
