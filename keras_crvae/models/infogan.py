"""InfoGAN (Chen et al. 2016): a GAN whose generator input carries structured codes `c` that a Q head
recovers, maximising a variational lower bound of the mutual information `I(c; G(z, c))`.

The lecture's "Variational Information Maximization":

    I(c; G(z, c)) >= H(c) + E_{c ~ p(c), x ~ G(z, c)} log Q(c | x) = L_I
    min_{G, Q} max_D  V(D, G) - lambda L_I

Latents (the generator's input, `(B, noise_dim + K + C)`): `[z, one_hot(c_cat), c_cont]` with
`z ~ N(0, I)` (`noise_dim`, the paper's 62 on MNIST), one `K`-way categorical code (10 on MNIST) and
`C` continuous codes `~ U(-1, 1)` (2 on MNIST). `Q` shares D's trunk (the discriminator's third output,
`(B, K + C)`): `K` logits of a categorical `Q(c_cat|x)` and the means of a factored Gaussian with unit
standard deviation for the continuous codes (the paper's released code fixes the standard deviation),
so

    log Q(c | x) = log_softmax(q_logits)[c_cat] + sum_j log N(c_j; mu_j(x), 1).

`-lambda E log Q(c|x)` joins both the discriminator's (Q's) loss on the detached fakes and the
generator's loss on its fresh samples (the paper's `lambda = 1`, MNIST section 7 / released
`info_reg_coeff=1.0`). The metric `mi` is the categorical code's bound `log K + E log Q(c_cat|x)`
(nats; at most `log K`).

Reference: Chen et al., "InfoGAN: Interpretable Representation Learning by Information Maximizing
Generative Adversarial Nets", NeurIPS 2016, sections 5-7 and appendix C.1 (MNIST networks).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute
from keras_crvae.models.gan import GAN
from keras_crvae.models.base import to_float32

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def code_log_likelihood(q_params, categories, continuous, num_categories):
    """`log Q(c|x)` per example: categorical log-softmax at `categories` plus unit-variance Gaussians.

    Args:
        q_params: `(B, K + C)`, Q's raw outputs (K logits, then C means).
        categories: `(B,)` integer codes in [0, K).
        continuous: `(B, C)` continuous codes.
        num_categories: int, K.

    Returns:
        `(log Q(c|x), log Q(c_cat|x))`, each `(B,)` (nats).
    """
    logits, means = q_params[:, :num_categories], q_params[:, num_categories:]
    log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    one_hot = ops.one_hot(ops.cast(categories, "int32"), num_categories, dtype=log_probs.dtype)
    categorical = ops.sum(log_probs * one_hot, axis=-1)
    gaussian = -0.5 * ops.square(ops.cast(continuous, means.dtype) - means) - _HALF_LOG_2PI
    return categorical + ops.sum(gaussian, axis=-1), categorical


@keras.saving.register_keras_serializable(package="keras_crvae")
class InfoGAN(GAN):
    """InfoGAN: `GAN` whose latents hold a categorical and continuous codes recovered by Q.

    Args:
        generator: `keras.Model`, latents `(B, noise_dim + categories + continuous_codes)` -> images.
        discriminator: `keras.Model`, images -> `[logits, features, q (B, categories +
            continuous_codes)]` (`build_dcgan_discriminator(q_units=...)`).
        noise_dim: int, default 62.
        categories: int, default 10 (one categorical code).
        continuous_codes: int, default 2.
        mi_weight: float, default 1.0 (lambda).
        **kwargs: as `GAN` (objective, critic steps, improved techniques, seed).

    Metrics: those of `GAN` plus `mi`.
    """

    metric_names = GAN.metric_names + ("mi",)

    def __init__(self, generator, discriminator, noise_dim=62, categories=10, continuous_codes=2,
                 mi_weight=1.0, **kwargs):
        if int(noise_dim) < 0 or int(categories) < 2 or int(continuous_codes) < 0:
            raise ValueError("InfoGAN needs noise_dim >= 0, categories >= 2, continuous_codes >= 0; "
                             f"got {noise_dim}, {categories}, {continuous_codes}.")
        if float(mi_weight) < 0:
            raise ValueError(f"`mi_weight` must be >= 0, got {mi_weight!r}.")
        super().__init__(generator, discriminator, **kwargs)
        self.noise_dim, self.categories = int(noise_dim), int(categories)
        self.continuous_codes, self.mi_weight = int(continuous_codes), float(mi_weight)
        code_dim = self.noise_dim + self.categories + self.continuous_codes
        if self.latent_shape != (code_dim,):
            raise ValueError(f"The generator takes {self.latent_shape}; InfoGAN's latents are "
                             f"({code_dim},) = noise {self.noise_dim} + {self.categories} categories "
                             f"+ {self.continuous_codes} continuous codes.")
        if self._discriminator_outputs != 3:
            raise ValueError("InfoGAN needs a discriminator returning [logits, features, q] "
                             "(build_dcgan_discriminator(q_units=categories + continuous_codes)).")
        q_shape = tuple(discriminator.output[2].shape[1:])
        if q_shape != (self.categories + self.continuous_codes,):
            raise ValueError(f"Q returns {q_shape}; expected ({self.categories + self.continuous_codes},)"
                             ": the categorical logits, then the continuous codes' means.")

    def get_config(self):
        config = super().get_config()
        config.update({"noise_dim": self.noise_dim, "categories": self.categories,
                       "continuous_codes": self.continuous_codes, "mi_weight": self.mi_weight})
        return config

    # --- latents --------------------------------------------------------------------------------

    def latents_from_codes(self, noise, categories, continuous):
        """Latents `[z, one_hot(c_cat), c_cont]` `(B, latent_dim)` from their parts (NumPy or tensors)."""
        one_hot = ops.one_hot(ops.cast(categories, "int32"), self.categories, dtype="float32")
        return ops.concatenate([ops.cast(noise, "float32"), one_hot,
                                ops.cast(continuous, "float32")], axis=-1)

    def draw_latents(self, batch_size):
        """Latents and codes `(categories (m,), continuous (m, C))` of one step, per-replica rows."""
        noise = distribute.replica_normal((batch_size, self.noise_dim), self.seed_generator,
                                          dtype="float32")
        uniform = distribute.replica_uniform((batch_size, 1 + self.continuous_codes),
                                             self.seed_generator, dtype="float32")
        categories = ops.minimum(ops.floor(uniform[:, 0] * self.categories), self.categories - 1)
        continuous = 2.0 * uniform[:, 1:] - 1.0
        return self.latents_from_codes(noise, categories, continuous), (categories, continuous)

    def prior_latents(self, num_samples, seed=0, categories=None):
        """NumPy latents of the prior; `categories` `(num_samples,)` fixes the categorical codes."""
        rng = np.random.default_rng(seed)
        num_samples = int(num_samples)
        noise = rng.standard_normal((num_samples, self.noise_dim)).astype("float32")
        if categories is None:
            categories = rng.integers(self.categories, size=num_samples)
        continuous = rng.uniform(-1, 1, (num_samples, self.continuous_codes)).astype("float32")
        return ops.convert_to_numpy(self.latents_from_codes(noise, np.asarray(categories),
                                                            continuous))

    def traversal_latents(self, code, values, rows=10, seed=0):
        """Latents of a traversal grid like the paper's Figure 2: `(rows * len(values), latent_dim)`.

        Row `r` keeps one noise vector and (for continuous traversals) the category `r % K`; the
        columns vary one code: `code="categorical"` sets `c_cat` to each of `values` (integers),
        `code=j` (int) sets continuous code `j` to each of `values` (e.g. -2..2), the other
        continuous codes 0.
        """
        rng = np.random.default_rng(seed)
        values = list(values)
        noise = np.repeat(rng.standard_normal((rows, self.noise_dim)), len(values), axis=0)
        continuous = np.zeros((rows * len(values), self.continuous_codes), "float32")
        if code == "categorical":
            categories = np.tile(np.asarray(values, "int64"), rows)
        else:
            index = int(code)
            if not 0 <= index < self.continuous_codes:
                raise ValueError(f"`code` must be 'categorical' or a continuous code index in "
                                 f"[0, {self.continuous_codes}); got {code!r}.")
            categories = np.repeat(np.arange(rows) % self.categories, len(values))
            continuous[:, index] = np.tile(np.asarray(values, "float32"), rows)
        return ops.convert_to_numpy(self.latents_from_codes(noise.astype("float32"), categories,
                                                            continuous))

    # --- the MI term ----------------------------------------------------------------------------

    def code_loss(self, q, codes):
        """`(-lambda mean log Q(c|x), log K + mean log Q(c_cat|x))` for Q's outputs on G(z, c)."""
        categories, continuous = codes
        log_likelihood, categorical = code_log_likelihood(q, categories, continuous,
                                                          self.categories)
        mi = math.log(self.categories) + ops.mean(categorical)
        return -self.mi_weight * ops.mean(log_likelihood), mi

    def predict_categories(self, images, batch_size=500):
        """Q's most likely categorical code `(N,)` for images `(N, *image_shape)` in [-1, 1]."""
        predictions = []
        for start in range(0, len(images), batch_size):
            batch = ops.convert_to_tensor(np.asarray(images[start:start + batch_size], "float32"))
            q = to_float32(self.discriminator(batch, training=False)[2])
            predictions.append(np.argmax(ops.convert_to_numpy(q[:, :self.categories]), axis=-1))
        return np.concatenate(predictions)

