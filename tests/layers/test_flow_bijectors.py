"""The flow layers (couplings, squeeze, actnorm, invertible 1x1 convolution, diagonal scaling,
logit, multi-scale factor-out, priors): exact inverses, log-determinants against the autodiff
Jacobian, hand-built values, the data-dependent initialisation under fit(), `.keras` round trips."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import layers, networks
from keras_crvae.layers.invertible_conv import lu_decomposition
from tests.layers.bijector_checks import assert_invertible, assert_log_det_matches_autodiff

pytestmark = pytest.mark.portable

RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(2, 4, 4, 2)).astype("float32")


def _randomize(model, scale=0.3):
    """Non-zero weights everywhere (the builders zero the last layer: the identity map)."""
    rng = np.random.default_rng(1)
    model.set_weights([scale * rng.normal(size=w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def _coupling(cls, mask, parity, **kwargs):
    channels = IMAGES.shape[-1]
    inputs = (4, 4, channels) if mask == "checkerboard" else (4, 4, channels // 2)
    changed = channels if mask == "checkerboard" else channels // 2
    width = 2 if cls is layers.AffineCoupling else 1
    network = _randomize(networks.coupling_resnet(inputs, width * changed, 4, 1))
    return cls(network, mask=mask, parity=parity, **kwargs)


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("cls", [layers.AdditiveCoupling, layers.AffineCoupling])
def test_image_couplings_are_exact(cls, mask, parity):
    coupling = _coupling(cls, mask, parity)
    assert_invertible(coupling, IMAGES)
    assert_log_det_matches_autodiff(coupling, IMAGES)
    # The conditioning half passes unchanged; the other half changes.
    y = ops.convert_to_numpy(coupling.forward(IMAGES))
    if mask == "checkerboard":
        kept = np.broadcast_to(layers.checkerboard_mask(4, 4, parity), IMAGES.shape) == 1
    else:
        kept = np.zeros(IMAGES.shape, bool)
        kept[..., :1] = parity == 0
        kept[..., 1:] = parity == 1
    np.testing.assert_array_equal(y[kept], IMAGES[kept])
    assert np.all(np.abs(y[~kept] - IMAGES[~kept]) > 0)


def test_additive_coupling_preserves_volume_and_affine_sigmoid_is_exact():
    log_det = layers.AdditiveCoupling.forward_and_log_det(
        _coupling(layers.AdditiveCoupling, "checkerboard", 0), IMAGES)[1]
    np.testing.assert_array_equal(ops.convert_to_numpy(log_det), 0.0)
    coupling = _coupling(layers.AffineCoupling, "channel", 0, scale_function="sigmoid")
    assert_invertible(coupling, IMAGES)
    assert_log_det_matches_autodiff(coupling, IMAGES)


def test_alternate_coupling_on_vectors_splits_even_and_odd_entries():
    vectors = RNG.normal(size=(3, 6)).astype("float32")
    network = _randomize(networks.coupling_mlp(3, 3, hidden_units=5, hidden_layers=1))
    coupling = layers.AdditiveCoupling(network, mask="alternate", parity=1)
    assert_invertible(coupling, vectors)
    assert_log_det_matches_autodiff(coupling, vectors)
    y = ops.convert_to_numpy(coupling.forward(vectors))
    np.testing.assert_array_equal(y[:, 1::2], vectors[:, 1::2])  # parity 1: odd entries condition
    expected = vectors[:, 0::2] + ops.convert_to_numpy(network(vectors[:, 1::2]))
    np.testing.assert_allclose(y[:, 0::2], expected, rtol=1e-6, atol=1e-6)


def test_coupling_arguments_are_checked():
    network = networks.coupling_mlp(2, 2, 3, 1)
    with pytest.raises(ValueError, match="mask"):
        layers.AffineCoupling(network, mask="stripes")
    with pytest.raises(ValueError, match="scale_function"):
        layers.AffineCoupling(network, scale_function="exp")
    with pytest.raises(ValueError, match="vectors"):
        layers.AdditiveCoupling(network, mask="alternate").forward(IMAGES)


def test_squeeze_moves_each_pixel_to_its_hand_computed_place():
    squeeze = layers.Squeeze()
    y = ops.convert_to_numpy(squeeze.forward(IMAGES))
    assert y.shape == (2, 2, 2, 8)
    channels = IMAGES.shape[-1]
    for h, w, i, j, c in np.ndindex(2, 2, 2, 2, channels):
        assert y[1, h, w, (2 * i + j) * channels + c] == IMAGES[1, 2 * h + i, 2 * w + j, c]
    assert_invertible(squeeze, IMAGES)
    assert_log_det_matches_autodiff(squeeze, IMAGES)
    with pytest.raises(ValueError, match="even"):
        squeeze.build((None, 7, 7, 1))


def test_actnorm_initialises_from_its_first_training_batch():
    actnorm = layers.ActNorm()
    identity = ops.convert_to_numpy(actnorm.forward(IMAGES))  # not training: no initialisation
    np.testing.assert_array_equal(identity, IMAGES)
    y = ops.convert_to_numpy(actnorm.forward(IMAGES, training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    # Later training batches use the first batch's statistics: (x + b) * exp(s) with b, s fixed.
    again = ops.convert_to_numpy(actnorm.forward(2.0 * IMAGES + 1.0, training=True))
    mean, std = IMAGES.mean(axis=(0, 1, 2)), IMAGES.std(axis=(0, 1, 2))
    np.testing.assert_allclose(again, (2.0 * IMAGES + 1.0 - mean) / std, rtol=1e-4, atol=1e-4)
    assert_invertible(actnorm, IMAGES)
    assert_log_det_matches_autodiff(actnorm, IMAGES)
    expected = 16 * np.sum(-np.log(IMAGES.std(axis=(0, 1, 2))))
    np.testing.assert_allclose(ops.convert_to_numpy(actnorm.log_det_jacobian(IMAGES)), expected,
                               rtol=1e-4)


class NormalizedModel(keras.Model):
    """ActNorm as a whole model, trained with plain fit() (a learning rate of 0 keeps the
    parameters at their initial values)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = layers.ActNorm()

    def call(self, x, training=None):
        return self.norm(x, training=training)


def test_actnorm_initialises_under_fit_and_survives_save_and_load(tmp_path):
    model = NormalizedModel(name="normalized")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(IMAGES, IMAGES, batch_size=2, epochs=1, verbose=0, shuffle=False)
    norm = model.norm
    np.testing.assert_allclose(ops.convert_to_numpy(norm.initial_bias),
                               -IMAGES.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(norm.initial_log_scale),
                               -np.log(IMAGES.std(axis=(0, 1, 2))), rtol=1e-4)
    # A second fit on other data does not initialise again.
    model.fit(3.0 * IMAGES, IMAGES, batch_size=2, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(ops.convert_to_numpy(norm.initial_bias),
                               -IMAGES.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    path = tmp_path / "actnorm.keras"
    wrapper = keras.Sequential([keras.Input((4, 4, 2)), norm])
    wrapper.save(path)
    loaded = keras.saving.load_model(path).layers[-1]
    assert float(ops.convert_to_numpy(loaded.initialized)) == 1.0
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.forward(IMAGES, training=True)),
                               ops.convert_to_numpy(norm.forward(IMAGES)), rtol=1e-6, atol=1e-6)


def test_lu_decomposition_reconstructs_the_matrix():
    matrix = RNG.normal(size=(5, 5))
    permutation, lower, upper = lu_decomposition(matrix)
    np.testing.assert_allclose(permutation @ lower @ upper, matrix, atol=1e-12)
    np.testing.assert_array_equal(np.diag(lower), 1.0)
    assert np.allclose(np.tril(lower), lower) and np.allclose(np.triu(upper), upper)
    np.testing.assert_array_equal(np.sort(permutation, axis=0)[-1], 1.0)


def test_invertible_conv_starts_as_a_rotation_and_is_exact():
    conv = layers.InvertibleConv1x1(seed=3)
    conv.build(IMAGES.shape)
    weight = ops.convert_to_numpy(conv.weight_matrix())
    np.testing.assert_allclose(weight @ weight.T, np.eye(2), atol=1e-5)
    conv.set_weights([w if not conv.weights[i].trainable else
                      w + 0.3 * RNG.normal(size=w.shape).astype("float32")
                      for i, w in enumerate(conv.get_weights())])
    weight = ops.convert_to_numpy(conv.weight_matrix())
    y = ops.convert_to_numpy(conv.forward(IMAGES))
    np.testing.assert_allclose(y, IMAGES @ weight.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(conv.log_det_jacobian(IMAGES)),
                               16 * np.linalg.slogdet(weight)[1], rtol=1e-4)
    assert_invertible(conv, IMAGES)
    assert_log_det_matches_autodiff(conv, IMAGES)


def test_diagonal_scaling_and_logit_are_exact():
    scaling = layers.DiagonalScaling()
    scaling.build(IMAGES.shape)
    scaling.log_scale.assign(RNG.normal(size=(4, 4, 2)).astype("float32"))
    assert_invertible(scaling, IMAGES)
    assert_log_det_matches_autodiff(scaling, IMAGES)
    logit = layers.LogitTransform(alpha=0.05)
    unit = RNG.uniform(size=(2, 3, 3, 1)).astype("float32")
    assert_invertible(logit, unit)
    assert_log_det_matches_autodiff(logit, unit)
    p = 0.05 + 0.9 * unit
    np.testing.assert_allclose(ops.convert_to_numpy(logit.forward(unit)), np.log(p / (1 - p)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        layers.LogitTransform(alpha=0.5)


def test_multiscale_flow_factors_out_half_and_is_exact():
    images = RNG.normal(size=(2, 8, 8, 1)).astype("float32")
    flow = networks.build_realnvp_flow((8, 8, 1), scales=2, couplings_per_stage=1,
                                       final_couplings=1, hidden_channels=4, residual_blocks=1)
    _randomize(flow)
    z = ops.convert_to_numpy(flow.forward(images))
    assert z.shape == (2, 64)
    # The first 32 entries are the half factored out after scale 0, flattened.
    scale_0 = ops.convert_to_numpy(flow.scales[0].forward(images))
    np.testing.assert_allclose(z[:, :32], scale_0[..., :2].reshape(2, 32), rtol=1e-6)
    assert_invertible(flow, images)
    assert_log_det_matches_autodiff(flow, images)
    with pytest.raises(ValueError, match="at most 2"):
        networks.build_glow_flow((28, 28, 1), levels=3)


def test_glows_learned_split_prior_is_exact_and_starts_as_the_fixed_prior():
    images = RNG.normal(size=(2, 8, 8, 1)).astype("float32")
    settings = dict(levels=2, steps_per_level=1, hidden_channels=4, seed=0)
    plain = networks.build_glow_flow((8, 8, 1), **settings)
    learned = networks.build_glow_flow((8, 8, 1), learned_split_prior=True, **settings)
    plain.build(images.shape)
    learned.build(images.shape)
    # The same non-zero trainable weights in both (the fixed permutation and signs of the 1x1
    # convolutions stay as built); the split prior's convolution stays zero: m = 0, s = 1.
    rng = np.random.default_rng(1)
    for plain_weight, learned_weight in zip(plain.trainable_weights, learned.trainable_weights):
        value = 0.3 * rng.normal(size=plain_weight.shape).astype("float32")
        plain_weight.assign(value)
        learned_weight.assign(value)
    assert not np.any(ops.convert_to_numpy(learned.split_priors[0].kernel))
    for method in ("forward", "log_det_jacobian"):
        np.testing.assert_allclose(ops.convert_to_numpy(getattr(learned, method)(images)),
                                   ops.convert_to_numpy(getattr(plain, method)(images)),
                                   rtol=1e-6, atol=1e-6)
    # With a non-zero convolution the factored-out half is (z - m(h)) / s(h), by hand ...
    rng = np.random.default_rng(2)
    learned.split_priors[0].set_weights([0.3 * rng.normal(size=w.shape).astype("float32")
                                         for w in learned.split_priors[0].weights])
    kept = ops.convert_to_numpy(plain.scales[0].forward(images))  # (2, 4, 4, 4): z | h
    statistics = ops.convert_to_numpy(learned.split_priors[0](kept[..., 2:]))
    mean, log_scale = statistics[..., :2], statistics[..., 2:]
    expected = ((kept[..., :2] - mean) * np.exp(-log_scale)).reshape(2, -1)
    np.testing.assert_allclose(ops.convert_to_numpy(learned.forward(images))[:, :32], expected,
                               rtol=1e-5, atol=1e-5)
    # ... and the log-determinant is that of the whole map, with the inverse exact.
    assert_log_det_matches_autodiff(learned, images)
    assert_invertible(learned, images)


def test_priors_match_their_closed_forms_and_temperature():
    z = RNG.normal(size=(3, 4, 2)).astype("float64") * 2
    gaussian, logistic = layers.StandardGaussian(), layers.StandardLogistic()
    np.testing.assert_allclose(ops.convert_to_numpy(gaussian.log_prob(z)),
                               np.sum(-z ** 2 / 2 - 0.5 * math.log(2 * math.pi), axis=(1, 2)),
                               rtol=1e-5)
    sig = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(ops.convert_to_numpy(logistic.log_prob(z)),
                               np.sum(np.log(sig * (1 - sig)), axis=(1, 2)), rtol=1e-5)
    draws = ops.convert_to_numpy(gaussian.sample((20000,), temperature=0.5, seed=0))
    assert abs(draws.std() - 0.5) < 0.01 and abs(draws.mean()) < 0.01
    draws = ops.convert_to_numpy(logistic.sample((20000,), temperature=0.5, seed=0))
    assert abs(draws.std() - 0.5 * math.pi / math.sqrt(3)) < 0.02


def test_serialization_round_trips(run_layer_test):
    run_layer_test(layers.Squeeze, {}, IMAGES, expected_trainable_weights=0)
    run_layer_test(layers.FlattenEvent, {"event_shape": (4, 4, 2)}, IMAGES,
                   expected_trainable_weights=0)
    run_layer_test(layers.ActNorm, {"epsilon": 1e-5}, IMAGES, expected_trainable_weights=2,
                   expected_non_trainable_weights=3)
    run_layer_test(layers.InvertibleConv1x1, {"seed": 1}, IMAGES, expected_trainable_weights=3,
                   expected_non_trainable_weights=2)
    run_layer_test(layers.DiagonalScaling, {}, IMAGES, expected_trainable_weights=1)
    run_layer_test(layers.LogitTransform, {"alpha": 0.1}, np.abs(IMAGES) / 4,
                   expected_trainable_weights=0)


def test_coupling_with_its_network_survives_save_and_load(tmp_path):
    # (Not `run_layer_test`: a nested functional network's config renames its layers on load.)
    coupling = _coupling(layers.AffineCoupling, "channel", 1, scale_function="sigmoid")
    model = keras.Sequential([keras.Input((4, 4, 2)), coupling])
    model.save(tmp_path / "coupling.keras")
    loaded = keras.saving.load_model(tmp_path / "coupling.keras").layers[-1]
    assert isinstance(loaded, layers.AffineCoupling)
    assert (loaded.mask, loaded.parity, loaded.scale_function) == ("channel", 1, "sigmoid")
    for expected, actual in zip(coupling.forward_and_log_det(IMAGES),
                                loaded.forward_and_log_det(IMAGES)):
        np.testing.assert_allclose(ops.convert_to_numpy(actual), ops.convert_to_numpy(expected),
                                   rtol=1e-6, atol=1e-6)
