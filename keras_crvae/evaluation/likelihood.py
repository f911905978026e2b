"""Marginal likelihood estimates: importance-sampled NLL and the ELBO (DESIGN.md section 6).

For a model with posterior `q(z|x) = N(mean, exp(log_var))` and prior `p(z) = N(0, I)`:

    log_weights_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),    z_k ~ q(z|x),  k = 1..K
    log p(x)     ~= logsumexp_k(log_weights_k) - log K                 (Burda et al. 2016, eq. 8)

The crVAE paper reports `-log p(x)` with K = 10,000 on statically binarized MNIST (supplement B). The
samples are drawn in chunks and folded into a running log-sum-exp, so memory does not grow with K.
Alongside each example's estimate the delta-method Monte Carlo error
`sqrt((mean(w^2) / mean(w)^2 - 1) / K)` of `log p_hat(x)` is kept, from a second running log-sum-exp.

Any object works as the model if it has (duck typing):
- `encode(images) -> (mean, log_var)`, tensors `(B, *latent_shape)` of a diagonal Gaussian posterior;
- `log_likelihood(images, z) -> (B,)`, `log p(x|z)` summed over pixels.
The prior is the standard normal. Reference: `evaluate()` in `train_test/train_test_lstm_mnist.lua`
of GitHub `WendyShang/crVAE`.
"""

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from keras_crvae import losses


@dataclasses.dataclass
class LikelihoodEstimate:
    """A dataset-level estimate in nats with its per-example values.

    Attributes:
        mean: float, mean over images of the per-example value.
        standard_error: float, `std(per_example) / sqrt(num_images)` (spread over the data).
        per_example: np.ndarray `(num_images,)`.
        num_samples: int, posterior samples per image.
        monte_carlo_error: np.ndarray `(num_images,)` or None; delta-method error of each estimate.
    """

    mean: float
    standard_error: float
    per_example: np.ndarray
    num_samples: int
    monte_carlo_error: np.ndarray = None

    @property
    def num_images(self):
        return int(self.per_example.shape[0])

    def to_dict(self):
        """A JSON-ready summary (no per-example arrays)."""
        summary = {
            "mean": float(self.mean),
            "standard_error": float(self.standard_error),
            "num_samples": int(self.num_samples),
            "num_images": self.num_images,
        }
        if self.monte_carlo_error is not None:
            summary["mean_monte_carlo_error"] = float(
                np.sqrt(np.sum(np.square(self.monte_carlo_error))) / self.num_images
            )
        return summary


def _summarise(per_example, num_samples, monte_carlo_error=None):
    per_example = np.asarray(per_example, dtype=np.float64)
    spread = float(np.std(per_example, ddof=1) / math.sqrt(len(per_example))) if len(
        per_example) > 1 else float("nan")
    return LikelihoodEstimate(float(np.mean(per_example)), spread, per_example, int(num_samples),
                              monte_carlo_error)


def _check_inputs(model, images, num_samples, batch_size):
    for method in ("encode", "log_likelihood"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                f"`model` must have an `{method}` method (see keras_crvae.evaluation docs); got "
                f"{type(model).__name__}."
            )
    if int(num_samples) < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if len(images) == 0:
        raise ValueError("`images` is empty: nothing to evaluate.")


def _batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def _log_prior_minus_posterior(z, mean, log_var):
    return losses.standard_normal_log_density(z) - losses.gaussian_log_density(z, mean, log_var)


def importance_sampled_nll(model, images, num_samples=5000, batch_size=100, seed=None,
                           max_decoder_batch=2000, verbose=1):
    """Importance-sampled negative log-likelihood `-log p(x)` in nats (module docstring).

    Args:
        model: object with `encode` and `log_likelihood` (e.g. `keras_crvae.models.VAE`).
        images: array `(N, *image_shape)`, already binarized for Bernoulli models.
        num_samples: int, default 5000. `K` posterior samples per image.
        batch_size: int, default 100. Images encoded together.
        seed: int or None. Seed of the posterior noise.
        max_decoder_batch: int, default 2000. Upper bound on `chunk * batch_size` rows passed to
            `log_likelihood` at once; this bounds memory whatever `num_samples` is.
        verbose: int, default 1. Show a progress bar over image batches.

    Returns:
        `LikelihoodEstimate` of the NLL (positive nats): `.mean`, `.standard_error`,
        `.per_example`, `.monte_carlo_error`.
    """
    _check_inputs(model, images, num_samples, batch_size)
    num_samples, batch_size = int(num_samples), int(batch_size)
    seed_generator = keras.random.SeedGenerator(seed)
    progress = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    nll, mc_error = [], []
    for batch_array in _batches(images, batch_size):
        batch_array = np.asarray(ops.convert_to_numpy(batch_array))
        mean, log_var = model.encode(batch_array)
        rows = int(batch_array.shape[0])
        latent_shape = tuple(mean.shape[1:])
        chunk = max(1, min(num_samples, int(max_decoder_batch) // rows))
        running_max = np.full(rows, -np.inf)
        sum_weights = np.zeros(rows)  # sum_k exp(log_w_k - running_max)
        sum_squares = np.zeros(rows)  # sum_k exp(2 * (log_w_k - running_max))
        tiled_batch = None
        drawn = 0
        while drawn < num_samples:
            size = min(chunk, num_samples - drawn)
            reps = (size,) + (1,) * len(latent_shape)
            tiled_mean, tiled_log_var = ops.tile(mean, reps), ops.tile(log_var, reps)
            noise = keras.random.normal(ops.shape(tiled_mean), seed=seed_generator)
            z = tiled_mean + ops.exp(0.5 * tiled_log_var) * noise
            if tiled_batch is None or int(tiled_batch.shape[0]) != size * rows:
                tiled_batch = np.tile(batch_array, (size,) + (1,) * (batch_array.ndim - 1))
            # NumPy inputs let models use a compiled decoder (see VAE.decode_logits).
            log_weights = (
                ops.convert_to_numpy(model.log_likelihood(tiled_batch, ops.convert_to_numpy(z)))
                .astype(np.float64)
                + ops.convert_to_numpy(_log_prior_minus_posterior(z, tiled_mean, tiled_log_var))
            ).reshape(size, rows)
            new_max = np.maximum(running_max, log_weights.max(axis=0))
            shift = np.exp(running_max - new_max)
            centred = np.exp(log_weights - new_max)
            sum_weights = sum_weights * shift + centred.sum(axis=0)
            sum_squares = sum_squares * shift ** 2 + np.square(centred).sum(axis=0)
            running_max = new_max
            drawn += size
        log_marginal = running_max + np.log(sum_weights) - math.log(num_samples)
        if not np.all(np.isfinite(log_marginal)):
            raise FloatingPointError("Non-finite log-weights: the model produced NaN or inf values.")
        relative_variance = num_samples * sum_squares / np.square(sum_weights) - 1.0
        nll.append(-log_marginal)
        mc_error.append(np.sqrt(np.maximum(relative_variance, 0.0) / num_samples))
        if progress is not None:
            progress.add(rows)
    return _summarise(np.concatenate(nll), num_samples, np.concatenate(mc_error))


def elbo(model, images, num_samples=1, batch_size=100, seed=None, verbose=0):
    """The evidence lower bound `E_q[log p(x|z)] - KL(q(z|x) || p(z))` in nats per image.

    The expectation uses `num_samples` posterior samples; the KL is in closed form.

    Returns:
        dict with `elbo`, `reconstruction` (`-E_q[log p(x|z)]`) and `kl`, each a `LikelihoodEstimate`.
    """
    _check_inputs(model, images, num_samples, batch_size)
    seed_generator = keras.random.SeedGenerator(seed)
    progress = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    reconstruction, kl = [], []
    for batch in _batches(images, int(batch_size)):
        batch = np.asarray(ops.convert_to_numpy(batch))
        mean, log_var = model.encode(batch)
        kl.append(ops.convert_to_numpy(
            losses.sum_per_example(losses.gaussian_kl_per_element(mean, log_var))))
        total = 0.0
        for _ in range(int(num_samples)):
            noise = keras.random.normal(ops.shape(mean), seed=seed_generator)
            z = mean + ops.exp(0.5 * log_var) * noise
            total = total + ops.convert_to_numpy(model.log_likelihood(batch, ops.convert_to_numpy(z)))
        reconstruction.append(-total / int(num_samples))
        if progress is not None:
            progress.add(int(batch.shape[0]))
    reconstruction, kl = np.concatenate(reconstruction), np.concatenate(kl)
    return {
        "elbo": _summarise(-reconstruction - kl, num_samples),
        "reconstruction": _summarise(reconstruction, num_samples),
        "kl": _summarise(kl, num_samples),
    }
