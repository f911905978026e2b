"""Planar, radial and IAF bijectors and MADE: exactness (inverse, autodiff log-determinant),
the invertibility constraints, MADE's autoregressive structure, hand-computed values and `.keras`
round trips."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import MADE, InverseAutoregressiveFlow, PlanarFlow, RadialFlow
from keras_crvae.layers.made import autoregressive_masks, input_degrees
from tests.layers.bijector_checks import (assert_invertible, assert_log_det_matches_autodiff,
                                          autodiff_jacobians)

pytestmark = pytest.mark.portable


def _normal(shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def _assert_log_det_matches_autodiff_per_example(bijector, x, context):
    """The autodiff check one example at a time, each with its own context row (JAX's check
    differentiates one example of `x` against the whole `context`)."""
    for index in range(x.shape[0]):
        assert_log_det_matches_autodiff(bijector, x[index:index + 1],
                                        context=context[index:index + 1])


def _set_raw(flow, *values):
    flow.build((None, len(values[0])))
    for weight, value in zip(flow.raw_parameters, values):
        weight.assign(np.asarray(value, dtype="float32"))
    return flow


# --- planar ---------------------------------------------------------------------------------------

def test_planar_matches_hand_computation_and_keeps_w_dot_u_hat_above_minus_one():
    # w.u = -3 would make f non-invertible; appendix A's u_hat moves it to m(-3) = -1 + softplus(-3).
    u, w, b = [-3.0, 0.0], [1.0, 0.0], [0.5]
    flow = _set_raw(PlanarFlow(), u, w, b)
    z = np.array([[0.2, -1.0], [1.5, 2.0]], "float32")
    m = -1.0 + np.log1p(np.exp(-3.0))
    u_hat = np.array([m, 0.0])  # u + (m - w.u) w / |w|^2
    activation = np.tanh(z @ np.array(w) + 0.5)
    expected = z + activation[:, None] * u_hat
    expected_log_det = np.log(np.abs(1.0 + (1.0 - activation ** 2) * m))
    y, log_det = flow.forward_and_log_det(z)
    np.testing.assert_allclose(ops.convert_to_numpy(y), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(log_det), expected_log_det, rtol=1e-5)
    assert m > -1.0


def test_planar_inverts_to_float32_precision_even_near_the_constraint():
    z = _normal((16, 5), seed=1, scale=2.0)
    for seed, scale in ((2, 0.5), (3, 4.0)):  # mild and strongly non-linear flows
        u, w = _normal((5,), seed, scale), _normal((5,), seed + 10, scale)
        flow = _set_raw(PlanarFlow(), u, w, [0.3])
        assert_invertible(flow, z)
        assert_log_det_matches_autodiff(flow, z[:4])


def test_amortised_planar_takes_its_parameters_from_the_context():
    flow = PlanarFlow(context_dim=3)
    flow.build((None, 2, 2))
    flow.parameter_net.kernel.assign(_normal((3, 9), seed=4, scale=0.7))
    x, context = _normal((6, 2, 2), seed=5), _normal((6, 3), seed=6)
    assert_invertible(flow, x, context=context)
    _assert_log_det_matches_autodiff_per_example(flow, x[:3], context[:3])
    # Two examples with different contexts get different maps of the same input.
    y = ops.convert_to_numpy(flow.forward(np.repeat(x[:1], 2, axis=0), context=context[:2]))
    assert np.abs(y[0] - y[1]).max() > 1e-3
    with pytest.raises(ValueError, match="needs a `context`"):
        flow.forward(x)


def test_planar_with_zero_parameters_is_the_identity():
    flow = _set_raw(PlanarFlow(), [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0])
    z = _normal((4, 3), seed=7)
    y, log_det = flow.forward_and_log_det(z)
    np.testing.assert_array_equal(ops.convert_to_numpy(y), z)
    np.testing.assert_array_equal(ops.convert_to_numpy(log_det), np.zeros(4, "float32"))


# --- radial ---------------------------------------------------------------------------------------

def test_radial_matches_hand_computation():
    z0, alpha_raw, beta_raw = [0.5, -0.5, 1.0], [0.2], [1.3]
    flow = _set_raw(RadialFlow(), z0, alpha_raw, beta_raw)
    z = _normal((3, 3), seed=8)
    alpha = np.log1p(np.exp(0.2))
    beta = -alpha + np.log1p(np.exp(1.3))
    offset = z - np.array(z0)
    r = np.linalg.norm(offset, axis=1, keepdims=True)
    h = 1.0 / (alpha + r)
    expected = z + beta * h * offset
    expected_log_det = (2 * np.log(1 + beta * h) + np.log(1 + beta * h - beta * r * h ** 2))[:, 0]
    y, log_det = flow.forward_and_log_det(z)
    np.testing.assert_allclose(ops.convert_to_numpy(y), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(log_det), expected_log_det, rtol=1e-5)


@pytest.mark.parametrize("beta_raw", [-6.0, 0.0, 3.0])  # beta_hat near -alpha, < 0 and > 0
def test_radial_inverts_to_float32_precision(beta_raw):
    flow = _set_raw(RadialFlow(), _normal((4,), seed=9), [0.5], [beta_raw])
    z = _normal((12, 4), seed=10, scale=1.5)
    assert_invertible(flow, z)
    assert_log_det_matches_autodiff(flow, z[:4])


def test_amortised_radial_is_exact():
    flow = RadialFlow(context_dim=2)
    flow.build((None, 3))
    flow.parameter_net.kernel.assign(_normal((2, 5), seed=11))
    x, context = _normal((5, 3), seed=12), _normal((5, 2), seed=13)
    assert_invertible(flow, x, context=context)
    _assert_log_det_matches_autodiff_per_example(flow, x[:3], context[:3])


# --- MADE -----------------------------------------------------------------------------------------

def test_made_masks_follow_the_degrees():
    masks = autoregressive_masks(3, [4], "left_to_right")
    # Hidden degrees 1, 2, 1, 2: unit k sees inputs of degree <= m_k; output d sees m_k < d.
    np.testing.assert_array_equal(masks[0], [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(masks[1], [[0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(input_degrees(3, "right_to_left"), [3, 2, 1])


@pytest.mark.parametrize("ordering", ["left_to_right", "right_to_left"])
def test_made_is_exactly_autoregressive(ordering):
    dim, num_params = 5, 2
    made = MADE([12, 12], num_params=num_params, ordering=ordering, context_dim=3)
    context = _normal((2, 3), seed=14)
    made.build((None, dim))
    x = _normal((2, dim), seed=15)
    jacobian = autodiff_jacobians(
        lambda value: ops.reshape(made(value, context=context), (2, dim * num_params)), x)
    degrees = input_degrees(dim, ordering)
    for output in range(dim):
        rows = jacobian[:, output * num_params:(output + 1) * num_params, :]
        later = degrees >= degrees[output]
        assert np.all(rows[:, :, later] == 0.0), (output, rows)
        if degrees[output] > 1:
            assert np.abs(rows[:, :, ~later]).max() > 1e-6
    # The context reaches every output, the first in the ordering included.
    first = int(np.argmin(degrees))
    with_other_context = ops.convert_to_numpy(made(x, context=context[::-1]))
    assert np.abs(with_other_context[:, first] - ops.convert_to_numpy(
        made(x, context=context))[:, first]).max() > 1e-6


def test_made_round_trip(run_layer_test):
    run_layer_test(MADE, {"hidden_units": [6], "num_params": 2}, _normal((3, 4), seed=16),
                   expected_trainable_weights=4)


# --- IAF ------------------------------------------------------------------------------------------

def test_iaf_step_matches_its_made_by_hand():
    step = InverseAutoregressiveFlow([6], context_dim=2, gate_bias=1.0)
    step.build((None, 4))
    z, context = _normal((3, 4), seed=17), _normal((3, 2), seed=18)
    outputs = ops.convert_to_numpy(step.made(z, context=context))
    sigma = 1.0 / (1.0 + np.exp(-(outputs[..., 1] + 1.0)))
    y, log_det = step.forward_and_log_det(z, context=context)
    np.testing.assert_allclose(ops.convert_to_numpy(y), sigma * z + (1 - sigma) * outputs[..., 0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(log_det), np.log(sigma).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("ordering", ["left_to_right", "right_to_left"])
def test_iaf_step_is_exact(ordering):
    step = InverseAutoregressiveFlow([10, 10], context_dim=3, ordering=ordering)
    step.build((None, 2, 3))
    # Large output weights: a strongly non-linear step, not the near-identity of a fresh one.
    step.made.kernels[-1].assign(_normal(tuple(step.made.kernels[-1].shape), seed=19))
    x, context = _normal((4, 2, 3), seed=20), _normal((4, 3), seed=21)
    assert_invertible(step, x, context=context)
    _assert_log_det_matches_autodiff_per_example(step, x[:2], context[:2])


# --- serialization --------------------------------------------------------------------------------

@pytest.mark.parametrize("layer_cls, config, weights", [
    (PlanarFlow, {}, 3), (RadialFlow, {}, 3),
    (InverseAutoregressiveFlow, {"hidden_units": [5], "ordering": "right_to_left"}, 4),
])
def test_flow_round_trips(run_layer_test, layer_cls, config, weights):
    run_layer_test(layer_cls, config, _normal((2, 4), seed=22), expected_trainable_weights=weights)


def test_context_flows_round_trip_through_a_keras_file(tmp_path):
    inputs, context = keras.Input((4,)), keras.Input((2,))
    flows = [PlanarFlow(context_dim=2), RadialFlow(context_dim=2),
             InverseAutoregressiveFlow([6], context_dim=2)]
    y = inputs
    for flow in flows:
        y = flow(y, context=context)
    model = keras.Model([inputs, context], y)
    for layer in model.layers:
        for weight in layer.trainable_weights:
            weight.assign(_normal(tuple(weight.shape), seed=23, scale=0.3))
    data = [_normal((3, 4), seed=24), _normal((3, 2), seed=25)]
    model.save(tmp_path / "flows.keras")
    loaded = keras.saving.load_model(tmp_path / "flows.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(data)),
                               ops.convert_to_numpy(model(data)), rtol=1e-6, atol=1e-6)
