"""tools/studies/aggregate_posterior.py: its own building block (the Gaussian is
keras_crvae.layers.LatentGaussian, tests/layers/test_latent_gaussian.py; the whole tool needs a
face run)."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import aggregate_posterior  # noqa: E402


def test_shuffle_elements_keeps_marginals_and_breaks_correlations():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((3000, 1))
    latents = np.concatenate([shared, shared, -shared], axis=1).reshape(3000, 3, 1)
    shuffled = aggregate_posterior.shuffle_elements(latents, rng)
    assert shuffled.shape == latents.shape
    for element in range(3):  # each column holds the same values, permuted
        np.testing.assert_array_equal(np.sort(shuffled[:, element, 0]),
                                      np.sort(latents[:, element, 0]))
    assert abs(np.corrcoef(latents[:, 0, 0], latents[:, 1, 0])[0, 1] - 1.0) < 1e-12
    assert abs(np.corrcoef(shuffled[:, 0, 0], shuffled[:, 1, 0])[0, 1]) < 0.06
    assert abs(np.corrcoef(shuffled[:, 0, 0], shuffled[:, 2, 0])[0, 1]) < 0.06
