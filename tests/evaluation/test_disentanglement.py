"""Disentanglement metrics on hand-built encoders whose answers are known.

A perfectly disentangled encoder (`z = standardised factors`) scores 1.0 on the three metrics; an
orthogonal rotation `z = A v` with every |A_ij| = 1/2 (a 4x4 Hadamard matrix / 2) has the same
factorised Gaussian-like marginals but mixes every factor into every latent (the lecture's
argument, Locatello et al. 2019) and scores lower.
"""

import numpy as np
import pytest

from keras_crvae.evaluation import disentanglement as metrics

pytestmark = pytest.mark.portable

SIZES = (4, 5, 6, 7)
HADAMARD = 0.5 * np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])


class ToyFactors:
    """Observations are the factor indices themselves, so an 'encoder' is any function of them.

    `grid=True` returns the whole factor grid cycled (every factor exactly independent of the
    others in the sample, so empirical mutual informations between factors are exactly 0)."""

    factor_sizes = SIZES

    def __init__(self, grid=False):
        self.grid = grid

    def sample_factors(self, num, rng):
        if self.grid:
            mesh = np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")
            every = np.stack([m.ravel() for m in mesh], axis=1)
            return every[np.arange(num) % len(every)]
        return np.stack([rng.integers(0, s, num) for s in SIZES], axis=1)

    def observations(self, factors):
        return np.asarray(factors, np.float64)


def standardised(factors):
    sizes = np.asarray(SIZES, np.float64)
    return (factors - (sizes - 1) / 2) / np.sqrt((sizes ** 2 - 1) / 12)  # uniform: unit variance


def disentangled(observations):
    return standardised(observations)


def rotated(observations):
    return standardised(observations) @ HADAMARD.T


def test_hadamard_is_orthogonal_and_fully_mixing():
    np.testing.assert_allclose(HADAMARD @ HADAMARD.T, np.eye(4), atol=1e-12)
    assert np.all(np.abs(HADAMARD) == 0.5)


def test_beta_vae_metric_known_encoders():
    source = ToyFactors()
    perfect = metrics.beta_vae_metric(disentangled, source, num_train=200, num_eval=200,
                                      pairs_per_point=16)
    mixed = metrics.beta_vae_metric(rotated, source, num_train=200, num_eval=200,
                                    pairs_per_point=16)
    assert perfect["score"] == 1.0
    assert mixed["score"] < 0.9


def test_factor_vae_metric_known_encoders():
    source = ToyFactors()
    perfect = metrics.factor_vae_metric(disentangled, source, num_train=200, num_eval=200,
                                        samples_per_vote=32, num_variance_estimate=2000)
    mixed = metrics.factor_vae_metric(rotated, source, num_train=200, num_eval=200,
                                      samples_per_vote=32, num_variance_estimate=2000)
    assert perfect["score"] == 1.0 and perfect["num_active"] == 4
    assert mixed["score"] < 0.6


def test_factor_vae_metric_prunes_collapsed_latents():
    # A constant fifth latent has zero variance: without pruning it would win every vote.
    def with_dead_latent(observations):
        codes = disentangled(observations)
        return np.concatenate([codes, np.zeros((len(codes), 1))], axis=1)

    result = metrics.factor_vae_metric(with_dead_latent, ToyFactors(), num_train=100,
                                       num_eval=100, samples_per_vote=32,
                                       num_variance_estimate=1000)
    assert result["num_active"] == 4 and result["score"] == 1.0


def test_mig_known_encoders():
    source = ToyFactors(grid=True)
    count = int(np.prod(SIZES))
    perfect = metrics.mutual_information_gap(disentangled, source, num_samples=count)
    mixed = metrics.mutual_information_gap(rotated, source, num_samples=count)
    assert perfect["score"] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(perfect["factor_entropy"], np.log(SIZES))
    assert mixed["score"] < 0.5


def test_mutual_information_against_hand_computation():
    # a = b: I = H = log 2 for a fair bit; a independent of b on the grid: I = 0; a 2x2 table
    # p = [[0.375, 0.125], [0.125, 0.375]]: I = sum p log(p / 0.25).
    bits = np.array([0, 1, 0, 1])
    assert metrics.mutual_information(bits, bits) == pytest.approx(np.log(2))
    assert metrics.mutual_information(np.array([0, 0, 1, 1]), bits) == pytest.approx(0.0)
    a = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    b = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p = np.array([0.375, 0.375, 0.125, 0.125])
    assert metrics.mutual_information(a, b) == pytest.approx(float((p * np.log(p / 0.25)).sum()))


def test_discretize_uses_equal_width_bins():
    codes = np.array([[0.0], [0.49], [0.51], [1.0]])
    np.testing.assert_array_equal(metrics.discretize(codes, num_bins=2)[:, 0], [0, 0, 1, 1])


def test_bad_source_is_named():
    with pytest.raises(TypeError, match="factor_sizes"):
        metrics.beta_vae_metric(disentangled, object())
