"""`FlowModel` (NICE, RealNVP, Glow) on tiny configurations: the log-likelihood equals the
change-of-variables formula computed by hand from the autodiff Jacobian, the flows invert exactly,
sampling, fit() with its metrics, and `.keras` round trips."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import layers, networks
from keras_crvae.models import FlowModel
from tests.layers.bijector_checks import assert_invertible, autodiff_jacobians

pytestmark = pytest.mark.portable

SHAPE = (4, 4, 1)
D = 16
RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, size=(3,) + SHAPE).astype("float32")
NOISE = RNG.uniform(size=(3,) + SHAPE).astype("float32")


def _randomize(layer, scale=0.2):
    rng = np.random.default_rng(1)
    for weight in layer.trainable_weights:
        weight.assign(weight + scale * rng.normal(size=weight.shape).astype("float32"))


def _tiny(kind):
    if kind == "nice":
        flow = networks.build_nice_flow(SHAPE, coupling_layers=2, hidden_units=8,
                                        hidden_layers=1)
        return FlowModel(flow, layers.StandardLogistic(), image_shape=SHAPE, seed=0)
    if kind == "realnvp":
        flow = networks.build_realnvp_flow(SHAPE, scales=1, couplings_per_stage=1,
                                           final_couplings=1, hidden_channels=4,
                                           residual_blocks=1)
    else:  # "glow", or "glow_learned_prior": Glow's learned prior of the split-off half
        flow = networks.build_glow_flow(SHAPE, levels=2, steps_per_level=1, hidden_channels=4,
                                        seed=0, learned_split_prior=kind == "glow_learned_prior")
    model = FlowModel(flow, layers.StandardGaussian(), image_shape=SHAPE, logit_alpha=0.05,
                      seed=0)
    model(GREY, training=True)  # Glow: the actnorm's data-dependent initialisation
    return model


def _log_prior(kind, z):
    if kind == "nice":
        return np.sum(-np.logaddexp(0, z) - np.logaddexp(0, -z), axis=1)
    return np.sum(-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi), axis=1)


@pytest.mark.parametrize("kind", ["nice", "realnvp", "glow", "glow_learned_prior"])
def test_log_likelihood_is_the_change_of_variables_formula(kind):
    model = _tiny(kind)
    _randomize(model.flow)
    unit = (GREY + NOISE) / 256.0

    def to_latent(y):  # the whole map from [0, 1) images to z
        if model.logit is not None:
            y = model.logit.forward(y)
        return model.flow.forward(y)

    z = np.asarray(ops.convert_to_numpy(to_latent(unit)), np.float64)
    _, log_det = np.linalg.slogdet(autodiff_jacobians(to_latent, unit))
    expected = _log_prior(kind, z.reshape(3, -1)) + log_det - D * math.log(256.0)
    actual = ops.convert_to_numpy(model.dequantized_log_density(GREY, NOISE))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-3)
    # The flow inverts exactly on its own input.
    preprocessed = unit if model.logit is None else model.logit.forward(unit)
    assert_invertible(model.flow, preprocessed, atol=1e-4)


def test_log_likelihood_draws_noise_in_the_unit_cube():
    # Untrained NICE is the identity (zero-initialised couplings, zero log-scales), so log p_Y is
    # the logistic log-density, decreasing on [0, 1): log p_V(x + u) lies between its values at
    # u = 1 and u = 0 for every draw u in [0, 1)^D.
    model = _tiny("nice")
    first = ops.convert_to_numpy(model.log_likelihood(GREY))
    second = ops.convert_to_numpy(model.log_likelihood(GREY))
    assert first.shape == (3,) and not np.allclose(first, second)
    flat = GREY.reshape(3, -1).astype(np.float64)
    low = _log_prior("nice", (flat + 1) / 256) - D * math.log(256.0)
    high = _log_prior("nice", flat / 256) - D * math.log(256.0)
    assert np.all((low <= first) & (first <= high) & (low <= second) & (second <= high))
    with pytest.raises(ValueError, match="255"):
        model.log_likelihood(GREY + 300)


def test_sample_shapes_range_and_temperature_zero():
    model = _tiny("glow")
    samples = ops.convert_to_numpy(model.sample(5, temperature=1.0, seed=1))
    assert samples.shape == (5,) + SHAPE and samples.min() >= 0 and samples.max() <= 1
    # Temperature 0 is the image of z = 0, whatever the seed.
    np.testing.assert_allclose(ops.convert_to_numpy(model.sample(2, temperature=0.0, seed=1)),
                               ops.convert_to_numpy(model.sample(2, temperature=0.0, seed=2)),
                               atol=1e-6)


def test_fit_logs_nll_and_bits_per_dim():
    model = _tiny("nice")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.repeat(GREY, 4, axis=0)
    history = model.fit(images, batch_size=6, epochs=2, verbose=0, shuffle=False).history
    for nll, bits, loss in zip(history["nll"], history["bits_per_dim"], history["loss"]):
        assert bits == pytest.approx(nll / (D * math.log(2.0)), rel=1e-5)
        assert loss == pytest.approx(nll, rel=1e-5)


@pytest.mark.parametrize("kind", ["glow", "glow_learned_prior"])
def test_multiscale_model_round_trips(tmp_path, kind):
    model = _tiny(kind)
    _randomize(model.flow)
    path = tmp_path / "flow.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FlowModel) and loaded.data_kind == "grey256"
    assert loaded.flow.learned_split_prior == (kind == "glow_learned_prior")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.dequantized_log_density(GREY, NOISE)),
                               ops.convert_to_numpy(model.dequantized_log_density(GREY, NOISE)),
                               rtol=1e-5)
