"""Frechet distance between Gaussians fitted to features, and FID with a pluggable extractor.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})           (Dowson & Landau 1982)

`tr((S1 S2)^{1/2})` is computed as the sum of square roots of the eigenvalues of the symmetric PSD
matrix `S1^{1/2} S2 S1^{1/2}` (same spectrum as `S1 S2`), with `numpy.linalg.eigh` in float64. This
avoids the complex intermediate results and the `eps * I` retries of the reference's `scipy.linalg.sqrtm`
path (`fid_score.py` of GitHub daib13/TwoStageVAE; Heusel et al. 2017), and needs no SciPy.
"""

import keras
import numpy as np
from keras import ops


def _psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Squared Frechet distance between `N(mu1, sigma1)` and `N(mu2, sigma2)`.

    Args:
        mu1, mu2: arrays `(d,)`.
        sigma1, sigma2: symmetric positive semi-definite arrays `(d, d)`.

    Returns:
        float, >= 0 up to rounding.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"`mu1` and `mu2` must be vectors of one length; got {mu1.shape}, {mu2.shape}.")
    expected = (mu1.shape[0], mu1.shape[0])
    if sigma1.shape != expected or sigma2.shape != expected:
        raise ValueError(f"`sigma1` and `sigma2` must have shape {expected}; got {sigma1.shape}, "
                         f"{sigma2.shape}.")
    root1 = _psd_sqrt((sigma1 + sigma1.T) / 2)
    middle = root1 @ ((sigma2 + sigma2.T) / 2) @ root1
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def extract_features(feature_extractor, batch):
    """`feature_extractor(batch)` as a NumPy array `(batch, d)`.

    A `keras.Model` given a NumPy batch runs through its compiled predict function (`tf.function` /
    `jax.jit`) instead of eagerly, after its own input checks (`_check_values`, if it has one):
    the converted Inception network ran at 1-2 images/s eagerly on 2 CPU cores (docs/performance.md).
    """
    if isinstance(feature_extractor, keras.Model) and isinstance(batch, np.ndarray):
        check = getattr(feature_extractor, "_check_values", None)
        if check is not None:
            check(batch)
        features = feature_extractor.predict_on_batch(batch)
    else:
        features = feature_extractor(batch)
    return np.asarray(ops.convert_to_numpy(features)).reshape(len(batch), -1)


def feature_statistics(images, feature_extractor, batch_size=200, verbose=0):
    """Mean `(d,)` and covariance `(d, d)` of `feature_extractor(images)` over the dataset, in float64.

    Args:
        images: array `(N, ...)`, N >= 2, in whatever range the extractor expects.
        feature_extractor: callable (e.g. a `keras.Model`) mapping a batch to `(batch, d)` features.
        batch_size: int, default 200.
        verbose: int, default 0. 1 shows a progress bar over images.
    """
    if len(images) < 2:
        raise ValueError(f"`images` needs at least 2 images for a covariance; got {len(images)}.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    progress = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    chunks = []
    for start in range(0, len(images), int(batch_size)):
        batch = images[start:start + int(batch_size)]
        # float64 before any sum: 10,000 x 2048 features accumulate in the covariance.
        chunks.append(extract_features(feature_extractor, batch).astype(np.float64))
        if progress is not None:
            progress.add(len(batch))
    features = np.concatenate(chunks)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid(generated, reference, feature_extractor, batch_size=200, verbose=0):
    """Frechet distance between the feature statistics of `generated` and `reference` images."""
    mu1, sigma1 = feature_statistics(generated, feature_extractor, batch_size, verbose=verbose)
    mu2, sigma2 = feature_statistics(reference, feature_extractor, batch_size, verbose=verbose)
    return frechet_distance(mu1, sigma1, mu2, sigma2)
