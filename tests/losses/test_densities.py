"""Log-densities, closed-form KL and the per-block KL weighting against hand computations."""

import math

import numpy as np
import pytest
from keras import ops

from keras_crvae import losses

pytestmark = pytest.mark.portable

LOG_2PI = math.log(2.0 * math.pi)


def np_(tensor):
    return ops.convert_to_numpy(tensor)


# --- Bernoulli ---------------------------------------------------------------------------------------

def test_bernoulli_log_likelihood_matches_probabilities():
    """sum_d [x log p + (1 - x) log(1 - p)] with p = sigmoid(l), for hard and soft targets."""
    logits = np.array([[0.0, 2.0, -1.0, 3.0], [0.5, -0.5, 1.5, -4.0]], "float32")
    targets = np.array([[1.0, 0.0, 1.0, 0.3], [0.0, 1.0, 0.5, 1.0]], "float32")
    p = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    expected = np.sum(targets * np.log(p) + (1 - targets) * np.log(1 - p), axis=1)
    value = np_(losses.bernoulli_log_likelihood(ops.convert_to_tensor(logits),
                                                ops.convert_to_tensor(targets)))
    assert value.shape == (2,)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    # First row by hand: log(1/2) + log(1 - s(2)) + log(s(-1)) + 0.3 log s(3) + 0.7 log(1 - s(3)).
    assert value[0] == pytest.approx(
        math.log(0.5) - math.log1p(math.exp(2)) - math.log1p(math.exp(1))
        - 0.3 * math.log1p(math.exp(-3)) - 0.7 * math.log1p(math.exp(3)), rel=1e-6)


def test_bernoulli_log_likelihood_is_finite_at_extreme_logits():
    """Logits of +-50 (sigmoid rounds to 0/1 in float32) still give finite, exact values."""
    logits = np.array([[50.0, 50.0, -50.0, -50.0]], "float32")
    targets = np.array([[1.0, 0.0, 1.0, 0.0]], "float32")
    per_pixel = [np_(losses.bernoulli_log_likelihood(logits[:, i:i + 1], targets[:, i:i + 1]))[0]
                 for i in range(4)]
    assert np.isfinite(per_pixel).all()
    np.testing.assert_allclose(per_pixel, [0.0, -50.0, -50.0, 0.0], atol=1e-6)
    total = np_(losses.bernoulli_log_likelihood(logits, targets))
    assert np.isfinite(total).all() and total[0] == pytest.approx(-100.0, rel=1e-6)


def test_bernoulli_log_likelihood_sums_image_axes_and_casts_targets():
    """(B, 28, 28, 1) -> (B,); integer targets are cast to the logits' dtype."""
    logits = np.zeros((3, 28, 28, 1), "float32")
    targets = np.ones((3, 28, 28, 1), "int32")
    value = np_(losses.bernoulli_log_likelihood(ops.convert_to_tensor(logits),
                                                ops.convert_to_tensor(targets)))
    np.testing.assert_allclose(value, [784 * math.log(0.5)] * 3, rtol=1e-6)


# --- Gaussian densities ------------------------------------------------------------------------------

Z = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, -3.0]], "float32")
MEAN = np.array([[0.0, 1.0, 0.0], [1.0, -1.0, -2.5]], "float32")
LOG_VAR = np.array([[0.0, math.log(4.0), -1.0], [math.log(0.25), 0.0, 0.7]], "float32")


def test_standard_normal_log_density_by_hand():
    """log N(z; 0, I) = sum(-z^2/2 - log(2 pi)/2), per element and summed per example."""
    expected = -0.5 * Z.astype("float64") ** 2 - 0.5 * LOG_2PI
    np.testing.assert_allclose(np_(losses.standard_normal_log_density_elements(Z)), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(np_(losses.standard_normal_log_density(Z)), expected.sum(1),
                               rtol=1e-6)
    # z = 0 in one dimension: exactly -log(2 pi) / 2.
    assert np_(losses.standard_normal_log_density(np.zeros((1, 1), "float32")))[0] == (
        pytest.approx(-0.5 * LOG_2PI, rel=1e-6))


def test_gaussian_log_density_by_hand():
    """log N(z; m, s^2) = -((z-m)/s)^2/2 - log s - log(2 pi)/2 with s = exp(lv/2)."""
    std = np.exp(0.5 * LOG_VAR.astype("float64"))
    expected = -0.5 * ((Z - MEAN) / std) ** 2 - np.log(std) - 0.5 * LOG_2PI
    np.testing.assert_allclose(np_(losses.gaussian_log_density_elements(Z, MEAN, LOG_VAR)),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(np_(losses.gaussian_log_density(Z, MEAN, LOG_VAR)),
                               expected.sum(1), rtol=1e-5)
    # Element [0, 1]: z=-1, m=1, var=4 -> -(2/2)^2/2 - log 2 - log(2 pi)/2.
    assert expected[0, 1] == pytest.approx(-0.5 - math.log(2) - 0.5 * LOG_2PI)


def test_gaussian_log_density_reduces_to_standard_normal():
    """mean 0 and log_var 0 give the standard normal density, on a 4-D latent too."""
    z = np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    zeros = np.zeros_like(z)
    np.testing.assert_allclose(np_(losses.gaussian_log_density(z, zeros, zeros)),
                               np_(losses.standard_normal_log_density(z)), rtol=1e-6)
    assert np_(losses.gaussian_log_density(z, zeros, zeros)).shape == (2,)


def test_closed_form_kl_by_hand():
    """KL(N(m, v) || N(0, 1)) = (v + m^2 - 1 - log v)/2: 0 at the prior, 1/2 at m=1, (e-2)/2 at lv=1."""
    kl = np_(losses.gaussian_kl_per_element(np.array([0.0, 1.0, 0.0, -2.0], "float32"),
                                            np.array([0.0, 0.0, 1.0, -1.0], "float32")))
    np.testing.assert_allclose(kl, [0.0, 0.5, 0.5 * (math.e - 2), 0.5 * (math.exp(-1) + 4)],
                               rtol=1e-6)


def test_closed_form_kl_matches_monte_carlo():
    """E_q[log q(z) - log p(z)] over many draws agrees with the closed form (density consistency)."""
    rng = np.random.default_rng(0)
    mean = np.array([[0.7, -1.2]], "float32")
    log_var = np.array([[-0.5, 0.4]], "float32")
    z = (mean + np.exp(0.5 * log_var) * rng.standard_normal((20000, 2))).astype("float32")
    log_ratio = np_(losses.gaussian_log_density_elements(z, mean, log_var)
                    - losses.standard_normal_log_density_elements(z))
    np.testing.assert_allclose(log_ratio.mean(0), np_(losses.gaussian_kl_per_element(mean, log_var))[0],
                               atol=0.03)


# --- channel blocks ----------------------------------------------------------------------------------

def coded_kl():
    """kl[0, r, c, k] = 100*k + 10*r + c on a (1, 2, 2, 8) latent."""
    r, c, k = np.meshgrid(np.arange(2), np.arange(2), np.arange(8), indexing="ij")
    return (100 * k + 10 * r + c).astype("float32")[None]


def test_kl_per_block_groups_channels_along_the_last_axis():
    """Block t sums channels 2t, 2t+1 over all 4 positions: 4*100*(4t+1) + 2*(0+1+10+11)."""
    blocks = np_(losses.kl_per_block(ops.convert_to_tensor(coded_kl()), 4))
    np.testing.assert_array_equal(blocks, [[444.0, 2044.0, 3644.0, 5244.0]])
    one_block = np_(losses.kl_per_block(ops.convert_to_tensor(coded_kl()), 1))
    np.testing.assert_array_equal(one_block, [[444.0 + 2044.0 + 3644.0 + 5244.0]])


def test_kl_per_block_on_a_flat_latent_and_errors():
    """A (B, D) latent is cut into contiguous chunks; a non-dividing block count is an error."""
    kl = np.arange(12, dtype="float32").reshape(2, 6)
    np.testing.assert_array_equal(np_(losses.kl_per_block(kl, 3)), [[1, 5, 9], [13, 17, 21]])
    with pytest.raises(ValueError, match="num_blocks"):
        losses.kl_per_block(kl, 4)


def test_weighted_kl_uses_paper_weights_on_the_first_three_of_eight_blocks():
    """With two_level_block_weights(a1, a2, 8), blocks 0-2 get a1 and blocks 3-7 get a2."""
    weights = losses.two_level_block_weights(0.3, 0.02, time_steps=8)
    assert weights == [0.3, 0.3, 0.3, 0.02, 0.02, 0.02, 0.02, 0.02]
    kl = np.zeros((2, 1, 1, 16), "float32")
    kl[0, 0, 0, :] = np.repeat(np.arange(1, 9, dtype="float32"), 2)  # block t carries 2*(t+1)
    kl[1, 0, 0, 4:6] = 1.0  # only block 2 (the last alpha1 block)
    value = np_(losses.weighted_kl(kl, weights))
    expected_0 = 0.3 * (2 + 4 + 6) + 0.02 * (8 + 10 + 12 + 14 + 16)
    np.testing.assert_allclose(value, [expected_0, 0.3 * 2], rtol=1e-6)


def test_weighted_kl_scalar_weight_and_consistency_with_element_weights():
    """A scalar alpha scales the total KL; block weights equal sum(element_weights * kl)."""
    kl = np.random.default_rng(0).random((3, 4, 4, 8)).astype("float32")
    np.testing.assert_allclose(np_(losses.weighted_kl(kl, 0.5)), 0.5 * kl.reshape(3, -1).sum(1),
                               rtol=1e-5)
    weights = [1.0, 0.0, 2.0, 0.5]
    per_element = np_(losses.element_weights((4, 4, 8), weights)) * kl
    np.testing.assert_allclose(np_(losses.weighted_kl(kl, weights)),
                               per_element.reshape(3, -1).sum(1), rtol=1e-5)


@pytest.mark.parametrize("time_steps, first", [(4, 2), (8, 3), (16, 6)])
def test_two_level_block_weights_scales_three_of_eight(time_steps, first):
    """Length T with round(3T/8) leading alpha1 entries: T=4 -> 2, T=8 -> 3, T=16 -> 6."""
    weights = losses.two_level_block_weights(1.0, 2.0, time_steps=time_steps)
    assert len(weights) == time_steps
    assert weights == [1.0] * first + [2.0] * (time_steps - first)
    assert all(isinstance(w, float) for w in weights)


def test_two_level_block_weights_explicit_split_and_errors():
    """num_first_blocks overrides the default split; values outside [0, T] are rejected."""
    assert losses.two_level_block_weights(1, 2, time_steps=4, num_first_blocks=1) == [1.0, 2.0, 2.0, 2.0]
    assert losses.two_level_block_weights(1, 2, time_steps=4, num_first_blocks=0) == [2.0] * 4
    with pytest.raises(ValueError, match="num_first_blocks"):
        losses.two_level_block_weights(1, 2, time_steps=4, num_first_blocks=5)


def test_element_weights_expand_blocks_over_channels():
    """Block weights [1, 2] over 4 channels give channel weights [1, 1, 2, 2] at every position."""
    element = np_(losses.element_weights((2, 3, 4), [1.0, 2.0]))
    assert element.shape == (2, 3, 4)
    np.testing.assert_array_equal(element, np.broadcast_to([1.0, 1.0, 2.0, 2.0], (2, 3, 4)))
    scalar = np_(losses.element_weights((2, 2), 0.25))
    np.testing.assert_array_equal(scalar, np.full((2, 2), 0.25))
    with pytest.raises(ValueError, match="block weights"):
        losses.element_weights((2, 2, 6), [1.0, 2.0, 3.0, 4.0])
