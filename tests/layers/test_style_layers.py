"""The style-based generator's layers: equalized learning rate, mapping network, constant input,
noise, modulated/demodulated convolution, tRGB, AdaIN (`keras_crvae.layers`; StyleGAN / StyleGAN2).

Statistical checks state their tolerance as a multiple of the estimate's standard error."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import layers

pytestmark = pytest.mark.portable


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


# --- equalized learning rate -------------------------------------------------------------------

@pytest.mark.parametrize("lr_multiplier", [1.0, 0.01])
def test_equalized_dense_has_he_std_whatever_the_lr_multiplier(lr_multiplier):
    keras.utils.set_random_seed(0)
    fan_in, units = 256, 128
    layer = layers.EqualizedDense(units, lr_multiplier=lr_multiplier)
    layer.build((None, fan_in))
    stored = numpy(layer.kernel)
    effective = numpy(layer.effective_kernel)
    # Stored N(0, 1/lr_multiplier); applied exactly as stored * sqrt(2)/sqrt(fan_in) * lr_mult.
    np.testing.assert_allclose(effective, stored * math.sqrt(2 / fan_in) * lr_multiplier,
                               rtol=1e-6)
    # The std of n = 32768 normal draws has a relative standard error 1/sqrt(2n) = 0.4%;
    # 2% is five standard errors.
    he_std = math.sqrt(2.0 / fan_in)
    assert abs(effective.std() / he_std - 1) < 0.02
    assert abs(stored.std() * lr_multiplier - 1) < 0.02
    # The layer computes x @ effective + bias * lr_multiplier.
    x = np.random.default_rng(1).standard_normal((3, fan_in)).astype("float32")
    layer.bias.assign(np.full((units,), 5.0, "float32"))
    np.testing.assert_allclose(numpy(layer(x)), x @ effective + 5.0 * lr_multiplier, rtol=1e-4,
                               atol=1e-4)


def test_equalized_layers_round_trip(run_layer_test):
    x = np.random.default_rng(0).standard_normal((2, 6)).astype("float32")
    run_layer_test(layers.EqualizedDense,
                   {"units": 3, "lr_multiplier": 0.01, "bias_initializer_value": 1.0,
                    "activation": "leaky_relu"}, x, expected_trainable_weights=2)
    images = np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype("float32")
    layer, outputs = run_layer_test(layers.EqualizedConv2D, {"filters": 4, "kernel_size": 3},
                                    images, expected_trainable_weights=2, atol=1e-5)
    expected = ops.conv(images, layer.effective_kernel, padding="same")
    np.testing.assert_allclose(numpy(outputs), numpy(expected), atol=1e-5)
    assert numpy(layer.effective_kernel).shape == (3, 3, 3, 4)
    with pytest.raises(ValueError, match="lr_multiplier"):
        layers.EqualizedDense(3, lr_multiplier=0)


# --- mapping network, constant, noise ----------------------------------------------------------

def test_mapping_network_normalises_z_and_round_trips(run_layer_test):
    z = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    mapping, w = run_layer_test(layers.MappingNetwork, {"w_dim": 6, "num_layers": 3}, z,
                                expected_trainable_weights=6, atol=1e-5)
    assert tuple(w.shape) == (4, 6)
    # PixelNorm first: w depends on z's direction only.
    np.testing.assert_allclose(numpy(mapping(3.0 * z)), numpy(w), rtol=1e-4, atol=1e-5)
    normalized = numpy(layers.normalize_second_moment(z))
    np.testing.assert_allclose(np.mean(normalized ** 2, axis=-1), 1.0, rtol=1e-5)
    assert [layer.lr_multiplier for layer in mapping.dense_layers] == [0.01] * 3


def test_constant_input_repeats_one_learned_tensor(run_layer_test):
    styles = np.zeros((3, 5), "float32")
    layer, outputs = run_layer_test(layers.ConstantInput, {"channels": 2, "size": 4}, styles,
                                    expected_trainable_weights=1)
    outputs = numpy(outputs)
    assert outputs.shape == (3, 4, 4, 2)
    for example in outputs:
        np.testing.assert_array_equal(example, numpy(layer.constant))


def test_noise_injection_adds_one_scaled_noise_image_per_example(run_layer_test):
    x = np.random.default_rng(0).standard_normal((8, 16, 16, 3)).astype("float32")
    layer, outputs = run_layer_test(layers.NoiseInjection, {"seed": 3}, x,
                                    expected_trainable_weights=1)
    np.testing.assert_array_equal(numpy(outputs), x.astype("float64"))  # strengths start at 0
    layer.strength.assign(np.array([0.0, 2.0, -3.0], "float32"))
    added = numpy(layer(x)) - x
    np.testing.assert_allclose(added[..., 0], 0.0, atol=1e-6)
    # The same single-channel noise image scaled per channel.
    np.testing.assert_allclose(added[..., 1] / 2.0, added[..., 2] / -3.0, atol=1e-5)
    # A fresh N(0, 1) image: std of 2048 draws (standard error 1.6%), within 8%.
    assert abs(np.std(added[..., 1] / 2.0) - 1.0) < 0.08
    assert not np.allclose(numpy(layer(x)) - x, added)  # a new draw at every call


# --- modulation and demodulation ---------------------------------------------------------------

def per_example_convolution(x, styles, kernel, demodulate):
    """The grouped-convolution reading of equations 1-3: one modulated kernel per example."""
    outputs = []
    for example, style in zip(x, styles):
        weights = kernel * style[None, None, :, None]                          # (1)
        if demodulate:
            weights = weights / np.sqrt(np.sum(weights ** 2, axis=(0, 1, 2)) + 1e-8)  # (3)
        outputs.append(numpy(ops.conv(example[None].astype("float32"),
                                      weights.astype("float32"), padding="same"))[0])
    return np.stack(outputs)


def test_modulation_by_hand_on_a_1x1_kernel():
    x = np.array([[[[1.0, 2.0]]]], "float32")            # one pixel, channels (1, 2)
    styles = np.array([[2.0, 3.0]], "float32")
    kernel = np.ones((1, 1, 2, 1), "float32")
    # 1*2*1 + 2*3*1 = 8; demodulated by sqrt((2*1)^2 + (3*1)^2) = sqrt(13).
    modulated = numpy(layers.modulated_convolution(x, styles, kernel, demodulate=False))
    demodulated = numpy(layers.modulated_convolution(x, styles, kernel, demodulate=True))
    np.testing.assert_allclose(modulated.ravel(), [8.0], rtol=1e-6)
    np.testing.assert_allclose(demodulated.ravel(), [8.0 / math.sqrt(13.0)], rtol=1e-6)


@pytest.mark.parametrize("demodulate", [False, True])
def test_modulation_equals_per_example_modulated_kernels(demodulate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 6, 4)).astype("float32")
    styles = rng.uniform(0.2, 3.0, (3, 4)).astype("float32")
    kernel = rng.standard_normal((3, 3, 4, 5)).astype("float32")
    actual = numpy(layers.modulated_convolution(x, styles, kernel, demodulate=demodulate))
    expected = per_example_convolution(x, styles, kernel, demodulate)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    if not demodulate:
        # Modulation = convolving the input scaled by s per input channel.
        scaled = numpy(ops.conv(x * styles[:, None, None, :], kernel, padding="same"))
        np.testing.assert_allclose(actual, scaled, rtol=1e-4, atol=1e-4)


def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs():
    rng = np.random.default_rng(0)
    batch, side, c_in, c_out = 128, 16, 8, 6
    x = rng.standard_normal((batch, side, side, c_in)).astype("float32")
    kernel = rng.standard_normal((3, 3, c_in, c_out)).astype("float32")
    styles = rng.uniform(0.1, 5.0, (batch, c_in)).astype("float32")  # wildly different styles
    # Interior pixels with disjoint 3x3 receptive fields (rows/cols 1, 4, ..., 13): independent
    # given the weights, and no zero padding in them. n = 128 * 25 = 3200 per output channel;
    # the variance estimate's relative standard error is sqrt(2/n) = 2.5%.
    sites = slice(1, side - 1, 3)
    demodulated = numpy(layers.modulated_convolution(x, styles, kernel))[:, sites, sites]
    variances = demodulated.reshape(-1, c_out).var(axis=0)
    # Each example's output std is exactly 1 given its style, so pooling over examples is fair.
    assert np.all(np.abs(variances - 1.0) < 0.10), variances  # 4 standard errors
    assert abs(variances.mean() - 1.0) < 0.05, variances
    # Without demodulation the variance is sum_{i,k} (s_i w_ik)^2, far from 1: the check can fail.
    modulated = numpy(layers.modulated_convolution(x, styles, kernel, demodulate=False))
    assert modulated[:, sites, sites].reshape(-1, c_out).var(axis=0).min() > 10.0


def test_modulated_conv_and_to_rgb_round_trip(run_layer_test):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 4, 3)).astype("float32")
    w = rng.standard_normal((2, 5)).astype("float32")
    layer, outputs = run_layer_test(layers.ModulatedConv2D, {"filters": 6, "upsample": True},
                                    [x, w], expected_trainable_weights=4, atol=1e-5)
    assert tuple(outputs.shape) == (2, 8, 8, 6)
    styles = numpy(layer.styles(w))
    np.testing.assert_allclose(styles, numpy(layer.affine(w)))
    np.testing.assert_allclose(  # a fresh affine layer's bias is 1: styles start near 1
        numpy(layer.affine.bias) * layer.affine.lr_multiplier, 1.0)
    previous = rng.standard_normal((2, 2, 2, 3)).astype("float32")
    rgb_layer, rgb = run_layer_test(layers.ToRGB, {"image_channels": 3}, [x, w, previous],
                                    expected_trainable_weights=4, atol=1e-5)
    # Skip connection: the output minus this resolution's tRGB is the upsampled previous image.
    own = numpy(rgb_layer([x, w]))
    np.testing.assert_allclose(numpy(rgb) - own, numpy(layers.upsample_2x(previous)), atol=1e-5)
    # tRGB does not demodulate: a plain 1x1 modulated convolution plus bias.
    kernel = numpy(rgb_layer.kernel) / math.sqrt(3)
    expected = per_example_convolution(x, numpy(rgb_layer.styles(w)), kernel, False)
    np.testing.assert_allclose(own, expected + numpy(rgb_layer.bias), atol=1e-4)


def test_adain_normalises_then_applies_the_style(run_layer_test):
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.standard_normal((2, 8, 8, 3))).astype("float32")
    w = rng.standard_normal((2, 4)).astype("float32")
    layer, _ = run_layer_test(layers.AdaptiveInstanceNormalization, {}, [x, w],
                              expected_trainable_weights=2, atol=1e-5)
    # A style independent of w: kernel 0, bias (y_s, y_b) = ((1, 2, -0.5), (0, 1, -2)).
    layer.affine.kernel.assign(np.zeros((4, 6), "float32"))
    layer.affine.bias.assign(np.array([1.0, 2.0, -0.5, 0.0, 1.0, -2.0], "float32"))
    outputs = numpy(layer([x, w]))
    np.testing.assert_allclose(outputs.mean(axis=(1, 2)), [[0.0, 1.0, -2.0]] * 2, atol=1e-4)
    np.testing.assert_allclose(outputs.std(axis=(1, 2)), [[2.0, 3.0, 0.5]] * 2, rtol=1e-3)
