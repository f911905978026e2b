"""ConcatenatedReLU and ElementwiseBias: values by hand, shapes, errors, serialization."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import ConcatenatedReLU, ElementwiseBias

pytestmark = pytest.mark.portable


def test_concatenated_relu_values_by_hand():
    """relu([x, -x]) on the channel axis: positives first, then the negated negatives."""
    x = np.array([[1.0, -2.0, 0.0, 3.5]], "float32")
    out = ops.convert_to_numpy(ConcatenatedReLU()(x))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 0.0, 3.5, 0.0, 2.0, 0.0, 0.0]])


def test_concatenated_relu_on_another_axis():
    """axis=1 concatenates along rows of a (1, 2, 2) tensor."""
    x = np.array([[[1.0, -1.0], [-3.0, 4.0]]], "float32")
    out = ops.convert_to_numpy(ConcatenatedReLU(axis=1)(x))
    np.testing.assert_array_equal(out, [[[1.0, 0.0], [0.0, 4.0], [0.0, 1.0], [3.0, 0.0]]])


def test_concatenated_relu_output_shape():
    """Channels double; an unknown channel count stays unknown; the symbolic call agrees."""
    layer = ConcatenatedReLU()
    assert layer.compute_output_shape((None, 4, 4, 3)) == (None, 4, 4, 6)
    assert layer.compute_output_shape((None, 4, None)) == (None, 4, None)
    assert ConcatenatedReLU(axis=1).compute_output_shape((2, 5, 3)) == (2, 10, 3)
    assert tuple(layer(keras.Input((4, 4, 3))).shape) == (None, 4, 4, 6)


def test_concatenated_relu_round_trips(run_layer_test):
    """No weights; from_config and `.keras` round trips (with a non-default axis) keep the outputs."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype("float32")
    _, out = run_layer_test(ConcatenatedReLU, {"axis": 1}, x, expected_trainable_weights=0)
    out = ops.convert_to_numpy(out)
    np.testing.assert_array_equal(out, np.maximum(np.concatenate([x, -x], axis=1), 0.0))


def test_elementwise_bias_has_one_value_per_element():
    """The bias has the full per-example shape, starts in [-r, r], and is added to every example."""
    keras.utils.set_random_seed(0)
    layer = ElementwiseBias(init_range=0.01)
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    out = ops.convert_to_numpy(layer(x))
    bias = ops.convert_to_numpy(layer.bias)
    assert bias.shape == (3, 4)
    assert np.abs(bias).max() <= 0.01 and np.abs(bias).max() > 0
    assert len(np.unique(bias)) == bias.size  # not a broadcast constant
    np.testing.assert_allclose(out[0], x[0] + bias, atol=1e-7)
    np.testing.assert_allclose(out[1], x[1] + bias, atol=1e-7)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 4)


def test_elementwise_bias_zero_range_and_errors():
    """init_range=0 starts at zero; a negative range and an unknown per-example shape are errors."""
    layer = ElementwiseBias(init_range=0.0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(np.ones((1, 2), "float32"))), 1.0)
    with pytest.raises(ValueError, match="init_range"):
        ElementwiseBias(init_range=-0.1)
    with pytest.raises(ValueError, match="fully known"):
        ElementwiseBias().build((None, None, 4))


def test_elementwise_bias_round_trips(run_layer_test):
    """One trainable weight; copied weights and the `.keras` file reproduce the outputs."""
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 3)).astype("float32")
    layer, out = run_layer_test(ElementwiseBias, {"init_range": 0.5}, x,
                                expected_trainable_weights=1)
    assert layer.get_config()["init_range"] == 0.5
    np.testing.assert_allclose(ops.convert_to_numpy(out), x + ops.convert_to_numpy(layer.bias),
                               atol=1e-6)
