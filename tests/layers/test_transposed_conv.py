"""PhaseConv2DTranspose computes Conv2DTranspose's function with its weights, on every backend."""

import keras
import numpy as np
import pytest

from keras_crvae.layers import PhaseConv2DTranspose

pytestmark = pytest.mark.portable


@pytest.mark.parametrize("phases", [True, False, "auto"])
@pytest.mark.parametrize("height,width", [(4, 4), (3, 5)])
def test_phases_equal_the_native_transposed_conv(phases, height, width):
    x = np.random.default_rng(0).standard_normal((2, height, width, 3)).astype("float32")
    native = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same")
    layer = PhaseConv2DTranspose(5, 4, strides=2, padding="same", phase_implementation=phases)
    native.build(x.shape)
    layer.build(x.shape)
    kernel = np.random.default_rng(1).standard_normal(native.kernel.shape).astype("float32")
    for target in (native, layer):
        target.kernel.assign(kernel)
        target.bias.assign(np.arange(5, dtype="float32"))
    expected = keras.ops.convert_to_numpy(native(x))
    assert expected.shape == (2, 2 * height, 2 * width, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-4)


def test_gradients_match_the_native_transposed_conv():
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype("float32"))
    results = []
    for phases in (True, False):
        keras.utils.set_random_seed(0)
        layer = PhaseConv2DTranspose(2, 4, strides=2, padding="same", phase_implementation=phases)
        inputs = keras.Input((4, 4, 3))
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        target = np.zeros((2, 8, 8, 2), "float32")
        model.train_on_batch(x, target)  # one SGD step: weights move by the gradient
        results.append(model.get_weights())
    for phase_weights, native_weights in zip(*results):
        np.testing.assert_allclose(phase_weights, native_weights, atol=1e-5)


def test_config_round_trip_and_fallback():
    layer = PhaseConv2DTranspose(3, 4, strides=2, padding="same", phase_implementation=True)
    clone = PhaseConv2DTranspose.from_config(layer.get_config())
    assert clone.phase_implementation is True and clone.filters == 3
    odd = PhaseConv2DTranspose(3, 3, strides=2, padding="valid", phase_implementation=True)
    assert not odd._uses_phases()  # other shapes always take the native op
    assert tuple(odd(keras.ops.zeros((1, 4, 4, 2))).shape) == (1, 9, 9, 3)
    with pytest.raises(ValueError, match="phase_implementation"):
        PhaseConv2DTranspose(3, 4, phase_implementation="yes")
