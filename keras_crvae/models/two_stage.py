"""The Two-Stage VAE (Dai & Wipf, "Diagnosing and Enhancing VAE Models", ICLR 2019).

Stage 1 is a VAE with a Gaussian decoder `p(x|z) = N(f(z), gamma^2 I)` and a learnable scalar
`gamma = exp(log_gamma)`. Per example `x` with `d` pixels (paper eq. 2; `__build_loss` of
`network/two_stage_vae_model.py`, GitHub daib13/TwoStageVAE):

    distortion = sum_pixels (x - f(z))^2 / (2 gamma^2) + d log(gamma) + d/2 log(2 pi),  z ~ q(z|x)
    rate       = KL(q(z|x) || N(0, I)) = 1/2 sum_j (mu_j^2 + sd_j^2 - 2 log sd_j - 1)
    loss       = mean over the batch of (distortion + rate)   [+ weight_decay/2 * sum ||W||^2]

Theorem 3 predicts `gamma -> 0` as training proceeds when the data lie on a manifold. The paper's
baselines are the same model with `gamma` fixed (`decoder_loss="fixed_gamma"`, gamma 1) and with a
Bernoulli cross-entropy decoder (`decoder_loss="cross_entropy"`, clipped at 1e-8 as the reference).

Stage 2 is the same kind of VAE on the stage-1 latents: `z ~ q(z|x)` of the frozen first stage are its
data, its latent is `u`, and its Gaussian decoder has its own learnable `gamma_z`. Generation
(`TwoStageVAE.sample(n, stage=2)`, the reference's `generate`):

    u ~ N(0, I),   z = decoder2(u) + gamma_z * eps,   eps ~ N(0, I),   x = decoder1(z)

`stage=1` draws `z ~ N(0, I)` directly (the single-stage VAE).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_crvae import losses
from keras_crvae.layers import GaussianSampler, average_batch_norm_statistics
from keras_crvae.models.base import (OptimizerBuiltBeforeTracing, check_encoder_decoder,
                                     to_float32, validate_images, with_deserialized)

DECODER_LOSSES = ("learned_gamma", "fixed_gamma", "cross_entropy")
HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_CROSS_ENTROPY_FLOOR = 1e-8


@keras.saving.register_keras_serializable(package="keras_crvae")
class GammaVAE(OptimizerBuiltBeforeTracing, keras.Model):
    """A VAE with a Gaussian decoder of variance `gamma^2` (learned or fixed) or a cross-entropy one.

    Serves both stages of the Two-Stage VAE: stage 1 maps images to latents, stage 2 maps stage-1
    latents to codes (its "images" are then vectors with no value range). The decoder returns the
    Gaussian mean directly (a sigmoid-ended network for images, a linear one for latents). Train it
    with `model.compile(optimizer)` and `model.fit(data)`; the loss lives in `compute_loss`, so every
    Keras backend trains it.

    Args:
        encoder: `keras.Model`, data `(B, *data_shape)` -> `[mean, log_var]`, each `(B, *latent)`.
        decoder: `keras.Model`, `(B, *latent)` -> decoder mean `(B, *data_shape)`.
        decoder_loss: str, default "learned_gamma". "learned_gamma" (trainable `log_gamma`),
            "fixed_gamma" (`log_gamma` frozen at `log(gamma)`) or "cross_entropy" (Bernoulli
            likelihood of the decoder's probabilities; data in [0, 1]).
        gamma: float, default 1.0. Initial (or fixed) decoder standard deviation; the reference
            starts `loggamma` at 0.
        weight_decay: float, default 0.0. L2 penalty `weight_decay / 2 * sum ||W||^2` on every
            kernel (TensorFlow's `l2_regularizer` convention; the paper uses 5e-4).
        data_range: tuple `(low, high)` or None, default `(0.0, 1.0)`. The range checked on NumPy
            inputs of `encode` / `log_likelihood`; None for stage-2 latents.
        seed: int or None. Seed of the posterior sampler.

    Metrics (nats per example): `loss`, `reconstruction` (the distortion above), `kl`, `gamma`.

    >>> from keras_crvae.networks import two_stage
    >>> stage2 = GammaVAE(two_stage.build_latent_encoder(4, depth=1, width=8),
    ...                   two_stage.build_latent_decoder(4, depth=1, width=8), data_range=None)
    >>> round(float(stage2.gamma), 3)
    1.0

    Reference: Dai & Wipf 2019, sections 3-4 and supplement 6; `TwoStageVaeModel` of
    daib13/TwoStageVAE.
    """

    def __init__(self, encoder, decoder, decoder_loss="learned_gamma", gamma=1.0,
                 weight_decay=0.0, data_range=(0.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        if decoder_loss not in DECODER_LOSSES:
            raise ValueError(f"`decoder_loss` must be one of {DECODER_LOSSES}, got {decoder_loss!r}.")
        if not float(gamma) > 0 or not math.isfinite(float(gamma)):
            raise ValueError(f"`gamma` must be a positive finite float, got {gamma!r}.")
        if float(weight_decay) < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
        if data_range is not None:
            data_range = tuple(float(v) for v in data_range)
            if len(data_range) != 2 or data_range[0] >= data_range[1]:
                raise ValueError(f"`data_range` must be (low, high) with low < high; got {data_range}.")
        if decoder_loss == "cross_entropy" and data_range != (0.0, 1.0):
            raise ValueError("`decoder_loss='cross_entropy'` needs `data_range=(0.0, 1.0)`.")

        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        self.sampler = GaussianSampler(seed=seed, use_tfp=False, dtype="float32",
                                       name="posterior_sampler")

        # === Config ===
        self.decoder_loss = decoder_loss
        self.initial_gamma = float(gamma)
        self.weight_decay = float(weight_decay)
        self.data_range = data_range
        self.seed = seed
        self.data_shape = tuple(encoder.input_shape[1:])
        self.latent_shape = tuple(decoder.input_shape[1:])
        self.num_dimensions = int(math.prod(self.data_shape))
        self._check_networks()

        # === State ===
        self.log_gamma = self.add_weight(
            shape=(), name="log_gamma",
            initializer=keras.initializers.Constant(math.log(self.initial_gamma)),
            trainable=decoder_loss == "learned_gamma",
        )

        # === Metrics ===
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.gamma_tracker = keras.metrics.Mean(name="gamma")
        self.build((None,) + self.data_shape)

    def build(self, input_shape):
        self.built = True

    def _check_networks(self):
        check_encoder_decoder(self.encoder, self.decoder, self.latent_shape, self.data_shape)

    @property
    def gamma(self):
        """The decoder standard deviation `exp(log_gamma)`, a scalar tensor."""
        return ops.exp(self.log_gamma)

    # --- forward pass used by fit() --------------------------------------------------------------

    def call(self, data, training=None):
        """Encodes, samples `z ~ q(z|x)` and decodes.

        Returns a dict: `mean`, `log_var`, `z`, `kl` (per element) `(B, *latent)` and `x_mean`
        `(B, *data_shape)`.
        """
        mean, log_var = to_float32(self.encoder(data, training=training))
        z, kl = self.sampler([mean, log_var])
        x_mean = to_float32(self.decoder(z, training=training))
        return {"mean": mean, "log_var": log_var, "z": z, "kl": kl, "x_mean": x_mean}

    def negative_log_likelihood(self, data, x_mean):
        """`-log p(x|z)` per example `(B,)` for data `(B, *data_shape)` and decoder means alike."""
        data = ops.cast(data, x_mean.dtype)
        if self.decoder_loss == "cross_entropy":
            probabilities = x_mean
            log_p = ops.log(ops.maximum(probabilities, _CROSS_ENTROPY_FLOOR))
            log_1mp = ops.log(ops.maximum(1.0 - probabilities, _CROSS_ENTROPY_FLOOR))
            return -losses.sum_per_example(data * log_p + (1.0 - data) * log_1mp)
        log_gamma = ops.cast(self.log_gamma, x_mean.dtype)
        squared_error = losses.sum_per_example(ops.square(data - x_mean))
        return (squared_error / (2.0 * ops.exp(2.0 * log_gamma))
                + self.num_dimensions * (log_gamma + HALF_LOG_TWO_PI))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The objective of the module docstring; also updates the metrics.

        `sample_weight` is not supported and is ignored.
        """
        distortion = ops.mean(self.negative_log_likelihood(x, y_pred["x_mean"]))
        kl = ops.mean(losses.sum_per_example(y_pred["kl"]))
        self.reconstruction_tracker.update_state(distortion)
        self.kl_tracker.update_state(kl)
        self.gamma_tracker.update_state(self.gamma)
        return distortion + kl + self._weight_decay_loss() + self._regularization_loss()

    def _weight_decay_loss(self):
        if not self.weight_decay:
            return 0.0
        kernels = [v for v in self.trainable_variables if v.path.endswith("kernel")]
        if not kernels:
            return 0.0
        return 0.5 * self.weight_decay * ops.sum(ops.stack([ops.sum(ops.square(v)) for v in kernels]))

    def _regularization_loss(self):
        extra = self.losses
        return ops.sum(ops.stack(extra)) if extra else 0.0

    # --- encode / decode -----------------------------------------------------------------------

    def _to_tensor(self, data, shape, name, value_range):
        data = validate_images(data, shape, name=name, value_range=value_range)
        return ops.cast(ops.convert_to_tensor(data), "float32")

    def encode(self, data):
        """`q(z|x)` parameters: data `(B, *data_shape)` -> `(mean, log_var)`, each `(B, *latent)`."""
        data = self._to_tensor(data, self.data_shape, "data", self.data_range)
        mean, log_var = to_float32(self.encoder(data, training=False))
        return mean, log_var

    def decode(self, z):
        """The decoder mean for latents `z` `(B, *latent_shape)` -> `(B, *data_shape)`."""
        z = self._to_tensor(z, self.latent_shape, "z", None)
        return to_float32(self.decoder(z, training=False))

    def posterior_sample(self, data, seed=None):
        """One `z ~ q(z|x)` per example, `(B, *latent_shape)`."""
        mean, log_var = self.encode(data)
        noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=seed)
        return mean + ops.exp(0.5 * log_var) * noise

    def log_likelihood(self, data, z):
        """`log p(x|z)` summed over dimensions -> `(B,)`."""
        data = self._to_tensor(data, self.data_shape, "data", self.data_range)
        return -self.negative_log_likelihood(data, self.decode(z))

    def recalibrate_batch_norm(self, data, batch_size=100):
        """Re-estimates every BatchNorm moving mean/variance as the plain average over `data`.

        The reference's BatchNorm decay of 0.999 leaves the moving statistics ~70% at their
        initial values after 360 steps, so a short run's inference-mode encoder (used by `encode`,
        hence by the stage-2 training data) is off. This runs the model in training mode over
        `data` (one posterior draw per example, as in training) with a cumulative-average momentum;
        no trainable weight changes (spectral normalisation re-normalises already normalised
        kernels). Not in the reference; for short runs.

        Args:
            data: array `(N, *data_shape)`.
            batch_size: int, default 100 (the training batch).

        Returns:
            int, the number of BatchNorm layers re-estimated
            (`layers.average_batch_norm_statistics`).
        """
        size = int(batch_size)
        batches = (ops.convert_to_tensor(np.asarray(data[start:start + size], "float32"))
                   for start in range(0, len(data) - size + 1, size))
        return average_batch_norm_statistics(self, batches)

    # --- serialization -------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "decoder_loss": self.decoder_loss,
            "gamma": self.initial_gamma,
            "weight_decay": self.weight_decay,
            "data_range": None if self.data_range is None else list(self.data_range),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "encoder", "decoder"))


class PosteriorLatents(keras.utils.PyDataset):
    """Stage-2 training data: batches of `z = mean + sd * eps`, fresh `eps` every epoch.

    The frozen stage 1 is run once to get `q(z|x)` for every image (the reference's
    `extract_posterior`); each epoch shuffles the examples and draws new noise, as `demo.py` of
    daib13/TwoStageVAE does. Yields `(z,)` batches of shape `(batch_size, latent_dim)`.

    Args:
        mean: array `(N, latent_dim)`.
        log_var: array `(N, latent_dim)`.
        batch_size: int, default 100.
        seed: int, default 0.
        drop_remainder: bool, default True (the reference iterates `N // batch_size` batches).
    """

    def __init__(self, mean, log_var, batch_size=100, seed=0, drop_remainder=True, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.exp(0.5 * np.asarray(log_var, np.float32))
        if self.mean.shape != self.std.shape or self.mean.ndim < 2:
            raise ValueError(f"`mean` and `log_var` must have one shape (N, latent_dim); got "
                             f"{self.mean.shape} and {self.std.shape}.")
        if int(batch_size) < 1 or int(batch_size) > len(self.mean):
            raise ValueError(f"`batch_size` must be in [1, {len(self.mean)}], got {batch_size}.")
        self.batch_size = int(batch_size)
        self.drop_remainder = bool(drop_remainder)
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        if self.drop_remainder:
            return len(self.mean) // self.batch_size
        return -(-len(self.mean) // self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        noise = self.rng.standard_normal(self.mean[rows].shape).astype(np.float32)
        return (self.mean[rows] + self.std[rows] * noise,)

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.mean))


@keras.saving.register_keras_serializable(package="keras_crvae")
class TwoStageVAE(OptimizerBuiltBeforeTracing, keras.Model):
    """The two VAEs together, with the library's model API (`encode`, `decode`, `sample`, ...).

    Train each stage with its own `fit` (`model.stage1.fit(images)`, then
    `model.stage2.fit(model.stage2_data(images))`): stage-2 training never touches stage-1 weights, and
    its data are latents from the frozen stage-1 posterior.

    Args:
        stage1: `GammaVAE` on images, latent `(latent_dim,)`; decoder output in `image_range`.
        stage2: `GammaVAE` on `(latent_dim,)` vectors with `data_range=None`.
        image_range: tuple, default `(0.0, 1.0)`. The range of `decode`'s output.

    Attributes:
        image_shape, latent_shape: per-example shapes of images and stage-1 latents.
        code_shape: the stage-2 latent (`u`) shape.

    >>> from keras_crvae.networks import two_stage as nets
    >>> model = TwoStageVAE.from_networks(
    ...     nets.build_infogan_encoder((28, 28, 1), 4), nets.build_infogan_decoder((28, 28, 1), 4),
    ...     nets.build_latent_encoder(4, depth=1, width=8), nets.build_latent_decoder(4, depth=1, width=8))
    >>> tuple(model.sample(2, stage=2, seed=0).shape)
    (2, 28, 28, 1)

    Reference: Dai & Wipf 2019, section 4; `generate` of daib13/TwoStageVAE.
    """

    def __init__(self, stage1, stage2, image_range=(0.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        if not isinstance(stage1, GammaVAE) or not isinstance(stage2, GammaVAE):
            raise ValueError("`stage1` and `stage2` must be `GammaVAE` models.")
        if tuple(stage2.data_shape) != tuple(stage1.latent_shape):
            raise ValueError(f"Stage 2 models data of shape {stage2.data_shape} but stage-1 latents "
                             f"have shape {stage1.latent_shape}.")
        if stage2.decoder_loss == "cross_entropy" or stage2.data_range is not None:
            raise ValueError("`stage2` needs a Gaussian decoder and `data_range=None` (latents).")
        self.stage1 = stage1
        self.stage2 = stage2
        self.image_range = tuple(float(v) for v in image_range)
        self.image_shape = stage1.data_shape
        self.latent_shape = stage1.latent_shape
        self.code_shape = stage2.latent_shape
        self.built = True

    @classmethod
    def from_networks(cls, encoder1, decoder1, encoder2, decoder2, decoder_loss="learned_gamma",
                      gamma=1.0, weight_decay=0.0, seed=None, name="two_stage_vae"):
        """Builds both `GammaVAE`s from four networks (stage 2 always learns its gamma)."""
        stage1 = GammaVAE(encoder1, decoder1, decoder_loss=decoder_loss, gamma=gamma,
                          weight_decay=weight_decay, seed=seed, name="stage1")
        stage2 = GammaVAE(encoder2, decoder2, decoder_loss="learned_gamma",
                          weight_decay=weight_decay, data_range=None,
                          seed=None if seed is None else seed + 1, name="stage2")
        return cls(stage1, stage2, name=name)

    def call(self, images, training=None):
        """Stage-1 forward pass (see `GammaVAE.call`)."""
        return self.stage1(images, training=training)

    # --- the public API contract -----------------------------------------------------------------

    def encode(self, images):
        """Stage-1 `q(z|x)`: images `(B, *image_shape)` in [0, 1] -> `(mean, log_var)`."""
        return self.stage1.encode(images)

    def decode(self, z):
        """Stage-1 decoder mean: `z (B, *latent_shape)` -> images in `image_range`."""
        return self.stage1.decode(z)

    def log_likelihood(self, images, z):
        """Stage-1 `log p(x|z)` -> `(B,)`."""
        return self.stage1.log_likelihood(images, z)

    def reconstruct(self, images):
        """Decoder mean of the posterior mean of each image."""
        mean, _ = self.encode(images)
        return self.decode(mean)

    def sample_latents(self, num_samples, stage=2, seed=None):
        """Latents `z (n, *latent_shape)`: `N(0, I)` (stage 1) or `decoder2(u) + gamma_z * eps`."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        if stage not in (1, 2):
            raise ValueError(f"`stage` must be 1 or 2, got {stage!r}.")
        generator = keras.random.SeedGenerator(seed)
        shape = (int(num_samples),) + self.latent_shape
        if stage == 1:
            return keras.random.normal(shape, seed=generator)
        u = keras.random.normal((int(num_samples),) + self.code_shape, seed=generator)
        z_mean = to_float32(self.stage2.decoder(u, training=False))
        return z_mean + self.stage2.gamma * keras.random.normal(shape, seed=generator)

    def sample(self, num_samples, stage=2, seed=None):
        """Draws `num_samples` images `(n, *image_shape)` through `stage` 1 or 2 (default 2)."""
        return self.decode(self.sample_latents(num_samples, stage=stage, seed=seed))

    def stage2_data(self, images, batch_size=100, seed=0, encode_batch_size=500):
        """`PosteriorLatents` of `images` under the current (frozen) stage-1 encoder."""
        means, log_vars = [], []
        for start in range(0, len(images), encode_batch_size):
            mean, log_var = self.encode(images[start:start + encode_batch_size])
            means.append(ops.convert_to_numpy(mean))
            log_vars.append(ops.convert_to_numpy(log_var))
        return PosteriorLatents(np.concatenate(means), np.concatenate(log_vars),
                                batch_size=batch_size, seed=seed)

    # --- serialization -------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "stage1": keras.saving.serialize_keras_object(self.stage1),
            "stage2": keras.saving.serialize_keras_object(self.stage2),
            "image_range": list(self.image_range),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "stage1", "stage2"))
