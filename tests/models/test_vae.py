"""The VAE model: loss against hand computations, the API contract, save/load, bad input."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks, optimizers

pytestmark = pytest.mark.portable


def tiny_vae(latent="recurrent", **kwargs):
    keras.utils.set_random_seed(0)
    config = dict(base_channels=2, latent_channels=8, time_steps=4)
    return models.VAE(networks.build_mnist_encoder(latent, **config),
                      networks.build_mnist_decoder(latent, **config), seed=1, **kwargs)


def binary_images(count=4, seed=0):
    return (np.random.default_rng(seed).random((count, 28, 28, 1)) < 0.3).astype("float32")


def _numpy(y_pred):
    return {key: ops.convert_to_numpy(value).astype("float64") for key, value in y_pred.items()}


def _log_px(logits, images):
    return np.sum((images * logits - np.logaddexp(0, logits)).reshape(len(logits), -1), axis=1)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kl_weight", [0.001, [0.5, 0.5, 2.0, 2.0]])
def test_loss_matches_a_hand_computation(reduction, kl_weight):
    model = tiny_vae(kl_weight=kl_weight, reconstruction_reduction=reduction)
    images = binary_images()
    y_pred = model(images, training=True)
    loss = float(model.compute_loss(x=images, y_pred=y_pred, training=True))
    p = _numpy(y_pred)
    bce = -_log_px(p["logits"], images).mean()  # summed over 784 pixels, averaged over the batch
    kl = 0.5 * (np.exp(p["log_var"]) + p["mean"] ** 2 - 1 - p["log_var"])  # (B, 4, 4, 8)
    if isinstance(kl_weight, list):
        per_block = kl.reshape(4, 16, 4, 2).sum(axis=(1, 3))  # channel blocks of 2 channels
        rate = (per_block * np.array(kl_weight)).sum(1).mean()
    else:
        rate = kl_weight * kl.reshape(4, -1).sum(1).mean()
    expected = (bce / 784 if reduction == "mean" else bce) + rate
    assert loss == pytest.approx(expected, rel=1e-5)


def test_iwae_loss_is_the_k_sample_bound():
    model = tiny_vae(iwae_samples=3, kl_weight=1.0, reconstruction_reduction="sum")
    images = binary_images()
    y_pred = model(images, training=True)
    p = _numpy(y_pred)
    assert p["z"].shape[0] == 12 and p["mean"].shape[0] == 4
    mean, log_var = np.tile(p["mean"], (3, 1, 1, 1)), np.tile(p["log_var"], (3, 1, 1, 1))
    z = p["z"]
    log_prior = np.sum((-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).reshape(12, -1), 1)
    log_post = np.sum((-0.5 * ((z - mean) ** 2 / np.exp(log_var) + log_var + math.log(2 * math.pi))
                       ).reshape(12, -1), 1)
    log_w = (_log_px(p["logits"], np.tile(images, (3, 1, 1, 1))) + log_prior - log_post).reshape(3, 4)
    bound = np.mean(np.logaddexp.reduce(log_w, axis=0) - math.log(3))
    loss = float(model.compute_loss(x=images, y_pred=y_pred, training=True))
    assert loss == pytest.approx(-bound, rel=1e-5)


@pytest.mark.parametrize("latent", ["dense", "conv", "recurrent"])
def test_fit_trains_and_reports_nats_metrics(latent):
    model = tiny_vae(latent, kl_weight=0.001)
    model.compile(optimizer=optimizers.MultiplierAdam(1e-3))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(binary_images(16), batch_size=8, epochs=1, verbose=0)
    for key in ("loss", "elbo", "reconstruction", "kl"):
        assert np.isfinite(history.history[key][-1]), key
    logs = history.history
    assert logs["elbo"][-1] == pytest.approx(-logs["reconstruction"][-1] - logs["kl"][-1], rel=1e-4)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_api_contract_shapes_and_values():
    model = tiny_vae()
    images = binary_images(3)
    mean, log_var = model.encode(images)
    assert tuple(mean.shape) == (3, 4, 4, 8) and tuple(log_var.shape) == (3, 4, 4, 8)
    probabilities = ops.convert_to_numpy(model.decode(mean))
    assert probabilities.shape == (3, 28, 28, 1)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    samples = ops.convert_to_numpy(model.sample(5, seed=2))
    assert samples.shape == (5, 28, 28, 1)
    np.testing.assert_allclose(samples, ops.convert_to_numpy(model.sample(5, seed=2)), atol=1e-6)
    logits = ops.convert_to_numpy(model.decode_logits(mean)).astype("float64")
    np.testing.assert_allclose(ops.convert_to_numpy(model.log_likelihood(images, mean)),
                               _log_px(logits, images), rtol=1e-5)
    assert tuple(model.reconstruct(images).shape) == (3, 28, 28, 1)


@pytest.mark.parametrize("latent", ["dense", "conv", "recurrent"])
def test_keras_file_round_trip_keeps_outputs_and_training_state(tmp_path, latent):
    model = tiny_vae(latent, kl_weight=0.001 if latent == "dense" else [0.001] * 4)
    model.compile(optimizer=optimizers.MultiplierAdam(1e-3, lr_multipliers={"recurrence/lstm_": 0.25}))
    images = binary_images(8)
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, models.VAE) and loaded.kl_weight == model.kl_weight
    for a, b in zip(model.encode(images), loaded.encode(images)):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-5)
    z = model.encode(images)[0]
    np.testing.assert_allclose(ops.convert_to_numpy(model.decode(z)),
                               ops.convert_to_numpy(loaded.decode(z)), atol=1e-5)
    assert int(loaded.optimizer.iterations) == 2
    assert loaded.optimizer.lr_multipliers == {"recurrence/lstm_": 0.25}
    loaded.fit(images, batch_size=4, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


def test_bad_input_is_named():
    model = tiny_vae("conv")
    with pytest.raises(ValueError, match="images.*28, 28, 1"):
        model.encode(np.zeros((2, 32, 32, 1), "float32"))
    with pytest.raises(ValueError, match="channel axis"):
        model.encode(np.zeros((2, 28, 28), "float32"))
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        model.encode(np.full((2, 28, 28, 1), 255.0, "float32"))
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)
    with pytest.raises(ValueError, match="z"):
        model.decode(np.zeros((2, 7), "float32"))
    encoder = networks.build_mnist_encoder("conv", base_channels=2, latent_channels=8)
    decoder = networks.build_mnist_decoder("conv", base_channels=2, latent_channels=8)
    for kwargs, name in [({"iwae_samples": 0}, "iwae_samples"),
                         ({"reconstruction_reduction": "max"}, "reconstruction_reduction"),
                         ({"kl_weight": -1.0}, "kl_weight"), ({"kl_weight": [1.0] * 3}, "block weights")]:
        with pytest.raises(ValueError, match=name):
            models.VAE(encoder, decoder, **kwargs)
    other = networks.build_mnist_decoder("conv", base_channels=2, latent_channels=16)
    with pytest.raises(ValueError, match="decoder expects"):
        models.VAE(encoder, other)


def test_nan_loss_stops_training_with_a_message():
    from keras_crvae.callbacks import NaNGuard

    model = tiny_vae("conv")
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    with pytest.raises(FloatingPointError, match="learning rate"):
        model.fit(binary_images(16), batch_size=4, epochs=3, verbose=0, callbacks=[NaNGuard()])
