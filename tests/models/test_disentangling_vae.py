"""beta-VAE, controlled capacity and the Gaussian decoder as options of `VAE`, against NumPy."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks
from keras_crvae.models.vae import capacity_schedule

pytestmark = pytest.mark.portable

WIDTHS = dict(channels=(2, 2, 4, 4), dense_units=(8,))


def tiny_sprites_vae(**kwargs):
    keras.utils.set_random_seed(0)
    kwargs.setdefault("seed", 1)
    return models.VAE(networks.build_sprites_encoder(3, **WIDTHS),
                      networks.build_sprites_decoder(3, **WIDTHS),
                      reconstruction_reduction="sum", **kwargs)


def images(count=4, seed=0):
    return (np.random.default_rng(seed).random((count, 64, 64, 1)) < 0.2).astype("float32")


def numpy_terms(y_pred, x, likelihood="bernoulli", std=1.0):
    p = {key: ops.convert_to_numpy(value).astype("float64") for key, value in y_pred.items()}
    logits = p["logits"].reshape(len(x), -1)
    flat = x.reshape(len(x), -1)
    if likelihood == "bernoulli":
        log_px = np.sum(flat * -np.logaddexp(0, -logits) + (1 - flat) * -np.logaddexp(0, logits), 1)
    else:
        mean = 1 / (1 + np.exp(-logits))
        log_px = np.sum(-(flat - mean) ** 2 / (2 * std ** 2) - np.log(std) - 0.5 * math.log(2 * math.pi), 1)
    kl = 0.5 * (np.exp(p["log_var"]) + p["mean"] ** 2 - 1 - p["log_var"]).sum(1)
    return -log_px.mean(), kl.mean()


def test_capacity_schedule_is_linear_then_flat():
    assert [capacity_schedule(s, 25.0, 100) for s in (0, 50, 100, 400)] == [0.0, 12.5, 25.0, 25.0]


def test_capacity_loss_matches_numpy_and_c_advances_per_training_step():
    # loss = distortion + gamma * |KL - C(step)|, C(step) = C_max * min(step / N, 1); the step counter
    # is read before it advances, and only training calls advance it.
    model = tiny_sprites_vae(kl_weight=1000.0, capacity=6.0, capacity_steps=4)
    x = images()
    for step in range(6):
        y_pred = model(x, training=True)
        loss = float(ops.convert_to_numpy(model.compute_loss(x=x, y_pred=y_pred, training=True)))
        distortion, kl = numpy_terms(y_pred, x)
        capacity = 6.0 * min(step / 4, 1.0)
        assert loss == pytest.approx(distortion + 1000.0 * abs(kl - capacity), rel=1e-5)
    assert float(ops.convert_to_numpy(model.capacity_step)) == 6.0
    model.compute_loss(x=x, y_pred=model(x), training=False)
    assert float(ops.convert_to_numpy(model.capacity_step)) == 6.0
    assert float(ops.convert_to_numpy(model.capacity_tracker.result())) == pytest.approx(
        np.mean([0, 1.5, 3, 4.5, 6, 6, 6]))


def test_beta_vae_is_the_kl_weight():
    model = tiny_sprites_vae(kl_weight=4.0)
    x = images()
    y_pred = model(x, training=True)
    loss = float(ops.convert_to_numpy(model.compute_loss(x=x, y_pred=y_pred, training=True)))
    distortion, kl = numpy_terms(y_pred, x)
    assert loss == pytest.approx(distortion + 4.0 * kl, rel=1e-5)


def test_gaussian_decoder_loss_and_log_likelihood():
    model = tiny_sprites_vae(likelihood="gaussian", decoder_std=0.3)
    x = images()
    y_pred = model(x, training=True)
    loss = float(ops.convert_to_numpy(model.compute_loss(x=x, y_pred=y_pred, training=True)))
    distortion, kl = numpy_terms(y_pred, x, "gaussian", 0.3)
    assert loss == pytest.approx(distortion + kl, rel=1e-5)
    z = np.zeros((4, 3), np.float32)
    mean = ops.convert_to_numpy(model.decode(z)).reshape(4, -1).astype("float64")
    expected = np.sum(-(x.reshape(4, -1) - mean) ** 2 / 0.18 - np.log(0.3)
                      - 0.5 * math.log(2 * math.pi), 1)
    np.testing.assert_allclose(ops.convert_to_numpy(model.log_likelihood(x, z)), expected,
                               rtol=1e-5)


def test_capacity_model_trains_and_round_trips(tmp_path):
    model = tiny_sprites_vae(kl_weight=10.0, capacity=2.0, capacity_steps=3,
                             likelihood="gaussian", decoder_std=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(images(8), batch_size=4, epochs=2, verbose=0)
    assert history.history["capacity"] == pytest.approx([0.5 * (0 + 2 / 3), 0.5 * (4 / 3 + 2)])
    path = str(tmp_path / "capacity.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.capacity, loaded.capacity_steps, loaded.likelihood, loaded.decoder_std) == (
        2.0, 3, "gaussian", 0.5)
    assert float(ops.convert_to_numpy(loaded.capacity_step)) == 4.0  # the schedule resumes
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.encode(images(2))[0]),
                               ops.convert_to_numpy(model.encode(images(2))[0]), rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity=-1.0), "capacity"),
    (dict(capacity=5.0, capacity_steps=0), "capacity_steps"),
    (dict(capacity=5.0, iwae_samples=2), "iwae_samples=1"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(likelihood="gaussian", decoder_std=0.0), "decoder_std"),
])
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_sprites_vae(**kwargs)
