"""Drawing many samples of a model in bounded memory: `sample_batches` calls `model.sample` on at
most `batch_size` samples at a time and yields NumPy batches, so the caller writes each batch out
(`io.NpzArrayWriter`, `crvae sample --output=PATH.npz`) or reduces it (FID statistics) before the
next one is drawn. Memory then depends on `batch_size`, not on the number of samples.
"""

import numpy as np

# Batch `b` (0, 1, ...) of a seeded draw uses seed `seed * SEED_STRIDE + b`: distinct seeds for up
# to SEED_STRIDE batches of one draw, and the first batch of seed 0 is `model.sample(n, seed=0)`.
SEED_STRIDE = 100003


def batch_seed(seed, index):
    """The seed of batch `index` of a draw with `seed` (None stays None: an unseeded draw)."""
    return None if seed is None else int(seed) * SEED_STRIDE + int(index)


def sample_batches(model, num_samples, batch_size=100, seed=None, **sample_kwargs):
    """Yields `num_samples` samples of `model` as NumPy batches of at most `batch_size`.

    Each batch is `model.sample(count, seed=batch_seed(seed, index), **sample_kwargs)` converted
    to NumPy, so a draw depends on `batch_size` (a different split draws different noise) but is
    reproducible for a given `seed` and `batch_size`.

    Args:
        model: any model with `sample(num_samples, seed=None, ...)` (the VAE family, `VAEGAN`,
            `GAN`, `TwoStageVAE` with `stage=` in `sample_kwargs`).
        num_samples: int >= 1, the total.
        batch_size: int >= 1, default 100. The most samples one `model.sample` call draws.
        seed: int or None, default None.
        **sample_kwargs: passed to `model.sample` (e.g. `stage=1`).

    Yields:
        np.ndarray `(count, *image_shape)` with `count <= batch_size`, in the model's own range
        ([0, 1] for the VAE family, [-1, 1] for the GAN models); the counts add up to
        `num_samples`.
    """
    from keras import ops

    num_samples, batch_size = int(num_samples), int(batch_size)
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    for index, start in enumerate(range(0, num_samples, batch_size)):
        count = min(batch_size, num_samples - start)
        batch = model.sample(count, seed=batch_seed(seed, index), **sample_kwargs)
        yield np.asarray(ops.convert_to_numpy(batch))
