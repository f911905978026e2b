"""Posterior diagnostics: active units (Burda et al. 2016, section 5.2; docs/design.md section 6).

A latent unit `i` is active when `A_i = Cov_x(E_{q(z|x)}[z_i]) > threshold` (0.01 by default): its
posterior mean moves with the input. Units the model ignores collapse onto the prior and have `A_i ~ 0`.
Hierarchical models (whose `encode` returns one `(mean, log_var)` pair per stochastic layer) are counted
per layer, as the IWAE paper's "16+5".
"""

import numpy as np
from keras import ops


def _layer_pairs(encoded):
    """`encode`'s output as a list of `(mean, log_var)` pairs, one per stochastic layer."""
    first = encoded[0]
    if isinstance(first, (tuple, list)):
        return list(encoded)
    return [tuple(encoded)]


def posterior_means_per_layer(model, images, batch_size=500):
    """`E_q[z_l]` for every image and layer, flattened -> list of np.ndarray `(N, num_latents_l)`,
    bottom to top (uses `model.encode`; one entry for a one-layer model)."""
    if len(images) == 0:
        raise ValueError("`images` is empty: nothing to encode.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    layers = None
    for start in range(0, len(images), int(batch_size)):
        pairs = _layer_pairs(model.encode(ops.convert_to_tensor(images[start:start + int(batch_size)])))
        if layers is None:
            layers = [[] for _ in pairs]
        for means, (mean, _) in zip(layers, pairs):
            means.append(ops.convert_to_numpy(ops.cast(mean, "float32")).reshape(mean.shape[0], -1))
    return [np.concatenate(means).astype(np.float64) for means in layers]


def posterior_means(model, images, batch_size=500):
    """`E_q[z]` for every image, flattened -> np.ndarray `(N, num_latents)` (uses `model.encode`;
    the layers of a hierarchical model are concatenated, bottom first)."""
    return np.concatenate(posterior_means_per_layer(model, images, batch_size), axis=1)


def active_units(model, images, threshold=0.01, batch_size=500):
    """Counts active latent units.

    Args:
        model: object with `encode(images) -> (mean, log_var)`.
        images: array `(N, *image_shape)`, N >= 2.
        threshold: float, default 0.01.
        batch_size: int, default 500.

    Returns:
        dict: `active_units` (int, all layers), `num_latents` (int), `threshold`, `activity`
        (np.ndarray `(num_latents,)` of `A_i`), `active_units_per_layer` and `num_latents_per_layer`
        (lists of ints, bottom to top; one entry for a one-layer model).
    """
    if len(images) < 2:
        raise ValueError(f"`images` needs at least 2 images to estimate a covariance; got {len(images)}.")
    if threshold < 0:
        raise ValueError(f"`threshold` must be >= 0, got {threshold}.")
    per_layer = [np.var(means, axis=0, ddof=1)
                 for means in posterior_means_per_layer(model, images, batch_size)]
    activity = np.concatenate(per_layer)
    return {
        "active_units": int(np.sum(activity > threshold)),
        "num_latents": int(activity.shape[0]),
        "threshold": float(threshold),
        "activity": activity,
        "active_units_per_layer": [int(np.sum(layer > threshold)) for layer in per_layer],
        "num_latents_per_layer": [int(layer.shape[0]) for layer in per_layer],
    }
