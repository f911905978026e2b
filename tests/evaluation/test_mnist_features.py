"""The MNIST-classifier FID: packaged weights, feature shape, and sanity of the distance on real digits
(the embedded MNIST subset, so nothing is skipped for missing data)."""

import numpy as np
import pytest
from keras import ops

from keras_crvae import data
from keras_crvae.evaluation import mnist_features

pytestmark = [
    pytest.mark.portable,
    pytest.mark.skipif(not mnist_features.DEFAULT_WEIGHTS.exists(),
                       reason="packaged MNIST classifier weights absent; run "
                              "tools/assets/train_mnist_classifier.py"),
]


@pytest.fixture(scope="module")
def digits():
    embedded = data.load_embedded_mnist()
    return embedded["x_test"], embedded["y_test"]


@pytest.fixture(scope="module")
def extractor():
    return mnist_features.mnist_feature_extractor()


def test_packaged_classifier_is_accurate_and_small(digits):
    images, labels = digits
    classifier = mnist_features.load_mnist_classifier()
    predictions = np.argmax(ops.convert_to_numpy(classifier.predict_on_batch(images)), axis=1)
    assert np.mean(predictions == labels) > 0.97
    assert mnist_features.DEFAULT_WEIGHTS.stat().st_size < 1_000_000


def test_fid_sanity(digits, extractor):
    images, labels = digits
    features = ops.convert_to_numpy(extractor.predict_on_batch(images[:5]))
    assert features.shape == (5, mnist_features.FEATURE_DIM) and features.min() >= 0.0
    assert mnist_features.mnist_fid(images, images, extractor) == pytest.approx(0.0, abs=1e-4)
    # uint8 and [0, 1] inputs are the same images.
    uint8 = np.round(images * 255).astype(np.uint8)
    assert mnist_features.mnist_fid(uint8, images, extractor) == pytest.approx(0.0, abs=1e-2)
    random_halves = mnist_features.mnist_fid(images[:500], images[500:], extractor)
    low_vs_high = mnist_features.mnist_fid(images[labels < 5], images[labels >= 5], extractor)
    noise = np.random.default_rng(0).random(images[:500].shape).astype("float32")
    versus_noise = mnist_features.mnist_fid(noise, images[500:], extractor)
    assert random_halves < 0.2 * low_vs_high < versus_noise


def test_bad_input(extractor):
    with pytest.raises(ValueError, match="generated"):
        mnist_features.mnist_fid(np.zeros((4, 32, 32, 1), "float32"), np.zeros((4, 28, 28, 1)),
                                 extractor)
    with pytest.raises(ValueError, match="reference"):
        mnist_features.mnist_fid(np.zeros((4, 28, 28)), np.full((4, 28, 28), 3.0), extractor)


def test_missing_weights_explain_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_mnist_classifier"):
        mnist_features.load_mnist_classifier(tmp_path / "absent.weights.h5")
