"""Where a training step's time goes: forward+backward time of every layer of a preset's networks.

    python tools/benchmarks/profile_layers.py [--preset=mnist_crvae] [--precision=float32] [--batch_size=128]
        [--repeats=3] [--top=15] [--output=profile_layers.json]
    KERAS_BACKEND=jax python tools/benchmarks/profile_layers.py [--native_transposed_conv] ...

Each layer of the encoder and decoder is compiled on its own (`tf.function` around a GradientTape on
TensorFlow, `jax.jit(jax.value_and_grad(stateless_call))` on JAX) with a random input of its real
shape, and timed for the value and the gradients with respect to its input and weights. The sum over
layers is a lower bound of one training step (the optimizer update and the loss are not included);
the table shows the slowest layers and each one's share. This is how docs/performance.md found that
XLA:CPU spent 9.5-14 s in each transposed convolution's forward+backward pass
(`--native_transposed_conv`).
"""

import inspect
import json
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "mnist_crvae", "Preset whose networks are profiled.")
flags.DEFINE_string("precision", "float32", "float32 or bfloat16.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("repeats", 3, "Timed calls per layer (after two warm-up calls).")
flags.DEFINE_integer("top", 15, "Rows of the table.")
flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE.")
flags.DEFINE_boolean("native_transposed_conv", False,
                     "Run PhaseConv2DTranspose layers as the plain Conv2DTranspose (to see what the "
                     "phase form saves on JAX).")
flags.DEFINE_string("output", "profile_layers.json", "JSON output path.")


def _layer_step(layer, inputs):
    """A compiled function returning the layer's summed output and its gradients."""
    import keras

    kwargs = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        frozen = [v.value for v in layer.non_trainable_variables]

        def loss(weights, x):
            outputs, _ = layer.stateless_call(weights, frozen, x, **kwargs)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            return sum(jnp.sum(jnp.asarray(o, "float32")) for o in outputs)

        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return lambda: jax.block_until_ready(compiled(trainable, inputs))

    import tensorflow as tf

    weights = layer.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, **kwargs)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outputs])
        return total, tape.gradient(total, [inputs] + list(weights))

    return lambda: tf.nest.map_structure(lambda t: t.numpy() if t is not None else t, step())


def main(_):
    import keras
    import numpy as np

    from keras_crvae import presets

    model = presets.from_preset(FLAGS.preset, seed=0, precision=FLAGS.precision,
                                **presets.parse_overrides(FLAGS.set))
    if FLAGS.native_transposed_conv:
        from keras_crvae.layers import PhaseConv2DTranspose

        for network in (model.encoder, model.decoder):
            for layer in network.layers:
                if isinstance(layer, PhaseConv2DTranspose):
                    layer.phase_implementation = False
    rows = []
    rng = np.random.default_rng(0)
    for network in (model.encoder, model.decoder):
        for layer in network.layers:
            if isinstance(layer, keras.layers.InputLayer) or isinstance(layer.input, list):
                continue
            shape = (FLAGS.batch_size,) + tuple(layer.input.shape[1:])
            inputs = keras.ops.cast(rng.standard_normal(shape).astype("float32"),
                                    layer.compute_dtype)
            step = _layer_step(layer, inputs)
            step()
            step()
            start = time.perf_counter()
            for _ in range(FLAGS.repeats):
                step()
            milliseconds = (time.perf_counter() - start) / FLAGS.repeats * 1000
            rows.append({"layer": f"{network.name}/{layer.name}", "class": type(layer).__name__,
                         "milliseconds": milliseconds})
    total = sum(row["milliseconds"] for row in rows)
    load = os.getloadavg()[0]
    print(f"{FLAGS.preset} ({FLAGS.precision}, batch {FLAGS.batch_size}) on "
          f"{keras.backend.backend()}: layers' forward+backward sum {total:.0f} ms "
          f"(lower bound {FLAGS.batch_size / total * 1000:.1f} images/s); load average {load:.2f}")
    print(f"{'layer':42s} {'class':24s} {'ms':>9s} {'share':>6s}")
    for row in sorted(rows, key=lambda r: -r["milliseconds"])[:FLAGS.top]:
        print(f"{row['layer']:42s} {row['class']:24s} {row['milliseconds']:9.1f} "
              f"{100 * row['milliseconds'] / total:5.1f}%")
    with open(FLAGS.output, "w") as handle:
        json.dump({"preset": FLAGS.preset, "precision": FLAGS.precision,
                   "backend": keras.backend.backend(), "batch_size": FLAGS.batch_size,
                   "total_milliseconds": total, "load_average": load, "rows": rows}, handle,
                  indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
