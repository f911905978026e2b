"""Trains the MNIST classifier behind the digit FID (`keras_crvae.evaluation.mnist_features`).

    python tools/assets/train_mnist_classifier.py --data=../shared/data/mnist.npz \
        --output=keras_crvae/evaluation/resources/mnist_classifier.weights.h5

Adam (LR 1e-3), batch 128, `--epochs` epochs on the 60,000 training images scaled to [0, 1]; prints and
writes (beside the weights, as `mnist_classifier.json`) the accuracy on the 10,000 test images.
"""

import os
import pathlib
import platform
import time

import keras
import numpy as np
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]

FLAGS = flags.FLAGS
flags.DEFINE_string("data", str(ROOT.parent / "shared" / "data" / "mnist.npz"), "mnist.npz path.")
flags.DEFINE_string("output", str(ROOT / "keras_crvae" / "evaluation" / "resources" /
                                  "mnist_classifier.weights.h5"), "Weights file (.weights.h5).")
flags.DEFINE_integer("epochs", 3, "Training epochs.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.register_validator("output", lambda path: path.endswith(".weights.h5"),
                         message="--output must end in .weights.h5")


def main(argv):
    del argv
    from keras_crvae.evaluation import mnist_features
    from keras_crvae.io import write_json

    data = np.load(FLAGS.data)
    x_train = data["x_train"][..., None].astype("float32") / 255.0
    x_test = data["x_test"][..., None].astype("float32") / 255.0
    keras.utils.set_random_seed(FLAGS.seed)
    model = mnist_features.build_mnist_classifier()
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.time()
    model.fit(x_train, data["y_train"], batch_size=128, epochs=FLAGS.epochs, verbose=2)
    seconds = time.time() - start
    _, accuracy = model.evaluate(x_test, data["y_test"], batch_size=1000, verbose=0)
    # Keras insists on the `.weights.h5` suffix, so the atomic temporary file keeps it.
    # An uncompiled copy, so that the file holds the weights only (no Adam moments): 3x smaller.
    temporary = FLAGS.output[:-len(".weights.h5")] + ".tmp.weights.h5"
    clean = mnist_features.build_mnist_classifier()
    clean.set_weights(model.get_weights())
    clean.save_weights(temporary)
    os.replace(temporary, FLAGS.output)
    info = {"test_accuracy": float(accuracy), "epochs": FLAGS.epochs, "train_seconds": round(seconds, 1),
            "parameters": int(model.count_params()), "seed": FLAGS.seed,
            "weights_bytes": os.path.getsize(FLAGS.output), "backend": keras.backend.backend(),
            "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}"}
    write_json(info, os.path.splitext(os.path.splitext(FLAGS.output)[0])[0] + ".json")
    print(info)


if __name__ == "__main__":
    app.run(main)
