"""Writes MNIST's validation split for the long studies: `x_train` = the first 50,000 training
images, `x_valid` = the last 10,000 (the test split stays held out; the same cut as
binarized_mnist.npz's train / valid). Does nothing when `--output` exists already.

    python tools/reproduce/mnist_validation_split.py --mnist=../shared/data/mnist.npz \\
        --output=runs/data/mnist_split.npz
"""

import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("mnist", os.path.join("..", "shared", "data", "mnist.npz"),
                    "MNIST .npz with x_train (60,000 images).")
flags.DEFINE_string("output", os.path.join("runs", "data", "mnist_split.npz"), "Where to write.")
flags.DEFINE_integer("num_valid", 10000, "The last N training images become x_valid.")


def main(argv):
    del argv
    if os.path.exists(FLAGS.output):
        print(f"{FLAGS.output} exists; nothing to do.")
        return
    images = np.load(FLAGS.mnist)["x_train"]
    if not 0 < FLAGS.num_valid < len(images):
        raise app.UsageError(f"--num_valid={FLAGS.num_valid}: expected 1 to {len(images) - 1}")
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    temporary = FLAGS.output + ".tmp.npz"
    np.savez_compressed(temporary, x_train=images[:-FLAGS.num_valid],
                        x_valid=images[-FLAGS.num_valid:])
    os.replace(temporary, FLAGS.output)
    print(f"{FLAGS.output}: x_train {len(images) - FLAGS.num_valid}, x_valid {FLAGS.num_valid}")


if __name__ == "__main__":
    app.run(main)
