"""A full-covariance Gaussian fitted to a trained model's aggregate posterior: an ex-post latent
distribution to sample from instead of the prior N(0, I).

An encoder-decoder trained with a small KL weight (the crVAE-GAN's supplement weights) can leave
its aggregate posterior q(z) = E_x q(z|x) far from the prior in shape (a few directions much
wider than 1, the rest narrower), and prior samples then land where the decoder has seen few codes
(docs/faces.md, "Where the encoder puts faces"). The Two-Stage VAE (Dai & Wipf 2019, section 4)
learns q(z) with a second VAE; its simplest stand-in is one Gaussian matched to q's first two
moments, "ex-post density estimation" (Ghosh et al. 2020, "From variational to deterministic
autoencoders", section 4):

    m = mean_x mu(x)
    C = Cov_x mu(x) + mean_x diag(sigma^2(x))          (the law of total variance)
    z = m + S eps,   eps ~ N(0, I),   S S^T = C        (S from the eigendecomposition of C)

The moments are computed in float64 in NumPy (`aggregate_moments`); the layer holds `m` and `S` as
non-trainable float32 weights, so a `.keras` file keeps the fit. Unfitted it is N(0, I).
"""

import keras
import numpy as np
from keras import ops


def aggregate_moments(means, log_vars):
    """Mean `(D,)` and covariance `(D, D)` (float64) of the aggregate posterior of the diagonal
    Gaussians `q(z|x_i) = N(means[i], exp(log_vars[i]))`, `means` and `log_vars` `(N, ...)`
    flattened per row (N >= 2): the covariance of the means (divisor N - 1) plus the mean
    posterior variance on the diagonal."""
    flat_means = np.asarray(means, np.float64).reshape(len(means), -1)
    variances = np.exp(np.asarray(log_vars, np.float64).reshape(len(log_vars), -1))
    if flat_means.shape != variances.shape or len(flat_means) < 2:
        raise ValueError(f"`means` and `log_vars` must have one shape (N >= 2, ...); got "
                         f"{np.shape(means)} and {np.shape(log_vars)}.")
    covariance = np.cov(flat_means, rowvar=False).reshape(flat_means.shape[1], -1)
    return flat_means.mean(axis=0), covariance + np.diag(variances.mean(axis=0))


def covariance_root(covariance):
    """`S` `(D, D)` with `S S^T = covariance` (symmetric eigendecomposition; eigenvalues below zero
    from rounding clipped to zero), float64."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


@keras.saving.register_keras_serializable(package="keras_crvae")
class LatentGaussian(keras.layers.Layer):
    """N(m, S S^T) over latents of shape `latent_shape` (module docstring); N(0, I) until `fit`.

    `call(noise)`: standard-normal noise `(B, *latent_shape)` -> latents `(B, *latent_shape)`
    float32. `sample(count, seed)`: `count` latents. `fit(means, log_vars)`: matches the aggregate
    posterior of `q(z|x)` with those parameters `(N, *latent_shape)` (e.g. `model.encode` of
    training images). Computes in float32 under any dtype policy (an island for statistics).

    Args:
        latent_shape: tuple of ints, the latent's shape without the batch axis.
    """

    def __init__(self, latent_shape, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.latent_shape = tuple(int(size) for size in latent_shape)
        if not self.latent_shape or min(self.latent_shape) < 1:
            raise ValueError(f"`latent_shape` must be a non-empty tuple of positive sizes, got "
                             f"{latent_shape!r}.")
        self.size = int(np.prod(self.latent_shape))
        self.mean = self.add_weight(shape=(self.size,), initializer="zeros", trainable=False,
                                    dtype="float32", name="mean")
        self.scale = self.add_weight(shape=(self.size, self.size), initializer="identity",
                                     trainable=False, dtype="float32", name="scale")
        self.built = True

    def fit(self, means, log_vars):
        """Sets `m` and `S` from `aggregate_moments(means, log_vars)`; returns `self`."""
        means, log_vars = np.asarray(means), np.asarray(log_vars)
        if means.shape[1:] != self.latent_shape:
            raise ValueError(f"`means` must have shape (N, {', '.join(map(str, self.latent_shape))})"
                             f"; got {means.shape}.")
        mean, covariance = aggregate_moments(means, log_vars)
        self.mean.assign(mean.astype("float32"))
        self.scale.assign(covariance_root(covariance).astype("float32"))
        return self

    def call(self, noise):
        flat = ops.reshape(ops.cast(noise, "float32"), (-1, self.size))
        latents = self.mean + ops.matmul(flat, ops.transpose(self.scale))
        return ops.reshape(latents, (-1,) + self.latent_shape)

    def sample(self, count, seed=None):
        """`count` latents `(count, *latent_shape)` float32 drawn from N(m, S S^T)."""
        if int(count) < 1:
            raise ValueError(f"`count` must be >= 1, got {count}.")
        return self(keras.random.normal((int(count),) + self.latent_shape, seed=seed))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.latent_shape

    def get_config(self):
        return {**super().get_config(), "latent_shape": list(self.latent_shape)}
