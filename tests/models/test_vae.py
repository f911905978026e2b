"""The VAE model: loss and IWAE bound against numpy, fit, the API contract, save/load, bad input."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import losses, models, networks, optimizers

# Tiny models train faster eagerly than traced on TensorFlow; on JAX jit is the faster path.
EAGER_IS_CHEAP = keras.backend.backend() == "tensorflow"

pytestmark = pytest.mark.portable

LATENTS = ["dense", "conv", "recurrent"]
NUM_PIXELS = 28 * 28
LOG_2PI = math.log(2 * math.pi)


def tiny_vae(latent="recurrent", **kwargs):
    """A VAE with base_channels=2, latent (4, 4, 8) (or 128 for 'dense'), T=4."""
    keras.utils.set_random_seed(0)
    config = dict(base_channels=2, latent_channels=8, time_steps=4)
    kwargs.setdefault("seed", 1)
    return models.VAE(networks.build_mnist_encoder(latent, **config),
                      networks.build_mnist_decoder(latent, **config), **kwargs)


def binary_images(count=4, seed=0):
    return (np.random.default_rng(seed).random((count, 28, 28, 1)) < 0.3).astype("float32")


def to_numpy(y_pred):
    return {key: ops.convert_to_numpy(value).astype("float64") for key, value in y_pred.items()}


def np_log_px(logits, images):
    """Bernoulli log-likelihood from probabilities, summed over pixels (float64)."""
    logits = logits.reshape(len(logits), -1)
    images = images.reshape(len(images), -1)
    log_p = -np.logaddexp(0.0, -logits)  # log sigmoid(l)
    log_1mp = -np.logaddexp(0.0, logits)  # log (1 - sigmoid(l))
    return np.sum(images * log_p + (1 - images) * log_1mp, axis=1)


def np_block_kl(kl, num_blocks):
    """(B, num_blocks): KL summed per channel block (last axis cut into contiguous blocks)."""
    size = kl.shape[-1] // num_blocks
    return np.stack([kl[..., t * size:(t + 1) * size].reshape(len(kl), -1).sum(1)
                     for t in range(num_blocks)], axis=1)


def metric(model, name):
    return float(ops.convert_to_numpy(getattr(model, name).result()))


# --- the loss by hand --------------------------------------------------------------------------------

@pytest.mark.parametrize("latent, reduction, kl_weight", [
    # JAX runs one case per latent (tests/conftest.py); the other reductions and weights are the
    # same ops with other constants.
    pytest.param("recurrent", "mean", 0.001, marks=pytest.mark.tensorflow_variant),
    pytest.param("recurrent", "sum", 0.001, marks=pytest.mark.tensorflow_variant),
    pytest.param("recurrent", "mean", [0.5, 0.5, 2.0, 2.0], marks=pytest.mark.tensorflow_variant),
    ("recurrent", "sum", [0.1, 0.2, 0.3, 0.4]),
    ("conv", "mean", 0.5),
    ("dense", "sum", [1.0, 3.0]),
])
def test_loss_matches_a_hand_computation(latent, reduction, kl_weight):
    """'mean': BCE summed over 784 pixels / 784, averaged over the batch, + alpha * KL summed over
    latents averaged over the batch; 'sum' drops the / 784; block weights weight KL per block."""
    model = tiny_vae(latent, kl_weight=kl_weight, reconstruction_reduction=reduction)
    images = binary_images()
    y_pred = model(images, training=True)
    loss = float(ops.convert_to_numpy(model.compute_loss(x=images, y_pred=y_pred, training=True)))
    p = to_numpy(y_pred)
    assert p["logits"].shape == (4, 28, 28, 1) and p["z"].shape == p["mean"].shape
    bce = -np_log_px(p["logits"], images).mean()
    kl = 0.5 * (np.exp(p["log_var"]) + p["mean"] ** 2 - 1 - p["log_var"])
    if isinstance(kl_weight, list):
        rate = (np_block_kl(kl, len(kl_weight)) * np.array(kl_weight)).sum(1).mean()
    else:
        rate = kl_weight * kl.reshape(4, -1).sum(1).mean()
    expected = (bce / NUM_PIXELS if reduction == "mean" else bce) + rate
    assert loss == pytest.approx(expected, rel=1e-5)
    # The metrics are in nats per image whatever the weighting.
    assert metric(model, "reconstruction_tracker") == pytest.approx(bce, rel=1e-5)
    assert metric(model, "kl_tracker") == pytest.approx(kl.reshape(4, -1).sum(1).mean(), rel=1e-5)
    assert metric(model, "elbo_tracker") == pytest.approx(-bce - kl.reshape(4, -1).sum(1).mean(),
                                                           rel=1e-5)


def test_kl_comes_from_the_posterior_parameters_and_z_from_them_too():
    """y_pred['kl'] is the closed-form KL of (mean, log_var) and z is a draw around mean."""
    model = tiny_vae()
    p = to_numpy(model(binary_images(), training=True))
    np.testing.assert_allclose(p["kl"], 0.5 * (np.exp(p["log_var"]) + p["mean"] ** 2 - 1
                                               - p["log_var"]), rtol=1e-4, atol=1e-6)
    eps = (p["z"] - p["mean"]) / np.exp(0.5 * p["log_var"])
    assert 0.7 < eps.std() < 1.3 and abs(eps.mean()) < 0.2


def np_iwae_bound(p, images, samples, element_weight=1.0):
    """mean_b log mean_k exp(log p(x|z_k) + w * (log p(z_k) - log q(z_k|x))) from y_pred (numpy)."""
    batch = len(images)
    reps = (samples,) + (1,) * (p["mean"].ndim - 1)
    mean, log_var, z = np.tile(p["mean"], reps), np.tile(p["log_var"], reps), p["z"]
    log_prior = np.sum((-0.5 * z**2 - 0.5 * LOG_2PI).reshape(len(z), -1), 1)
    log_post = np.sum((-0.5 * ((z - mean) ** 2 / np.exp(log_var) + log_var + LOG_2PI)
                       ).reshape(len(z), -1), 1)
    log_px = np_log_px(p["logits"], np.tile(images, (samples, 1, 1, 1)))
    log_w = (log_px + element_weight * (log_prior - log_post)).reshape(samples, batch)
    return np.mean(np.logaddexp.reduce(log_w, axis=0) - math.log(samples))


def test_iwae_loss_is_the_k_sample_bound():
    """iwae_samples=3, alpha=1, 'sum': loss = -mean_b logmeanexp_k(log p(x|z) + log p(z) - log q(z|x))."""
    model = tiny_vae(iwae_samples=3, kl_weight=1.0, reconstruction_reduction="sum")
    images = binary_images()
    y_pred = model(images, training=True)
    p = to_numpy(y_pred)
    assert p["z"].shape == (12, 4, 4, 8) and p["logits"].shape[0] == 12
    assert p["mean"].shape == (4, 4, 4, 8)
    # The k draws of one image differ (independent samples, not one draw repeated).
    assert np.abs(p["z"][0] - p["z"][4]).max() > 1e-3
    bound = np_iwae_bound(p, images, 3)
    loss = float(ops.convert_to_numpy(model.compute_loss(x=images, y_pred=y_pred, training=True)))
    assert loss == pytest.approx(-bound, rel=1e-5)
    assert metric(model, "iwae_tracker") == pytest.approx(bound, rel=1e-5)
    # The bound is at least the (3-sample Monte Carlo) ELBO reported in the metrics.
    assert bound >= metric(model, "elbo_tracker") - 1e-3


def test_iwae_bound_in_mean_mode_with_alpha_one_over_d():
    """'mean' with alpha = 1/784 is the same exact bound, divided by 784."""
    model = tiny_vae(iwae_samples=3, kl_weight=1.0 / NUM_PIXELS, reconstruction_reduction="mean")
    images = binary_images()
    y_pred = model(images, training=True)
    bound = np_iwae_bound(to_numpy(y_pred), images, 3)
    loss = float(ops.convert_to_numpy(model.compute_loss(x=images, y_pred=y_pred, training=True)))
    assert loss == pytest.approx(-bound / NUM_PIXELS, rel=1e-5)


def test_iwae_model_uses_k_samples_in_evaluation_too():
    """training=False still draws k samples per image, so evaluate() reports the same k-sample
    bound that fit() optimises (not a 1-sample ELBO under the IWAE name)."""
    model = tiny_vae(iwae_samples=3, kl_weight=1.0, reconstruction_reduction="sum")
    images = binary_images()
    y_pred = model(images, training=False)
    p = to_numpy(y_pred)
    assert p["z"].shape[0] == 12 and p["mean"].shape[0] == 4
    loss = float(ops.convert_to_numpy(model.compute_loss(x=images, y_pred=y_pred, training=False)))
    mean, log_var = np.tile(p["mean"], (3, 1, 1, 1)), np.tile(p["log_var"], (3, 1, 1, 1))
    z = p["z"]
    log_ratio = np.sum((-0.5 * z**2 + 0.5 * ((z - mean) ** 2 / np.exp(log_var) + log_var)
                        ).reshape(12, -1), 1)
    log_w = (np_log_px(p["logits"], np.tile(images, (3, 1, 1, 1))) + log_ratio).reshape(3, 4)
    bound = np.mean(np.logaddexp.reduce(log_w, axis=0) - np.log(3))
    assert loss == pytest.approx(-bound, rel=1e-5)


# --- training ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("latent", LATENTS)
def test_fit_two_steps_trains_every_variable_and_logs_finite_nats(latent):
    """Two fit steps move every trainable variable (gradients reach encoder, latent block and
    decoder) and log finite loss / elbo / reconstruction / kl with elbo = -(reconstruction + kl)."""
    model = tiny_vae(latent, kl_weight=0.001)
    # On TensorFlow the compiled (graph) step is traced for the recurrent latent, the costliest to
    # trace; the other two run eagerly (the same maths, a third of the test time). JAX's eager
    # dispatch is slower than its jit, so JAX always compiles.
    model.compile(optimizer=optimizers.MultiplierAdam(1e-3),
                  run_eagerly=latent != "recurrent" and EAGER_IS_CHEAP)
    before = [ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    history = model.fit(binary_images(8), batch_size=4, epochs=1, verbose=0)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 2
    logs = {key: values[-1] for key, values in history.history.items()}
    assert {"loss", "elbo", "reconstruction", "kl"} <= set(logs)
    assert all(np.isfinite(value) for value in logs.values()), logs
    assert logs["elbo"] == pytest.approx(-logs["reconstruction"] - logs["kl"], rel=1e-4)
    assert logs["reconstruction"] > 0 and logs["kl"] >= 0
    unchanged = [v.path for v, old in zip(model.trainable_variables, before)
                 if np.array_equal(ops.convert_to_numpy(v), old)]
    assert not unchanged


def test_iwae_fit_logs_a_finite_bound_below_zero():
    """An IWAE model (k=2) logs `iwae_bound` in fit: finite, negative (a log-likelihood bound on
    binary images) and above the ELBO estimate up to Monte Carlo noise."""
    model = tiny_vae("conv", iwae_samples=2, kl_weight=1.0, reconstruction_reduction="sum")
    model.compile(optimizer=optimizers.MultiplierAdam(1e-3), run_eagerly=EAGER_IS_CHEAP)
    logs = model.fit(binary_images(4), batch_size=4, epochs=1, verbose=0).history
    bound = logs["iwae_bound"][-1]
    assert np.isfinite(bound) and bound < 0
    assert logs["loss"][-1] == pytest.approx(-bound, rel=1e-4)


def test_iwae_evaluate_does_not_report_a_bogus_bound():
    """Evaluation of an IWAE model must not log an iwae_bound of 0 nats it never computed."""
    model = tiny_vae("conv", iwae_samples=2, kl_weight=1.0, reconstruction_reduction="sum")
    model.compile(optimizer=optimizers.MultiplierAdam(1e-3))
    logs = model.evaluate(binary_images(4), batch_size=4, verbose=0, return_dict=True)
    assert np.isfinite(logs["elbo"]) and logs["elbo"] < 0
    assert logs["iwae_bound"] < 0 and logs["loss"] == pytest.approx(-logs["iwae_bound"], rel=1e-4)


# --- encode / decode / sample / log_likelihood ---------------------------------------------------------

@pytest.mark.parametrize("latent, latent_shape", [("dense", (128,)), ("recurrent", (4, 4, 8))])
def test_api_contract_shapes_and_values(latent, latent_shape):
    """encode -> (B, *latent); decode -> probabilities in [0, 1]; sample is seeded; log_likelihood is
    the Bernoulli formula; reconstruct returns images."""
    model = tiny_vae(latent)
    images = binary_images(3)
    mean, log_var = model.encode(images)
    assert tuple(mean.shape) == (3,) + latent_shape and tuple(log_var.shape) == (3,) + latent_shape
    probabilities = ops.convert_to_numpy(model.decode(mean))
    assert probabilities.shape == (3, 28, 28, 1)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    # The NumPy (compiled predict) and tensor (eager) decode paths agree.
    numpy_path = ops.convert_to_numpy(model.decode(ops.convert_to_numpy(mean)))
    np.testing.assert_allclose(numpy_path, probabilities, atol=1e-5)

    samples = ops.convert_to_numpy(model.sample(5, seed=2))
    assert samples.shape == (5, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_allclose(samples, ops.convert_to_numpy(model.sample(5, seed=2)), atol=1e-6)

    logits = ops.convert_to_numpy(model.decode_logits(mean)).astype("float64")
    log_likelihood = ops.convert_to_numpy(model.log_likelihood(images, mean))
    assert log_likelihood.shape == (3,) and (log_likelihood < 0).all()
    np.testing.assert_allclose(log_likelihood, np_log_px(logits, images), rtol=1e-5)
    p = np.clip(probabilities.astype("float64"), 1e-12, 1 - 1e-12)
    by_probabilities = np.sum((images * np.log(p) + (1 - images) * np.log(1 - p)).reshape(3, -1), 1)
    np.testing.assert_allclose(log_likelihood, by_probabilities, rtol=1e-3)

    reconstruction = ops.convert_to_numpy(model.reconstruct(images))
    np.testing.assert_allclose(reconstruction, probabilities, atol=1e-5)
    assert tuple(model.reconstruct(images, sample=True, seed=3).shape) == (3, 28, 28, 1)


def test_encode_is_deterministic_in_inference():
    """encode uses the BatchNorm moving statistics: the same image gives the same posterior alone or
    in a batch."""
    model = tiny_vae("conv")
    images = binary_images(3)
    batch_mean, _ = model.encode(images)
    single_mean, _ = model.encode(images[1:2])
    np.testing.assert_allclose(ops.convert_to_numpy(single_mean)[0],
                               ops.convert_to_numpy(batch_mean)[1], atol=1e-5)


# --- save / load ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("latent", [  # JAX saves and loads the recurrent one (tests/conftest.py)
    pytest.param("dense", marks=pytest.mark.tensorflow_variant),
    pytest.param("conv", marks=pytest.mark.tensorflow_variant), "recurrent"])
def test_keras_file_round_trip_keeps_outputs_and_training_state(tmp_path, latent):
    """A compiled, trained VAE saved to `.keras` loads with the same config, encode and decode
    outputs and optimizer state, and keeps training with the iteration count continuing."""
    kl_weight = 0.001 if latent == "dense" else [0.001] * 4
    model = tiny_vae(latent, kl_weight=kl_weight, reconstruction_reduction="sum")
    # Eager fit: what is saved and restored is the point here, not the traced step.
    model.compile(optimizer=optimizers.MultiplierAdam(
        1e-3, lr_multipliers={"recurrence/lstm_": 0.25}, clip_values={"recurrence": 5.0}),
        run_eagerly=EAGER_IS_CHEAP)
    images = binary_images(4)
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, models.VAE)
    assert loaded.kl_weight == model.kl_weight and loaded.reconstruction_reduction == "sum"
    assert loaded.seed == 1 and loaded.latent_shape == model.latent_shape
    for a, b in zip(model.encode(images), loaded.encode(images)):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-5)
    z = model.encode(images)[0]
    np.testing.assert_allclose(ops.convert_to_numpy(model.decode(z)),
                               ops.convert_to_numpy(loaded.decode(z)), atol=1e-5)

    assert isinstance(loaded.optimizer, optimizers.MultiplierAdam)
    assert loaded.optimizer.lr_multipliers == {"recurrence/lstm_": 0.25}
    assert loaded.optimizer.clip_values == {"recurrence": 5.0}
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 1
    # The path rules resolve to the same variables after loading (both LSTMs of both halves).
    rules = loaded.optimizer._variable_rules
    assert rules == model.optimizer._variable_rules
    assert sum(multiplier == 0.25 for multiplier, _ in rules) == (12 if latent == "recurrent" else 0)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-6)
    before = [ops.convert_to_numpy(v).copy() for v in loaded.trainable_variables]
    history = loaded.fit(images, batch_size=4, epochs=1, verbose=0)
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
    assert np.isfinite(history.history["loss"][-1])
    assert any(not np.array_equal(ops.convert_to_numpy(v), old)
               for v, old in zip(loaded.trainable_variables, before))


# --- bad input -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conv_vae():
    return tiny_vae("conv")


def test_wrong_image_shape_is_named(conv_vae):
    """A wrong per-example shape names `images` and the expected shape; a left-out channel axis of
    single-channel images is added (the library's one shape rule, as in `data`)."""
    with pytest.raises(ValueError, match=r"images.*\(batch, 28, 28, 1\)"):
        conv_vae.encode(np.zeros((2, 32, 32, 1), "float32"))
    without_axis = conv_vae.encode(np.zeros((2, 28, 28), "float32"))[0]
    np.testing.assert_allclose(without_axis, conv_vae.encode(np.zeros((2, 28, 28, 1), "float32"))[0])
    with pytest.raises(ValueError, match="images"):
        conv_vae.log_likelihood(np.zeros((2, 28, 28, 3), "float32"), np.zeros((2, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match="empty"):
        conv_vae.encode(np.zeros((0, 28, 28, 1), "float32"))
    with pytest.raises(ValueError, match="z"):
        conv_vae.decode(np.zeros((2, 7), "float32"))


def test_values_outside_unit_interval_are_rejected_for_numpy(conv_vae):
    """uint8-scale or negative or NaN pixels in a NumPy batch are an error that suggests / 255."""
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\].*255"):
        conv_vae.encode(np.full((2, 28, 28, 1), 255.0, "float32"))
    with pytest.raises(ValueError, match="images"):
        conv_vae.encode(np.full((2, 28, 28, 1), -0.5, "float32"))
    nan_images = np.zeros((2, 28, 28, 1), "float32")
    nan_images[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="images"):
        conv_vae.encode(nan_images)
    # Values in range, including uint8 zeros and ones, are accepted.
    mean, _ = conv_vae.encode(np.ones((1, 28, 28, 1), "uint8"))
    assert tuple(mean.shape) == (1, 4, 4, 8)


def test_sample_needs_at_least_one_sample(conv_vae):
    """num_samples=0 (or negative) in sample() is a ValueError naming num_samples."""
    for bad in (0, -3):
        with pytest.raises(ValueError, match="num_samples"):
            conv_vae.sample(bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"iwae_samples": 0}, "iwae_samples"),
    ({"reconstruction_reduction": "max"}, "reconstruction_reduction"),
    ({"likelihood": "poisson"}, "likelihood"),  # "bernoulli" and "gaussian" are valid
    ({"kl_weight": -1.0}, "kl_weight"),
    ({"kl_weight": [1.0, -1.0]}, "kl_weight"),
    ({"kl_weight": [1.0] * 3}, "block weights"),
])
def test_bad_constructor_arguments_are_named(kwargs, match):
    """Each invalid VAE argument raises a ValueError naming it."""
    config = dict(base_channels=2, latent_channels=8)
    encoder = networks.build_mnist_encoder("conv", **config)
    decoder = networks.build_mnist_decoder("conv", **config)
    with pytest.raises(ValueError, match=match):
        models.VAE(encoder, decoder, **kwargs)


def test_numpy_scalar_kl_weight_is_accepted():
    """kl_weight=np.float32(alpha) behaves like the Python float alpha."""
    config = dict(base_channels=2, latent_channels=8)
    model = models.VAE(networks.build_mnist_encoder("conv", **config),
                       networks.build_mnist_decoder("conv", **config), kl_weight=np.float32(0.5))
    assert model.kl_weight == 0.5 and isinstance(model.kl_weight, float)
    kl = np.ones((2, 1, 1, 8), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(losses.weighted_kl(kl, np.float32(0.5))), [4.0, 4.0])


def test_mismatched_networks_are_rejected():
    """An encoder latent that does not fit the decoder input is a clear error."""
    encoder = networks.build_mnist_encoder("conv", base_channels=2, latent_channels=8)
    other = networks.build_mnist_decoder("conv", base_channels=2, latent_channels=16)
    with pytest.raises(ValueError, match="decoder expects"):
        models.VAE(encoder, other)


def test_nan_loss_stops_training_with_a_message():
    """NaNGuard turns a diverging run into a FloatingPointError that suggests the learning rate."""
    from keras_crvae.callbacks import NaNGuard

    model = tiny_vae("conv")
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    with pytest.raises(FloatingPointError, match="learning rate"):
        model.fit(binary_images(16), batch_size=4, epochs=3, verbose=0, callbacks=[NaNGuard()])
