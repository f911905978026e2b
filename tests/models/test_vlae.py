"""The VLAE: its PixelCNN decoder is autoregressive with exactly its small receptive field and is
conditioned on z; the ELBO and importance weights against NumPy; fit, sample, `.keras` round
trip."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks
from tests.networks.autoregressive_checks import (dependency_matrix, gated_receptive_field,
                                                  input_gradients)

pytestmark = pytest.mark.portable

# Tiny models train faster eagerly than traced on TensorFlow; on JAX jit is the faster path.
EAGER_IS_CHEAP = keras.backend.backend() == "tensorflow"

SHAPE = (8, 8, 1)


def tiny_vlae(**kwargs):
    keras.utils.set_random_seed(0)
    encoder = networks.build_mlp_gaussian(SHAPE, 2, hidden_units=(8,))
    decoder = networks.build_mlp_bernoulli_decoder(2, hidden_units=(8,), image_shape=(8, 8, 2))
    # Wide enough output layers that no pixel's ReLUs are all inactive at the test point.
    pixelcnn = networks.build_gated_pixelcnn(SHAPE, filters=8, num_layers=2, output_filters=32,
                                             condition_shape=(8, 8, 2))
    return models.VLAE(encoder, decoder, pixelcnn, seed=1, **kwargs)


def binary_images(count=4, seed=0):
    return (np.random.default_rng(seed).random((count,) + SHAPE) < 0.4).astype("float32")


def test_decoder_is_autoregressive_with_its_receptive_field_and_conditioned_on_z():
    model = tiny_vlae()
    count = 64
    z = ops.convert_to_tensor(np.random.default_rng(1).normal(size=(count, 2)).astype("float32"))
    z = ops.repeat(z[:1], count, axis=0)
    depends = dependency_matrix(
        lambda images: model._reconstruction_logits(z, images, False)[..., None],
        np.random.default_rng(2).uniform(0.2, 1.0, SHAPE).astype("float32"), levels=1)
    np.testing.assert_array_equal(depends, gated_receptive_field(8, 8, radius=2))
    # Every pixel's logit moves with z: d logit_i / dz != 0 for every i.
    images = ops.convert_to_tensor(np.repeat(binary_images(1), count, axis=0))
    weights = np.eye(count, dtype="float32").reshape(count, 8, 8)
    gradient = input_gradients(lambda codes: model._reconstruction_logits(codes, images, False)
                               [..., 0], z, weights)
    assert (np.abs(gradient).sum(axis=1) > 0).all()


def test_elbo_and_importance_weights_against_numpy():
    model = tiny_vlae()
    images = binary_images()
    y_pred = model(images)
    loss = float(model.compute_loss(images, None, y_pred))
    log_px = ops.convert_to_numpy(model.log_likelihood(images, y_pred["z"])).astype("float64")
    mean, log_var = (ops.convert_to_numpy(t).astype("float64") for t in (y_pred["mean"],
                                                                          y_pred["log_var"]))
    kl = 0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var).sum(axis=1)
    assert loss == pytest.approx(float(np.mean(-log_px + kl)), rel=1e-5)

    noise = np.random.default_rng(3).normal(size=(2, 4, 2)).astype("float32")
    weights = ops.convert_to_numpy(model.log_importance_weights(images, [noise]))
    z = mean[None] + np.exp(0.5 * log_var)[None] * noise
    log_pz = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(axis=-1)
    log_qz = -0.5 * (noise ** 2 + log_var[None] + math.log(2 * math.pi)).sum(axis=-1)
    log_px = np.stack([ops.convert_to_numpy(model.log_likelihood(images, z[s].astype("float32")))
                       for s in range(2)])
    np.testing.assert_allclose(weights, log_px + log_pz - log_qz, rtol=1e-4)


def test_fit_sample_save_load(tmp_path):
    model = tiny_vlae()
    model.compile(optimizer=keras.optimizers.Adam(0.01), run_eagerly=EAGER_IS_CHEAP)
    history = model.fit(binary_images(16), batch_size=8, epochs=1, verbose=0)
    assert {"elbo", "kl", "reconstruction"} <= set(history.history)
    samples = ops.convert_to_numpy(model.sample(2, seed=0))
    assert samples.shape == (2,) + SHAPE and set(np.unique(samples)) <= {0.0, 1.0}
    path = tmp_path / "vlae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    z = np.zeros((4, 2), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.log_likelihood(binary_images(), z)),
                               ops.convert_to_numpy(model.log_likelihood(binary_images(), z)),
                               rtol=1e-5)


def test_bad_networks():
    keras.utils.set_random_seed(0)
    encoder = networks.build_mlp_gaussian(SHAPE, 2, hidden_units=(8,))
    decoder = networks.build_mlp_bernoulli_decoder(2, hidden_units=(8,), image_shape=(8, 8, 3))
    pixelcnn = networks.build_gated_pixelcnn(SHAPE, filters=4, num_layers=1,
                                             condition_shape=(8, 8, 2))
    with pytest.raises(ValueError, match="condition"):
        models.VLAE(encoder, decoder, pixelcnn)
    unconditional = networks.build_gated_pixelcnn(SHAPE, filters=4, num_layers=1)
    with pytest.raises(ValueError, match="condition"):
        models.VLAE(encoder, decoder, unconditional)
