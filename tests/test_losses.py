"""Log-densities and KL weighting against hand computations."""

import math

import numpy as np
import pytest
from keras import ops

from keras_crvae import losses

pytestmark = pytest.mark.portable


def test_bernoulli_log_likelihood_by_hand_and_stable_at_extreme_logits():
    logits = np.array([[0.0, 2.0, -1.0, 50.0, -50.0]], "float32")
    targets = np.array([[1.0, 0.0, 1.0, 1.0, 1.0]], "float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    expected = np.log(0.5) + np.log(1 - p[0, 1]) + np.log(p[0, 2]) + 0.0 + (-50.0)
    value = ops.convert_to_numpy(losses.bernoulli_log_likelihood(ops.convert_to_tensor(logits),
                                                                 ops.convert_to_tensor(targets)))
    assert value.shape == (1,) and np.isfinite(value).all()
    np.testing.assert_allclose(value[0], expected, rtol=1e-5)


def test_gaussian_log_densities_by_hand():
    z = np.array([[0.5, -1.0], [2.0, 0.0]], "float32")
    mean = np.array([[0.0, 1.0], [1.0, -1.0]], "float32")
    log_var = np.array([[0.0, math.log(4.0)], [math.log(0.25), 0.0]], "float32")
    std = np.sqrt(np.exp(log_var))
    expected = np.sum(-0.5 * ((z - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), 1)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.gaussian_log_density(z, mean, log_var)),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.standard_normal_log_density(z)),
                               np.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi), 1), rtol=1e-6)


def test_kl_per_block_groups_channels_along_the_last_axis():
    kl = np.zeros((1, 2, 2, 8), "float32")
    kl[..., :] = np.arange(8, dtype="float32")  # channel k carries k at each of 4 positions
    blocks = ops.convert_to_numpy(losses.kl_per_block(ops.convert_to_tensor(kl), 4))
    np.testing.assert_array_equal(blocks, [[4 * (0 + 1), 4 * (2 + 3), 4 * (4 + 5), 4 * (6 + 7)]])


def test_paper_block_weights_and_weighted_kl():
    weights = losses.two_level_block_weights(0.0003, 0.0002, time_steps=8)
    assert weights == [0.0003] * 3 + [0.0002] * 5
    assert len(losses.two_level_block_weights(1, 2, 4)) == 4
    assert losses.two_level_block_weights(1, 2, 16).count(1.0) == 6
    kl = np.ones((2, 1, 1, 8), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(losses.weighted_kl(kl, weights)),
                               [3 * 0.0003 + 5 * 0.0002] * 2, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.weighted_kl(kl, 0.5)), [4.0, 4.0])
    element = ops.convert_to_numpy(losses.element_weights((1, 1, 8), [1.0, 2.0]))
    np.testing.assert_array_equal(element[0, 0], [1, 1, 1, 1, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="num_blocks"):
        losses.kl_per_block(kl, 3)


def test_closed_form_kl_is_zero_at_the_prior_and_positive_elsewhere():
    kl = ops.convert_to_numpy(losses.gaussian_kl_per_element(
        np.array([0.0, 1.0, 0.0], "float32"), np.array([0.0, 0.0, 1.0], "float32")))
    np.testing.assert_allclose(kl, [0.0, 0.5, 0.5 * (math.e - 2)], rtol=1e-6)
