"""PixelCNN models: log-likelihoods by hand and by normalisation, the compiled sampler against the
per-pixel loop, fit, and the `.keras` round trip."""

import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import models, networks
from keras_crvae.models.pixelcnn import draw_values

pytestmark = pytest.mark.portable

# Tiny models train faster eagerly than traced on TensorFlow; on JAX jit is the faster path.
EAGER_IS_CHEAP = keras.backend.backend() == "tensorflow"


def constant_model(shape, levels, data_kind, bias):
    """A PixelCNN whose logits are `bias` everywhere: every weight zero, the output bias set."""
    network = networks.build_pixelcnn(shape, levels=levels, filters=2, residual_blocks=1,
                                      first_kernel_size=3)
    for weight in network.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    network.get_layer("output_logits").bias.assign(np.tile(np.asarray(bias, "float32"),
                                                           shape[-1]))
    return models.PixelCNN(network, data_kind=data_kind)


def all_images(shape, levels):
    return np.array(list(itertools.product(range(levels), repeat=int(np.prod(shape)))),
                    "float32").reshape((-1,) + shape)


def test_binary_log_likelihood_by_hand():
    model = constant_model((3, 3, 1), 1, "binary", [0.7])
    images = (np.random.default_rng(0).random((4, 3, 3, 1)) < 0.4).astype("float32")
    ones = images.reshape(4, -1).sum(axis=1)
    log_p1, log_p0 = -math.log1p(math.exp(-0.7)), -math.log1p(math.exp(0.7))
    expected = ones * log_p1 + (9 - ones) * log_p0
    np.testing.assert_allclose(ops.convert_to_numpy(model.log_likelihood(images)), expected,
                               rtol=1e-5)


def test_grey256_uniform_is_8_bits_per_dim_and_softmax_by_hand():
    uniform = constant_model((2, 2, 1), 256, "grey256", np.zeros(256))
    images = np.random.default_rng(0).integers(0, 256, (3, 2, 2, 1)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(uniform.log_likelihood(images)),
                               -4 * math.log(256), rtol=1e-6)
    uniform.compile()
    metrics = uniform.evaluate(images, verbose=0, return_dict=True)
    assert metrics["bits_per_dim"] == pytest.approx(8.0, rel=1e-6)
    assert metrics["nll"] == pytest.approx(4 * math.log(256), rel=1e-6)
    bias = np.random.default_rng(1).normal(size=256)
    log_softmax = bias - np.log(np.exp(bias).sum())
    skewed = constant_model((2, 2, 1), 256, "grey256", bias)
    expected = log_softmax[images.astype(int)].reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(ops.convert_to_numpy(skewed.log_likelihood(images)), expected,
                               rtol=1e-5)


@pytest.mark.parametrize("builder, shape, levels, data_kind", [
    ("pixelcnn", (2, 2, 1), 1, "binary"),
    ("gated", (2, 2, 1), 3, "categorical"),
    ("gated", (1, 2, 3), 1, "binary"),   # R, G, B channel masks
])
def test_probabilities_of_all_images_sum_to_one(builder, shape, levels, data_kind):
    """A random model is normalised over every possible image only if each value's distribution
    conditions on earlier values alone: an exact check of the masks and the likelihood together."""
    keras.utils.set_random_seed(0)
    input_shape = shape[:2] + ((levels,) if data_kind == "categorical" else shape[2:])
    color = shape[-1]
    if builder == "pixelcnn":
        network = networks.build_pixelcnn(input_shape, levels=levels, filters=4,
                                          residual_blocks=1, first_kernel_size=3,
                                          color_channels=color)
    else:
        network = networks.build_gated_pixelcnn(input_shape, levels=levels, filters=4,
                                                num_layers=2, color_channels=color)
    model = models.PixelCNN(network, data_kind=data_kind)
    images = all_images(shape, max(levels, 2))
    log_p = ops.convert_to_numpy(model.log_likelihood(images)).astype("float64")
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)


def test_draw_values_inverts_the_cdf():
    logits = np.log(np.array([[0.2, 0.5, 0.3]] * 5, "float32"))
    uniforms = np.array([0.0, 0.19, 0.21, 0.69, 0.71], "float32")
    values = ops.convert_to_numpy(draw_values(logits, uniforms, "categorical"))
    np.testing.assert_array_equal(values, [0, 0, 1, 1, 2])
    binary = ops.convert_to_numpy(draw_values(np.zeros((2, 1), "float32"),
                                              np.array([0.49, 0.51], "float32"), "binary"))
    np.testing.assert_array_equal(binary, [1, 0])


@pytest.mark.parametrize("shape, levels, data_kind, condition_shape", [
    ((5, 5, 1), 1, "binary", None),
    ((3, 3, 3), 256, "grey256", None),
    ((4, 4, 1), 4, "categorical", (2,)),
])
def test_compiled_sampler_matches_the_per_pixel_loop(shape, levels, data_kind, condition_shape):
    keras.utils.set_random_seed(0)
    input_shape = shape[:2] + ((levels,) if data_kind == "categorical" else shape[2:])
    network = networks.build_gated_pixelcnn(input_shape, levels=levels, filters=4, num_layers=2,
                                            color_channels=shape[-1],
                                            condition_shape=condition_shape)
    model = models.PixelCNN(network, data_kind=data_kind)
    rng = np.random.default_rng(0)
    uniforms = rng.random((3,) + shape).astype("float32")
    condition = None if condition_shape is None else rng.normal(
        size=(3,) + condition_shape).astype("float32")
    compiled = ops.convert_to_numpy(model.sampler.sample(uniforms, 0.9, condition))
    naive = model.sampler.sample_naive(uniforms, 0.9, condition)
    np.testing.assert_array_equal(compiled, naive)
    assert compiled.min() >= 0 and compiled.max() <= max(levels - 1, 1)
    assert len(np.unique(compiled)) > 1


def test_fit_save_load_and_sample(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.PixelCNN(networks.build_gated_pixelcnn((6, 6, 1), filters=4, num_layers=2))
    model.compile(optimizer=keras.optimizers.Adam(0.01), run_eagerly=EAGER_IS_CHEAP)
    images = (np.random.default_rng(0).random((16, 6, 6, 1)) < 0.3).astype("float32")
    before = float(np.mean(ops.convert_to_numpy(model.log_likelihood(images))))
    history = model.fit(images, batch_size=8, epochs=3, verbose=0)
    assert set(history.history) >= {"loss", "nll", "bits_per_dim"}
    after = float(np.mean(ops.convert_to_numpy(model.log_likelihood(images))))
    assert after > before
    path = tmp_path / "pixelcnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.data_kind == "binary"
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.log_likelihood(images)),
                               ops.convert_to_numpy(model.log_likelihood(images)), rtol=1e-5)
    samples = ops.convert_to_numpy(loaded.sample(2, temperature=1.0, seed=3))
    assert samples.shape == (2, 6, 6, 1) and set(np.unique(samples)) <= {0.0, 1.0}


def test_bad_arguments():
    network = networks.build_gated_pixelcnn((4, 4, 1), filters=2, num_layers=1)
    with pytest.raises(ValueError, match="data_kind"):
        models.PixelCNN(network, data_kind="rgb")
    with pytest.raises(ValueError, match="256 logits"):
        models.PixelCNN(network, data_kind="grey256")
    model = models.PixelCNN(network)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        model.log_likelihood(np.full((1, 4, 4, 1), 2.0, "float32"))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, temperature=0.0)
