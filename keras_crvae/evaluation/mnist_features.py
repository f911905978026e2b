"""An MNIST digit classifier whose penultimate layer is the offline FID feature space for digit data.

The standard FID uses Inception-v3 pool3 features of ImageNet-trained weights, which are neither
shipped here nor meaningful for 28x28 grey digits. For digit data the library defaults to the
Frechet distance between Gaussians fitted to the 128-d penultimate activations of a small convnet
trained on MNIST (the "classifier FID" used e.g. for MNIST GAN evaluation). Numbers are *not*
comparable with Inception FIDs (such as the paper's Table 1); they are comparable with each other.

Network (images `(B, 28, 28, 1)` in [0, 1]):

    conv3x3(32) -> ReLU -> maxpool2 -> conv3x3(64) -> ReLU -> maxpool2 -> flatten
    -> dense(128) -> ReLU  ["features"]  -> dense(10) logits

The weights ship inside the package (`evaluation/resources/mnist_classifier.weights.h5`, trained by
`tools/assets/train_mnist_classifier.py` on `shared/data/mnist.npz`; its test accuracy is in the README
beside it).
"""

import os
import pathlib

import keras
import numpy as np

from keras_crvae.evaluation.fid import fid

RESOURCES = pathlib.Path(__file__).resolve().parent / "resources"
DEFAULT_WEIGHTS = RESOURCES / "mnist_classifier.weights.h5"
FEATURE_LAYER = "features"
FEATURE_DIM = 128
MNIST_SHAPE = (28, 28, 1)


def build_mnist_classifier(name="mnist_classifier"):
    """The untrained classifier: `(B, 28, 28, 1)` in [0, 1] -> 10 logits; layer "features" is the
    128-d penultimate ReLU."""
    images = keras.Input(MNIST_SHAPE, name="images")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(images)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name=FEATURE_LAYER)(x)
    logits = keras.layers.Dense(10, name="logits")(features)
    return keras.Model(images, logits, name=name)


def load_mnist_classifier(weights_path=None):
    """The trained classifier, from the packaged weights (or `weights_path`).

    Raises:
        FileNotFoundError: when the weights file is missing, saying how to produce it.
    """
    path = pathlib.Path(weights_path) if weights_path is not None else DEFAULT_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(
            f"No MNIST classifier weights at {os.fspath(path)!r}. Train them with "
            "`python tools/assets/train_mnist_classifier.py --data=PATH/mnist.npz --output=" 
            f"{os.fspath(path)}`."
        )
    model = build_mnist_classifier()
    model.load_weights(os.fspath(path))
    return model


def mnist_feature_extractor(classifier=None):
    """`keras.Model` images `(B, 28, 28, 1)` in [0, 1] -> penultimate features `(B, 128)`.

    Args:
        classifier: a model from `build_mnist_classifier` (trained), or None for the packaged one.
    """
    classifier = load_mnist_classifier() if classifier is None else classifier
    return keras.Model(classifier.input, classifier.get_layer(FEATURE_LAYER).output,
                       name="mnist_features")


def _as_unit_images(images, name):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != MNIST_SHAPE:
        raise ValueError(f"`{name}` must have shape (N, 28, 28[, 1]); got {images.shape}.")
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    images = images.astype("float32")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(f"`{name}` must be uint8 or floats in [0, 1]; got values in "
                         f"[{images.min()}, {images.max()}].")
    return images


def mnist_fid(generated, reference, feature_extractor=None, batch_size=500):
    """Frechet distance between MNIST-classifier features of two image sets.

    Args:
        generated, reference: arrays `(N, 28, 28[, 1])`, uint8 0..255 or floats in [0, 1]; N >= 2.
        feature_extractor: optional, e.g. `mnist_feature_extractor()` reused across calls.
        batch_size: int, default 500.

    Returns:
        float, the squared Frechet distance (0 for identical sets).
    """
    extractor = mnist_feature_extractor() if feature_extractor is None else feature_extractor
    generated = _as_unit_images(generated, "generated")
    reference = _as_unit_images(reference, "reference")

    def features(batch):
        return extractor.predict_on_batch(batch)

    return fid(generated, reference, feature_extractor=features, batch_size=batch_size)
