"""MaskedConv2D and GatedPixelCNNBlock: the masks by hand, the function against a plain
convolution with a masked kernel, argument checks, and `.keras` round trips."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import (GatedPixelCNNBlock, MaskedConv2D, causal_conv_mask,
                                gated_activation, shift_down)

pytestmark = pytest.mark.portable


def test_grey_masks_by_hand():
    a = causal_conv_mask((3, 3), 1, 1, "A")[..., 0, 0]
    b = causal_conv_mask((3, 3), 1, 1, "B")[..., 0, 0]
    vertical = causal_conv_mask((3, 3), 1, 1, "vertical")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(vertical, [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    row = causal_conv_mask((1, 5), 1, 1, "A")[..., 0, 0]
    np.testing.assert_array_equal(row, [[1, 1, 0, 0, 0]])


def test_rgb_centre_masks_by_hand():
    # 3 input channels (R, G, B), 6 outputs (2 per colour): [in, out] at the centre tap.
    a = causal_conv_mask((3, 3), 3, 6, "A", color_channels=3)[1, 1]
    b = causal_conv_mask((3, 3), 3, 6, "B", color_channels=3)[1, 1]
    np.testing.assert_array_equal(a, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
    # Off the centre every channel pair is kept (above) or removed (right, below).
    full = causal_conv_mask((3, 3), 3, 6, "A", color_channels=3)
    assert full[0].all() and full[1, 0].all() and not full[1, 2].any() and not full[2].any()


def test_matches_a_convolution_with_the_masked_kernel():
    keras.utils.set_random_seed(0)
    layer = MaskedConv2D(6, 5, mask_type="A", color_channels=3)
    images = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    outputs = ops.convert_to_numpy(layer(images))
    kernel = ops.convert_to_numpy(layer.kernel) * causal_conv_mask((5, 5), 3, 6, "A", 3)
    expected = (ops.convert_to_numpy(ops.conv(images, kernel, padding="same"))
                + ops.convert_to_numpy(layer.bias))
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # The stored kernel is untouched: its masked taps keep their initial (non-zero) values.
    assert np.abs(ops.convert_to_numpy(layer.kernel)[4]).sum() > 0


def test_shift_down_and_gated_activation():
    features = np.arange(2 * 3 * 1 * 4, dtype="float32").reshape(2, 3, 1, 4)
    shifted = ops.convert_to_numpy(shift_down(features))
    np.testing.assert_array_equal(shifted[:, 0], 0.0)
    np.testing.assert_array_equal(shifted[:, 1:], features[:, :-1])
    # Two colour groups of 2 channels: group g = tanh(channel 2g) * sigmoid(channel 2g + 1).
    gated = ops.convert_to_numpy(gated_activation(features * 0.1, color_channels=2))
    x = features * 0.1
    expected = np.tanh(x[..., [0, 2]]) / (1 + np.exp(-x[..., [1, 3]]))
    np.testing.assert_allclose(gated, expected, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(filters=4, kernel_size=4), "odd"),
    (dict(filters=4, kernel_size=3, mask_type="C"), "mask_type"),
    (dict(filters=4, kernel_size=3, strides=2), "strides"),
    (dict(filters=4, kernel_size=3, padding="valid"), "padding"),
    (dict(filters=4, kernel_size=3, color_channels=3), "multiple"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskedConv2D(**kwargs)


def test_masked_conv_round_trip(run_layer_test):
    images = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype("float32")
    run_layer_test(MaskedConv2D, dict(filters=6, kernel_size=3, mask_type="A", color_channels=3),
                   images, expected_trainable_weights=2)


@pytest.mark.parametrize("condition_shape, weights", [(None, 8), ((3,), 10), ((5, 5, 2), 10)])
def test_gated_block_round_trip(run_layer_test, condition_shape, weights):
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 5, 5, 4)).astype("float32") for _ in range(2)]
    if condition_shape is not None:
        inputs.append(rng.normal(size=(2,) + condition_shape).astype("float32"))
    run_layer_test(GatedPixelCNNBlock, dict(filters=4, kernel_size=3), inputs,
                   expected_trainable_weights=weights)


def test_gated_block_checks_the_residual_width():
    block = GatedPixelCNNBlock(4)
    with pytest.raises(ValueError, match="residual"):
        block([np.zeros((1, 3, 3, 2), "float32"), np.zeros((1, 3, 3, 2), "float32")])
