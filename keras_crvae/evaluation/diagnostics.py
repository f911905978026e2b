"""Posterior diagnostics: active units (Burda et al. 2016, section 5.2; DESIGN.md section 6).

A latent unit `i` is active when `A_i = Cov_x(E_{q(z|x)}[z_i]) > threshold` (0.01 by default): its
posterior mean moves with the input. Units the model ignores collapse onto the prior and have `A_i ~ 0`.
"""

import numpy as np
from keras import ops


def posterior_means(model, images, batch_size=500):
    """`E_q[z]` for every image, flattened -> np.ndarray `(N, num_latents)` (uses `model.encode`)."""
    if len(images) == 0:
        raise ValueError("`images` is empty: nothing to encode.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    means = []
    for start in range(0, len(images), int(batch_size)):
        mean, _ = model.encode(ops.convert_to_tensor(images[start:start + int(batch_size)]))
        means.append(ops.convert_to_numpy(mean).reshape(mean.shape[0], -1))
    return np.concatenate(means).astype(np.float64)


def active_units(model, images, threshold=0.01, batch_size=500):
    """Counts active latent units.

    Args:
        model: object with `encode(images) -> (mean, log_var)`.
        images: array `(N, *image_shape)`, N >= 2.
        threshold: float, default 0.01.
        batch_size: int, default 500.

    Returns:
        dict: `active_units` (int), `num_latents` (int), `threshold`, and `activity` (np.ndarray
        `(num_latents,)` of `A_i`).
    """
    if len(images) < 2:
        raise ValueError(f"`images` needs at least 2 images to estimate a covariance; got {len(images)}.")
    if threshold < 0:
        raise ValueError(f"`threshold` must be >= 0, got {threshold}.")
    activity = np.var(posterior_means(model, images, batch_size), axis=0, ddof=1)
    return {
        "active_units": int(np.sum(activity > threshold)),
        "num_latents": int(activity.shape[0]),
        "threshold": float(threshold),
        "activity": activity,
    }
