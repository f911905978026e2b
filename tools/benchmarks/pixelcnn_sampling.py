"""Images per second of PixelCNN sampling: the compiled loop against the per-pixel Python loop.

    python tools/benchmarks/pixelcnn_sampling.py [--image_size=28] [--filters=16] [--num_layers=4] \
        [--batch_sizes=1,16] [--repeats=2] [--output=pixelcnn_sampling.json]

A Gated PixelCNN with random weights (speed does not depend on the weights) over binary
`image_size`^2 images; for each batch size the compiled sampler (`AutoregressiveSampler.sample`: one
`fori_loop` under `tf.function` / `jax.jit`) is timed after one warm-up call (its compile time is
reported apart), and the naive loop (`sample_naive`: one eager network call per pixel from Python)
once. Both draw from the same uniforms, so their images are checked to be equal. The backend is
`KERAS_BACKEND`'s. Printed as a table with the load average; written as JSON.
"""

import json
import os
import platform
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 28, "Height and width of the binary images.")
flags.DEFINE_integer("filters", 16, "Features per stack of the Gated PixelCNN.")
flags.DEFINE_integer("num_layers", 4, "Gated layers.")
flags.DEFINE_list("batch_sizes", ["1", "16"], "Images drawn per call.")
flags.DEFINE_integer("repeats", 2, "Timed calls of the compiled sampler per batch size.")
flags.DEFINE_boolean("naive", True, "Also time the per-pixel Python loop (slow).")
flags.DEFINE_string("output", "pixelcnn_sampling.json", "JSON output path.")


def measure(sampler, batch_size, shape, repeats, naive):
    import numpy as np
    from keras import ops

    uniforms = np.random.default_rng(0).random((batch_size,) + shape).astype("float32")
    start = time.perf_counter()
    compiled = ops.convert_to_numpy(sampler.sample(uniforms))
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        ops.convert_to_numpy(sampler.sample(uniforms))
    compiled_seconds = (time.perf_counter() - start) / repeats
    row = {"batch_size": batch_size, "compiled_first_call_s": round(first_call, 3),
           "compiled_s": round(compiled_seconds, 3),
           "compiled_images_per_s": round(batch_size / compiled_seconds, 3)}
    if naive:
        start = time.perf_counter()
        reference = sampler.sample_naive(uniforms)
        naive_seconds = time.perf_counter() - start
        row.update(naive_s=round(naive_seconds, 3),
                   naive_images_per_s=round(batch_size / naive_seconds, 3),
                   speedup=round(naive_seconds / compiled_seconds, 1),
                   same_images=bool(np.array_equal(compiled, reference)))
    return row


def main(argv):
    del argv
    import keras

    from keras_crvae import models, networks

    shape = (FLAGS.image_size, FLAGS.image_size, 1)
    keras.utils.set_random_seed(0)
    network = networks.build_gated_pixelcnn(shape, filters=FLAGS.filters,
                                            num_layers=FLAGS.num_layers)
    sampler = models.AutoregressiveSampler(network, "binary")
    load_before = os.getloadavg()
    rows = [measure(sampler, int(size), shape, FLAGS.repeats, FLAGS.naive)
            for size in FLAGS.batch_sizes]
    result = {
        "backend": keras.backend.backend(), "keras": keras.__version__,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "image_shape": list(shape), "filters": FLAGS.filters, "num_layers": FLAGS.num_layers,
        "parameters": int(network.count_params()), "rows": rows,
    }
    print(f"backend {result['backend']}, {result['cpus']} CPUs, load "
          f"{result['load_average_before']} -> {result['load_average_after']}, Gated PixelCNN "
          f"{FLAGS.num_layers} layers x {FLAGS.filters} filters, {shape}")
    print(f"{'batch':>6} {'compile+1st s':>14} {'compiled s':>11} {'img/s':>9} "
          f"{'naive s':>9} {'img/s':>9} {'speedup':>8} {'same':>5}")
    for row in rows:
        print(f"{row['batch_size']:>6} {row['compiled_first_call_s']:>14} {row['compiled_s']:>11} "
              f"{row['compiled_images_per_s']:>9} {row.get('naive_s', '-'):>9} "
              f"{row.get('naive_images_per_s', '-'):>9} {row.get('speedup', '-'):>8} "
              f"{str(row.get('same_images', '-')):>5}")
    with open(FLAGS.output, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
