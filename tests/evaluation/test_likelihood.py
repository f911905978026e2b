"""The importance-sampled NLL is exact on a model whose marginal likelihood is known in closed form.

Model: z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D), so p(x) = N(x; b, W W^T + s^2 I) exactly.
"""

import math

import numpy as np
import pytest
from keras import ops

from keras_crvae import evaluation

pytestmark = pytest.mark.portable


class LinearGaussianModel:
    """Duck-typed model: `encode` gives a diagonal Gaussian proposal, `log_likelihood` is exact."""

    def __init__(self, weights, bias, noise_std, proposal_shift=0.0, proposal_log_var_shift=0.0):
        self.weights = weights.astype("float64")
        self.bias = bias.astype("float64")
        self.noise_std = noise_std
        d = weights.shape[1]
        precision = np.eye(d) + weights.T @ weights / noise_std**2
        self.posterior_cov = np.linalg.inv(precision)
        self.proposal_shift = proposal_shift
        self.proposal_log_var_shift = proposal_log_var_shift

    def encode(self, images):
        x = ops.convert_to_numpy(images).astype("float64")
        mean = (x - self.bias) @ self.weights @ self.posterior_cov.T / self.noise_std**2
        log_var = np.log(np.diag(self.posterior_cov))[None, :].repeat(len(x), 0)
        return (ops.convert_to_tensor((mean + self.proposal_shift).astype("float32")),
                ops.convert_to_tensor((log_var + self.proposal_log_var_shift).astype("float32")))

    def log_likelihood(self, images, z):
        x = ops.convert_to_numpy(images).astype("float64")
        z = ops.convert_to_numpy(z).astype("float64")
        residual = x - z @ self.weights.T - self.bias
        dim = x.shape[1]
        return ops.convert_to_tensor(
            -0.5 * np.sum(residual**2, axis=1) / self.noise_std**2
            - dim * math.log(self.noise_std) - 0.5 * dim * math.log(2 * math.pi))

    def true_log_marginal(self, x):
        cov = self.weights @ self.weights.T + self.noise_std**2 * np.eye(len(self.bias))
        residual = x - self.bias
        _, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("nd,de,ne->n", residual, np.linalg.inv(cov), residual)
        return -0.5 * (quad + logdet + len(self.bias) * math.log(2 * math.pi))


def _data(model, num_images, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_images, model.weights.shape[1]))
    return (z @ model.weights.T + model.bias
            + model.noise_std * rng.standard_normal((num_images, len(model.bias)))).astype("float32")


def test_exact_posterior_gives_exact_nll_for_any_chunking():
    """With orthogonal W the true posterior is diagonal: every log-weight equals log p(x)."""
    weights = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    model = LinearGaussianModel(weights, np.array([0.5, -1.0, 0.0, 2.0]), noise_std=0.7)
    images = _data(model, 12)
    expected = -model.true_log_marginal(images.astype("float64"))
    for chunk_rows in (5, 12 * 37):  # one sample per chunk per image / all samples at once
        estimate = evaluation.importance_sampled_nll(
            model, images, num_samples=37, batch_size=5, seed=1, max_decoder_batch=chunk_rows,
            verbose=0)
        np.testing.assert_allclose(estimate.per_example, expected, rtol=0, atol=2e-4)
        assert np.all(estimate.monte_carlo_error < 1e-3)
    assert estimate.num_images == 12 and estimate.num_samples == 37


def test_imperfect_proposal_converges_within_monte_carlo_error():
    """A shifted, widened proposal: the estimate is noisy but must agree within its error bars."""
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((6, 3))
    model = LinearGaussianModel(weights, rng.standard_normal(6), noise_std=0.8,
                                proposal_shift=0.3, proposal_log_var_shift=0.7)
    images = _data(model, 16, seed=4)
    expected = -model.true_log_marginal(images.astype("float64"))
    estimate = evaluation.importance_sampled_nll(model, images, num_samples=3000, batch_size=8,
                                                 seed=2, max_decoder_batch=2000, verbose=0)
    error = np.sqrt(np.sum(estimate.monte_carlo_error**2)) / len(images)
    assert abs(estimate.mean - expected.mean()) < 4 * error + 1e-3
    # A single-sample estimate of the same model is a much looser (ELBO-like) value.
    one_sample = evaluation.importance_sampled_nll(model, images, num_samples=1, seed=2, verbose=0)
    assert one_sample.mean > estimate.mean
    assert estimate.standard_error == pytest.approx(np.std(estimate.per_example, ddof=1) / 4)


def test_elbo_is_below_log_marginal_and_exact_when_posterior_is_exact():
    weights = np.array([[1.5, 0.0], [0.0, 0.5], [0.0, 0.0]])
    model = LinearGaussianModel(weights, np.zeros(3), noise_std=0.5)
    images = _data(model, 10)
    bound = evaluation.elbo(model, images, num_samples=200, batch_size=4, seed=0)
    true = model.true_log_marginal(images.astype("float64"))
    # Exact posterior: ELBO = log p(x) up to the Monte Carlo error of E_q[log p(x|z)].
    np.testing.assert_allclose(bound["elbo"].per_example, true, atol=0.15)
    shifted = LinearGaussianModel(weights, np.zeros(3), 0.5, proposal_shift=0.5)
    assert evaluation.elbo(shifted, images, num_samples=50, seed=0)["elbo"].mean < true.mean()


@pytest.mark.parametrize("bad", [{"num_samples": 0}, {"batch_size": 0}])
def test_bad_arguments_are_named(bad):
    model = LinearGaussianModel(np.eye(2), np.zeros(2), 1.0)
    with pytest.raises(ValueError, match=next(iter(bad))):
        evaluation.importance_sampled_nll(model, np.zeros((2, 2), "float32"), verbose=0, **bad)


def test_empty_images_and_non_models_are_rejected():
    model = LinearGaussianModel(np.eye(2), np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="empty"):
        evaluation.importance_sampled_nll(model, np.zeros((0, 2), "float32"), verbose=0)
    with pytest.raises(TypeError, match="encode"):
        evaluation.importance_sampled_nll(object(), np.zeros((2, 2), "float32"), verbose=0)


def test_active_units_counts_dimensions_that_vary_with_the_input():
    class Encoder:
        def encode(self, images):
            x = ops.convert_to_numpy(images)
            mean = np.stack([x[:, 0], 0.01 * x[:, 1], np.zeros(len(x))], axis=1)
            return ops.convert_to_tensor(mean), ops.convert_to_tensor(np.zeros_like(mean))

    images = np.random.default_rng(0).standard_normal((200, 2)).astype("float32")
    result = evaluation.active_units(Encoder(), images, batch_size=64)
    assert result["active_units"] == 1 and result["num_latents"] == 3
    np.testing.assert_allclose(result["activity"][0], np.var(images[:, 0], ddof=1), rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        evaluation.active_units(Encoder(), images[:1])


def test_paired_difference_by_hand():
    earlier = [10.0, 12.0, 11.0, 13.0]
    later = [9.0, 12.5, 10.0, 12.0]  # differences -1, +0.5, -1, -1
    paired = evaluation.paired_difference(earlier, later)
    # mean -0.625; sample std sqrt((3 * 0.375^2 + 1.125^2) / 3) = 0.75; s.e. 0.75 / sqrt(4)
    assert paired["mean_difference"] == pytest.approx(-0.625)
    assert paired["standard_error"] == pytest.approx(0.375)
    assert paired["num_images"] == 4
    # Paired, the shared spread between images cancels: a constant shift has no error at all.
    shifted = evaluation.paired_difference(earlier, np.asarray(earlier) - 2.0)
    assert shifted == {"mean_difference": -2.0, "standard_error": 0.0, "num_images": 4}
    with pytest.raises(ValueError, match="same length"):
        evaluation.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
