"""LatentGaussian: the aggregate posterior's moments by hand, draws with that covariance, the
unfitted layer is N(0, I), and a fitted layer survives a `.keras` round trip."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import LatentGaussian
from keras_crvae.layers.latent_gaussian import aggregate_moments, covariance_root

pytestmark = pytest.mark.portable


def test_aggregate_moments_by_hand():
    # Two faces, 2-d latents: means (0, 0) and (2, 0), variances (1, 1) and (1, 3).
    means = np.array([[0.0, 0.0], [2.0, 0.0]])
    log_vars = np.log(np.array([[1.0, 1.0], [1.0, 3.0]]))
    mean, covariance = aggregate_moments(means, log_vars)
    np.testing.assert_allclose(mean, [1.0, 0.0])
    # Covariance of the means (divisor N - 1 = 1): [[2, 0], [0, 0]]; mean variance: diag(1, 2).
    np.testing.assert_allclose(covariance, [[3.0, 0.0], [0.0, 2.0]])


def test_aggregate_moments_of_a_correlated_code():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((20000, 1))
    means = np.concatenate([2.0 * shared, -shared], axis=1).reshape(20000, 1, 2)
    _, covariance = aggregate_moments(means, np.full(means.shape, np.log(0.5)))
    np.testing.assert_allclose(covariance, [[4.5, -2.0], [-2.0, 1.5]], atol=0.1)


def test_covariance_root_squares_to_the_covariance_even_when_singular():
    covariance = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.25]])  # rank 2
    root = covariance_root(covariance)
    np.testing.assert_allclose(root @ root.T, covariance, atol=1e-12)


def test_unfitted_layer_is_the_standard_normal_and_fit_sets_the_affine_map():
    layer = LatentGaussian((2, 1, 2))
    noise = np.random.default_rng(1).standard_normal((5, 2, 1, 2)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(layer(noise)), noise, atol=1e-6)
    rng = np.random.default_rng(2)
    means = rng.standard_normal((50, 2, 1, 2)) * [1.0, 3.0]
    log_vars = rng.uniform(-2, 0, (50, 2, 1, 2))
    assert layer.fit(means, log_vars) is layer
    mean, covariance = aggregate_moments(means, log_vars)
    root = ops.convert_to_numpy(layer.scale).astype("float64")
    np.testing.assert_allclose(root @ root.T, covariance, rtol=1e-5, atol=1e-5)
    expected = mean + noise.reshape(5, 4) @ root.T
    np.testing.assert_allclose(ops.convert_to_numpy(layer(noise)).reshape(5, 4), expected,
                               rtol=1e-5, atol=1e-5)


def test_samples_have_the_fitted_moments():
    layer = LatentGaussian((3,))
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((4000, 1))
    means = np.concatenate([3.0 * shared, shared, np.zeros((4000, 1))], axis=1) + 1.0
    layer.fit(means, np.full(means.shape, np.log(0.25)))
    samples = ops.convert_to_numpy(layer.sample(40000, seed=4))
    assert samples.shape == (40000, 3) and samples.dtype == np.float32
    samples = samples.astype("float64")
    _, covariance = aggregate_moments(means, np.full(means.shape, np.log(0.25)))
    np.testing.assert_allclose(samples.mean(axis=0), means.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), covariance, atol=0.2, rtol=0.03)


def test_a_fitted_layer_survives_a_keras_round_trip(tmp_path):
    layer = LatentGaussian((2, 2))
    rng = np.random.default_rng(5)
    layer.fit(rng.standard_normal((30, 2, 2)) * 2.0 + 0.5, rng.uniform(-1, 0, (30, 2, 2)))
    inputs = keras.Input((2, 2))
    model = keras.Model(inputs, layer(inputs))
    noise = rng.standard_normal((3, 2, 2)).astype("float32")
    model.save(tmp_path / "latent.keras")
    loaded = keras.saving.load_model(tmp_path / "latent.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(noise)),
                               ops.convert_to_numpy(model(noise)), atol=1e-6)
    assert loaded.layers[-1].get_config()["latent_shape"] == [2, 2]


def test_float32_under_a_bfloat16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = LatentGaussian((4,))
    finally:
        keras.config.set_dtype_policy(previous)
    assert ops.convert_to_numpy(layer(np.ones((2, 4), "float32"))).dtype == np.float32


def test_bad_arguments():
    with pytest.raises(ValueError, match="latent_shape"):
        LatentGaussian(())
    with pytest.raises(ValueError, match="means"):
        LatentGaussian((3,)).fit(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="N >= 2"):
        aggregate_moments(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="count"):
        LatentGaussian((3,)).sample(0)
