"""Marginal likelihood estimates: importance-sampled NLL and the ELBO (docs/design.md section 6).

For a model with posterior `q(z|x) = N(mean, exp(log_var))` and prior `p(z) = N(0, I)`:

    log_weights_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),    z_k ~ q(z|x),  k = 1..K
    log p(x)     ~= logsumexp_k(log_weights_k) - log K                 (Burda et al. 2016, eq. 8)

The crVAE paper reports `-log p(x)` with K = 10,000 on statically binarized MNIST (supplement B). The
samples are drawn in chunks and folded into a running log-sum-exp, so memory does not grow with K.
Alongside each example's estimate the delta-method Monte Carlo error
`sqrt((mean(w^2) / mean(w)^2 - 1) / K)` of `log p_hat(x)` is kept, from a second running log-sum-exp.

Models plug in through one of two protocols (duck typing); both feed the same streaming loop:
- `log_importance_weights(images, noise) -> (S, B)`: the joint log weights
  `log p(x, z_1..z_L) - log q(z_1..z_L | x)` of the posterior samples built from given standard-normal
  `noise` (a list with one array `(S, B, *shape)` per stochastic layer, shapes in the model's
  `latent_shapes`, bottom to top). Hierarchical models (`keras_crvae.models.HierarchicalVAE`) use it:
  `log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|.)`.
- otherwise `encode(images) -> (mean, log_var)`, tensors `(B, *latent_shape)` of a diagonal Gaussian
  posterior, and `log_likelihood(images, z) -> (B,)`, `log p(x|z)` summed over pixels (`VAE`,
  `GammaVAE`); the prior is the standard normal. Each image batch is encoded once.
Encoder outputs are cast to float32 (a `mixed_bfloat16` model returns bfloat16) before the float32
noise is added, and the log-weights are accumulated in float64. Reference: `evaluate()` in
`train_test/train_test_lstm_mnist.lua` of GitHub `WendyShang/crVAE`.
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


def _uses_log_weights(model):
    return callable(getattr(model, "log_importance_weights", None)) and hasattr(model, "latent_shapes")


def _check_inputs(model, images, num_samples, batch_size):
    if not _uses_log_weights(model):
        for method in ("encode", "log_likelihood"):
            if not callable(getattr(model, method, None)):
                raise TypeError(
                    f"`model` must have `log_importance_weights` and `latent_shapes`, or `encode` and "
                    f"`log_likelihood` (see keras_crvae.evaluation.likelihood); {type(model).__name__} "
                    f"has no `{method}`."
                )
    if isinstance(num_samples, bool) or int(num_samples) < 1:
        raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if len(images) == 0:
        raise ValueError("`images` is empty: nothing to evaluate.")


def _batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def _float32(tensor):
    return ops.cast(tensor, "float32")


def _with_channel_axis(model, images):
    """The library's shape rule (`models.vae.validate_images`): single-channel images may come
    without their channel axis; `log_importance_weights` is compiled and takes them with it."""
    shape = tuple(getattr(model, "image_shape", ()) or ())
    if shape and shape[-1] == 1 and np.ndim(images) == len(shape):
        return np.asarray(images)[..., None]
    return images


def compiled_log_importance_weights(model):
    """`model.log_importance_weights` compiled for the backend (`tf.function` on TensorFlow,
    `jax.jit` on JAX; eager elsewhere). It is a pure function of `(images, noise)`, so compiling is
    safe; a new trace is made per input shape (a full chunk, the last chunk, the last batch).
    Objects that are not `keras.Model`s (e.g. NumPy models) are called as they are."""
    backend = keras.backend.backend()
    if not isinstance(model, keras.Model):
        return model.log_importance_weights
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(model.log_importance_weights)
    if backend == "jax":
        import jax

        return jax.jit(model.log_importance_weights)
    return model.log_importance_weights


def log_weight_function(model, images, compiled=None):
    """`(function, latent_shapes)` for one image batch: `function(noise) -> np.ndarray (S, B)` float64
    log importance weights of the noise list `[(S, B, *shape), ...]` (module docstring).

    `compiled`: optional `compiled_log_importance_weights(model)`, reused across batches."""
    if _uses_log_weights(model):
        score = compiled or model.log_importance_weights
        image_tensor = ops.convert_to_tensor(_with_channel_axis(model, images))

        def from_model(noise):
            return ops.convert_to_numpy(score(image_tensor, list(noise))).astype(np.float64)

        return from_model, [tuple(shape) for shape in model.latent_shapes]

    mean, log_var = model.encode(images)
    mean, log_var = _float32(mean), _float32(log_var)  # bfloat16 models: add float32 noise in float32
    latent_shape = tuple(mean.shape[1:])
    rows = int(images.shape[0])

    def from_encoder(noise):
        (noise,) = noise
        size = int(noise.shape[0])
        reps = (size,) + (1,) * len(latent_shape)
        tiled_mean, tiled_log_var = ops.tile(mean, reps), ops.tile(log_var, reps)
        z = tiled_mean + ops.exp(0.5 * tiled_log_var) * ops.reshape(
            _float32(noise), (size * rows,) + latent_shape)
        tiled_images = np.tile(images, (size,) + (1,) * (images.ndim - 1))
        # NumPy inputs let models use a compiled decoder (see VAE.decode_logits).
        log_px = ops.convert_to_numpy(model.log_likelihood(tiled_images, ops.convert_to_numpy(z)))
        log_ratio = ops.convert_to_numpy(
            losses.standard_normal_log_density(z)
            - losses.gaussian_log_density(z, tiled_mean, tiled_log_var))
        return (log_px.astype(np.float64) + log_ratio.astype(np.float64)).reshape(size, rows)

    return from_encoder, [latent_shape]


def paired_difference(earlier, later):
    """The mean per-image difference `later - earlier` of two models' scores on the same images,
    with its standard error.

    Pairing removes the spread between images that two independent standard errors would count
    twice: `standard_error = std(later - earlier, ddof=1) / sqrt(N)`.

    Args:
        earlier, later: arrays `(N,)` of per-image scores (e.g. `LikelihoodEstimate.per_example`
            of two models on the same N images, in the same order).

    Returns:
        dict: `mean_difference`, `standard_error` (float) and `num_images` (int).
    """
    earlier, later = np.asarray(earlier, np.float64), np.asarray(later, np.float64)
    if earlier.ndim != 1 or earlier.shape != later.shape or earlier.size < 2:
        raise ValueError(f"Expected two score vectors of the same length >= 2; got shapes "
                         f"{earlier.shape} and {later.shape}.")
    difference = later - earlier
    return {"mean_difference": float(np.mean(difference)),
            "standard_error": float(np.std(difference, ddof=1) / math.sqrt(difference.size)),
            "num_images": int(difference.size)}


def importance_sampled_nll(model, images, num_samples=5000, batch_size=100, seed=None,
                           max_decoder_batch=2000, verbose=1):
    """Importance-sampled negative log-likelihood `-log p(x)` in nats (module docstring).

    Args:
        model: a model with `log_importance_weights` (e.g. `keras_crvae.models.HierarchicalVAE`) or
            with `encode` and `log_likelihood` (e.g. `keras_crvae.models.VAE`).
        images: array `(N, *image_shape)`, already binarized for Bernoulli models.
        num_samples: int, default 5000. `K` posterior samples per image.
        batch_size: int, default 100. Images encoded together.
        seed: int or None. Seed of the posterior noise.
        max_decoder_batch: int, default 2000. Upper bound on `chunk * batch_size` rows scored at
            once; this bounds memory whatever `num_samples` is.
        verbose: int, default 1. A progress bar over `N * K` importance samples (with an ETA),
            advanced after every chunk; 0 is silent.

    Returns:
        `LikelihoodEstimate` of the NLL (positive nats): `.mean`, `.standard_error`,
        `.per_example`, `.monte_carlo_error`.
    """
    _check_inputs(model, images, num_samples, batch_size)
    num_samples, batch_size = int(num_samples), int(batch_size)
    seed_generator = keras.random.SeedGenerator(seed)
    # Advanced after every chunk; redrawn at most once a second (a log file gets ~1 line a second).
    progress = keras.utils.Progbar(len(images) * num_samples, unit_name="sample",
                                   interval=1.0) if verbose else None
    compiled = compiled_log_importance_weights(model) if _uses_log_weights(model) else None
    nll, mc_error = [], []
    for batch_array in _batches(images, batch_size):
        batch_array = np.asarray(ops.convert_to_numpy(batch_array))
        rows = int(batch_array.shape[0])
        log_weights_of, latent_shapes = log_weight_function(model, batch_array, compiled)
        chunk = max(1, min(num_samples, int(max_decoder_batch) // rows))
        running_max = np.full(rows, -np.inf)
        sum_weights = np.zeros(rows)  # sum_k exp(log_w_k - running_max)
        sum_squares = np.zeros(rows)  # sum_k exp(2 * (log_w_k - running_max))
        drawn = 0
        while drawn < num_samples:
            size = min(chunk, num_samples - drawn)
            noise = [keras.random.normal((size, rows) + shape, seed=seed_generator)
                     for shape in latent_shapes]
            log_weights = log_weights_of(noise)
            new_max = np.maximum(running_max, log_weights.max(axis=0))
            shift = np.exp(running_max - new_max)
            centred = np.exp(log_weights - new_max)
            sum_weights = sum_weights * shift + centred.sum(axis=0)
            sum_squares = sum_squares * shift ** 2 + np.square(centred).sum(axis=0)
            running_max = new_max
            drawn += size
            if progress is not None:
                progress.add(size * rows)
        log_marginal = running_max + np.log(sum_weights) - math.log(num_samples)
        if not np.all(np.isfinite(log_marginal)):
            raise FloatingPointError("Non-finite log-weights: the model produced NaN or inf values.")
        relative_variance = num_samples * sum_squares / np.square(sum_weights) - 1.0
        nll.append(-log_marginal)
        mc_error.append(np.sqrt(np.maximum(relative_variance, 0.0) / num_samples))
    return _summarise(np.concatenate(nll), num_samples, np.concatenate(mc_error))


def elbo(model, images, num_samples=1, batch_size=100, seed=None, verbose=0):
    """The evidence lower bound `E_q[log p(x|z)] - KL(q(z|x) || p(z))` in nats per image.

    The expectation uses `num_samples` posterior samples; the KL is in closed form. Models with
    `elbo_terms(images, seed)` (hierarchical models) give their own per-layer terms (their KL sums
    the layers' KLs, see `keras_crvae.models.hierarchical`).

    Returns:
        dict with `elbo`, `reconstruction` (`-E_q[log p(x|z)]`) and `kl`, each a `LikelihoodEstimate`.
    """
    _check_inputs(model, images, num_samples, batch_size)
    seed_generator = keras.random.SeedGenerator(seed)
    progress = keras.utils.Progbar(len(images), unit_name="image") if verbose else None
    reconstruction, kl = [], []
    for batch in _batches(images, int(batch_size)):
        batch = np.asarray(ops.convert_to_numpy(batch))
        if callable(getattr(model, "elbo_terms", None)):
            # Hierarchical models: one-sample terms per draw, KL per layer (HierarchicalVAE).
            total_reconstruction, total_kl = 0.0, 0.0
            for _ in range(int(num_samples)):
                terms = {key: ops.convert_to_numpy(value).astype(np.float64)
                         for key, value in model.elbo_terms(batch, seed=seed_generator).items()}
                total_reconstruction = total_reconstruction + terms.pop("reconstruction")
                total_kl = total_kl + sum(terms.values())
            reconstruction.append(total_reconstruction / int(num_samples))
            kl.append(total_kl / int(num_samples))
            if progress is not None:
                progress.add(int(batch.shape[0]))
            continue
        mean, log_var = model.encode(batch)
        mean, log_var = _float32(mean), _float32(log_var)
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
