"""Peak activation memory of one gradient step against depth: RevNet with the recomputing backward
pass, the same RevNet storing its activations, and an ordinary residual stack (CPU).

Each (network, depth, backend) runs in a fresh subprocess on a batch `--batch` of
`--size`x`--size`x`--channels` feature maps, `loss = sum(network(x)^2)`, two measurements:

    jax_temp_mib     JAX: `jax.jit(jax.grad(loss)).lower(...).compile().memory_analysis()`'s
                     `temp_size_in_bytes`, the buffers XLA plans for the forward and backward pass
                     besides the inputs and weights: the activation memory, exactly and free of
                     load or allocator noise.
    tf_rss_mib       TensorFlow, eager `tf.GradientTape`: the peak resident set during the first
                     gradient step (sampled every 0.5 ms from /proc/self/statm) minus the RSS just
                     before it, after a forward-only warm-up. TensorFlow's `get_memory_info`
                     reports nothing for CPU devices and `tracemalloc` does not see its allocator;
                     RSS does, but counts only memory the allocator had to add (noisier).

The networks (`keras_crvae.layers.ReversibleStack`):

    revnet_recompute   ReversibleStack(depth, hidden, recompute_gradients=True)
    revnet_storing     ReversibleStack(depth, hidden, recompute_gradients=False)
    residual           depth blocks x + conv3x3(relu(conv3x3(x))) on all channels (hidden wide)

Writes JSON (`--output`), a markdown table (`.md` beside it) and, where matplotlib is installed,
a plot (`.png`). Example (docs/flows.md ("Flow posteriors")):

    python tools/benchmarks/revnet_memory.py --depths=1,2,4,8,16 --output=runs/revnet_memory.json
"""

import json
import os
import subprocess
import sys
import threading
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("depths", ["1", "2", "4", "8", "16"], "Numbers of blocks.")
flags.DEFINE_list("networks", ["revnet_recompute", "revnet_storing", "residual"],
                  "Networks to measure.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("size", 32, "Height and width of the feature maps.")
flags.DEFINE_integer("channels", 16, "Channels of the feature maps (even).")
flags.DEFINE_integer("hidden", 16, "Hidden channels of each residual function.")
flags.DEFINE_list("backends", ["jax", "tensorflow"], "Backends to measure (jax: XLA's planned "
                  "temporary buffers; tensorflow: eager RSS).")
flags.DEFINE_string("output", "revnet_memory.json", "JSON path; the table and plot go beside it.")
flags.DEFINE_string("_measure", None, "Internal: measure one 'network:depth' in this process "
                    "(the backend is KERAS_BACKEND).")


def _rss_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(network, depth):
    import keras

    from keras_crvae.layers import ReversibleStack

    inputs = keras.Input((FLAGS.size, FLAGS.size, FLAGS.channels))
    if network.startswith("revnet"):
        outputs = ReversibleStack(depth, FLAGS.hidden,
                                  recompute_gradients=network == "revnet_recompute")(inputs)
    elif network == "residual":
        x = inputs
        for _ in range(depth):
            hidden = keras.layers.Conv2D(FLAGS.hidden, 3, padding="same", activation="relu")(x)
            x = x + keras.layers.Conv2D(FLAGS.channels, 3, padding="same")(hidden)
        outputs = x
    else:
        raise ValueError(f"--networks: unknown network {network!r}; expected revnet_recompute, "
                         "revnet_storing or residual")
    return keras.Model(inputs, outputs)


def _measure(spec):
    """Activation memory (bytes) of one gradient step on this process' backend (module doc)."""
    import keras
    import numpy as np

    network, depth = spec.split(":")
    model = _build(network, int(depth))
    images = np.random.default_rng(0).normal(
        size=(FLAGS.batch, FLAGS.size, FLAGS.size, FLAGS.channels)).astype("float32")
    if keras.backend.backend() == "jax":
        import jax

        def loss(trainable, inputs):
            outputs, _ = model.stateless_call(trainable, [], inputs)
            return jax.numpy.sum(jax.numpy.square(outputs))

        trainable = [variable.value for variable in model.trainable_variables]
        compiled = jax.jit(jax.grad(loss)).lower(trainable, images).compile()
        return int(compiled.memory_analysis().temp_size_in_bytes)

    import tensorflow as tf

    images = tf.constant(images)
    model(images)  # forward-only warm-up: kernels and transient buffers, no stored activations
    baseline = _rss_bytes()
    peak, running = [baseline], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(images)))
    grads = tape.gradient(loss, model.trainable_variables)
    float(sum(tf.reduce_sum(g) for g in grads))
    running[0] = False
    sampler.join()
    return max(peak[0], _rss_bytes()) - baseline


def _plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(1, len(FLAGS.backends), figsize=(5 * len(FLAGS.backends), 3.5),
                                squeeze=False)
    for axis, backend in zip(axes[0], FLAGS.backends):
        for network in FLAGS.networks:
            points = [(r["depth"], r["peak_mib"]) for r in results
                      if r["network"] == network and r["backend"] == backend]
            axis.plot(*zip(*points), marker="o", label=network)
        axis.set_title(backend)
        axis.set_xlabel("blocks")
        axis.set_ylabel("activation memory of one gradient step (MiB)")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if FLAGS._measure:
        print(json.dumps({"peak_bytes": _measure(FLAGS._measure)}))
        return
    if FLAGS.channels % 2:
        raise app.UsageError(f"--channels={FLAGS.channels}: expected an even number (RevNet "
                             "blocks split the channels in halves)")
    results = []
    passthrough = [f"--{name}={getattr(FLAGS, name)}" for name in
                   ("batch", "size", "channels", "hidden")]
    depths = [int(d) for d in FLAGS.depths]
    for backend in FLAGS.backends:
        for network in FLAGS.networks:
            for depth in depths:
                output = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), f"--_measure={network}:{depth}"]
                    + passthrough, capture_output=True, text=True, check=True,
                    env=dict(os.environ, KERAS_BACKEND=backend)).stdout
                peak = json.loads(output.strip().splitlines()[-1])["peak_bytes"]
                results.append({"backend": backend, "network": network, "depth": depth,
                                "peak_mib": round(peak / 2 ** 20, 1)})
                print(f"{backend:10s} {network:18s} depth {depth:3d}: {peak / 2 ** 20:8.1f} MiB",
                      flush=True)
    activation_mib = FLAGS.batch * FLAGS.size ** 2 * FLAGS.channels * 4 / 2 ** 20
    report = {"command": " ".join(sys.argv),
              "measures": {"jax": "XLA temp_size_in_bytes of jit(grad(loss))",
                           "tensorflow": "peak RSS increase of the first eager GradientTape step"},
              "input": [FLAGS.batch, FLAGS.size, FLAGS.size, FLAGS.channels],
              "hidden_channels": FLAGS.hidden, "one_activation_mib": round(activation_mib, 2),
              "load_average": open("/proc/loadavg").read().split()[:3], "results": results}
    lines = ["| backend | network | " + " | ".join(f"{d} blocks" for d in depths) + " |",
             "|---|---|" + "---|" * len(depths)]
    for backend in FLAGS.backends:
        for network in FLAGS.networks:
            row = {r["depth"]: r["peak_mib"] for r in results
                   if r["network"] == network and r["backend"] == backend}
            lines.append(f"| {backend} | {network} | "
                         + " | ".join(f"{row[d]:.1f}" for d in depths) + " |")
    table = "\n".join(lines) + "\n"
    base = os.path.splitext(FLAGS.output)[0]
    report["plot"] = _plot(results, base + ".png")
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=1)
    with open(base + ".md", "w") as handle:
        handle.write(f"Activation memory of one gradient step (MiB; jax: XLA's planned temporary "
                     f"buffers, tensorflow: peak RSS increase); input {report['input']}, one "
                     f"activation {activation_mib:.2f} MiB; load {report['load_average']}.\n\n"
                     + table)
    print(table)


if __name__ == "__main__":
    app.run(main)
