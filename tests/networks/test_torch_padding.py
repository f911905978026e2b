"""The builders' "same"-padding shortcuts compute exactly the Torch-style pad/crop construction."""

import keras
import numpy as np
import pytest

from keras_crvae.networks import blocks

pytestmark = pytest.mark.portable


def _copy_weights(source, target):
    for s, t in zip(source.weights, target.weights):
        t.assign(s)


@pytest.mark.parametrize("size,padding", [(4, 1), (7, 1), (16, 2), (5, 3)])
def test_stride2_transposed_conv_is_valid_then_crop(size, padding):
    inputs = keras.Input((size, size, 3))
    fast = keras.Model(inputs, blocks.transposed_conv(inputs, 5, padding=padding, name="fast"))
    valid = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="valid", name="valid")
    reference = keras.Model(inputs, keras.layers.Cropping2D(padding)(valid(inputs)))
    _copy_weights(fast, reference)
    # Non-zero bias too, so an off-by-one crop would show at the border.
    reference.layers[1].bias.assign(np.arange(5, dtype="float32"))
    fast.layers[1].bias.assign(np.arange(5, dtype="float32"))
    x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype("float32")
    side = 2 * size + 2 - 2 * padding
    assert fast.output_shape == reference.output_shape == (None, side, side, 5)
    np.testing.assert_allclose(fast(x), reference(x), atol=1e-5)
    if padding == 1:
        assert not any(isinstance(layer, keras.layers.Cropping2D) for layer in fast.layers)


@pytest.mark.parametrize("kernel", [3, 5])
def test_stride1_symmetric_padding_is_same(kernel):
    inputs = keras.Input((6, 6, 2))
    fast = keras.Model(inputs, blocks.conv(inputs, 4, kernel, padding=(kernel - 1) // 2, name="c"))
    padded = keras.layers.ZeroPadding2D((kernel - 1) // 2)(inputs)
    reference = keras.Model(inputs, keras.layers.Conv2D(4, kernel, padding="valid")(padded))
    _copy_weights(fast, reference)
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(fast(x), reference(x), atol=1e-5)
    assert not any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in fast.layers)


def test_other_paddings_keep_the_explicit_construction():
    inputs = keras.Input((16, 16, 2))
    cropped = keras.Model(inputs, blocks.transposed_conv(inputs, 3, padding=2, name="t"))
    assert cropped.output_shape == (None, 30, 30, 3)
    strided = keras.Model(inputs, blocks.conv(inputs, 3, 3, stride=2, padding=1, name="s"))
    assert any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in strided.layers)
