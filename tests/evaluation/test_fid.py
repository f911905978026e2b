"""Frechet distance against closed forms; FID with a pluggable feature extractor."""

import numpy as np
import pytest

from keras_crvae import evaluation

pytestmark = pytest.mark.portable


def test_diagonal_covariances_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value = evaluation.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(expected, rel=1e-10)


def test_non_commuting_covariances_match_an_independent_formula():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(4), b @ b.T
    # tr((S1 S2)^1/2) = sum of sqrt of the (real, positive) eigenvalues of S1 S2.
    trace_sqrt = np.sum(np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).real))
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    assert evaluation.frechet_distance(np.zeros(4), sigma1, np.zeros(4), sigma2) == pytest.approx(
        expected, rel=1e-8)
    assert evaluation.frechet_distance(np.ones(4), sigma1, np.ones(4), sigma1) == pytest.approx(0, abs=1e-8)


def test_fid_with_an_identity_extractor_and_bad_shapes():
    rng = np.random.default_rng(1)
    first = rng.standard_normal((4000, 2))
    second = rng.standard_normal((4000, 2)) * 2.0 + 1.0
    value = evaluation.fid(first, second, feature_extractor=lambda x: x, batch_size=512)
    assert value == pytest.approx(2 * 1.0 + 2 * (1 + 4 - 2 * 2), rel=0.1)  # = 4
    with pytest.raises(ValueError, match="sigma1"):
        evaluation.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        evaluation.fid(first[:1], second, feature_extractor=lambda x: x)
