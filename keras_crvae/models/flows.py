"""Flow models trained by exact maximum likelihood on dequantized grey-level images: NICE,
RealNVP, Glow (`keras_crvae.networks.flows` builds their bijectors).

Change of variables (the lecture, "Normalizing flows"): for an invertible f with z = f(y),

    log p_Y(y) = log p_Z(f(y)) + log |det df/dy (y)|.

Dequantization (Theis et al. 2016; RealNVP section 4.1): the data are integer grey levels
x in {0..255}^D. A density on the continuous v = x + u, u ~ U[0, 1)^D, gives a lower bound on the
discrete model's log-probability, log P(x) >= E_u[log p_V(x + u)] (Jensen), because
P(x) = integral over the unit cube of p_V. The flow is fitted to y = v / 256 in [0, 1)^D, so

    log p_V(v) = log p_Y(v / 256) - D log 256,

and, with RealNVP's / Glow's logit preprocessing (`logit_alpha` not None), y goes through
`keras_crvae.layers.LogitTransform` first, whose log-determinant joins the sum. Every number this
model reports is log p_V(x + u) for one draw of u: an unbiased estimate of the bound
E_u[log p_V(x + u)] <= log P(x), in nats of the discrete 0..255 image. bits/dim = -that / (D ln 2).
NICE's paper reports log p_Y on [0, 1] (no -D log 256): docs/flows.md has the conversion.
"""

import math

import keras
from keras import ops

from keras_crvae.layers import Bijector, LogitTransform
from keras_crvae.models.base import (OptimizerBuiltBeforeTracing, validate_images,
                                     with_deserialized)

DATA_KINDS = ("grey256",)
GREY_LEVELS = 256


@keras.saving.register_keras_serializable(package="keras_crvae")
class FlowModel(OptimizerBuiltBeforeTracing, keras.Model):
    """A normalizing flow on dequantized grey-level images (module docstring).

    The likelihood job's protocol (`keras_crvae.jobs.likelihood`): `data_kind`,
    `log_likelihood(images)`, `sample(num_samples, temperature, seed)`, and `fit()` on batches of
    grey levels with `compute_loss` = mean negative log-likelihood (nats per image) and the
    metrics `nll` and `bits_per_dim`.

    Args:
        flow: `keras_crvae.layers.Bijector` from the preprocessed image `(batch, *image_shape)` to
            the latent (any shape of the same size).
        prior: the latent's distribution, `keras_crvae.layers.StandardGaussian` or
            `StandardLogistic` (anything with `log_prob(z) -> (batch,)` and
            `sample(shape, temperature, seed)`).
        image_shape: tuple, default (28, 28, 1).
        logit_alpha: float or None, default None. None: the flow sees y = (x + u) / 256 in
            [0, 1) (NICE); a float: it sees logit(alpha + (1 - 2 alpha) y) (RealNVP: 0.05).
        data_kind: str, default "grey256": images are grey levels 0..255 as float32.
        seed: int or None. Seed of the dequantization noise.
        **kwargs: `keras.Model` arguments (`name`).

    Input: `(batch, *image_shape)` float32 grey levels in [0, 255]. `call` returns the per-image
    log-likelihood estimate `(batch,)`.

    References: Dinh et al. 2014 (NICE); Dinh et al. 2017 (RealNVP), section 4.1; Kingma &
    Dhariwal 2018 (Glow).
    """

    def __init__(self, flow, prior, image_shape=(28, 28, 1), logit_alpha=None,
                 data_kind="grey256", seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(flow, Bijector):
            raise TypeError(f"`flow` must be a keras_crvae Bijector, got {type(flow).__name__}.")
        if data_kind not in DATA_KINDS:
            raise ValueError(f"`data_kind` must be one of {DATA_KINDS}, got {data_kind!r}.")
        # === Layers ===
        self.flow = flow
        self.prior = prior
        self.logit = None if logit_alpha is None else LogitTransform(logit_alpha, name="logit")
        self.noise_generator = keras.random.SeedGenerator(seed, name="dequantization_noise")

        # === Metrics ===
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")

        # === Config ===
        self.image_shape = tuple(int(d) for d in image_shape)
        self.logit_alpha = None if logit_alpha is None else float(logit_alpha)
        self.data_kind = data_kind
        self.seed = seed
        self.num_dimensions = int(math.prod(self.image_shape))
        self.flow.build((None,) + self.image_shape)
        self.latent_shape = tuple(self.flow.compute_output_shape((None,) + self.image_shape))[1:]
        self.built = True

    # --- the density ----------------------------------------------------------------------

    def continuous_log_density(self, unit_images, training=None):
        """log p_Y(y) of images y in [0, 1)^D (no dequantization, no -D log 256) -> `(batch,)`."""
        y, log_det = unit_images, 0.0
        if self.logit is not None:
            y, log_det = self.logit.forward_and_log_det(y)
        z, flow_log_det = self.flow.forward_and_log_det(y, training=training)
        return self.prior.log_prob(z) + flow_log_det + log_det

    def dequantized_log_density(self, images, noise, training=None):
        """log p_V(x + u) = log p_Y((x + u) / 256) - D log 256 for grey levels `images` and given
        `noise` u in [0, 1)^D, both `(batch, *image_shape)` -> `(batch,)`."""
        unit_images = (ops.cast(images, "float32") + noise) / GREY_LEVELS
        return (self.continuous_log_density(unit_images, training=training)
                - self.num_dimensions * math.log(GREY_LEVELS))

    def call(self, images, training=None):
        """The log-likelihood estimate of grey-level `images` (module docstring), one fresh draw
        of the dequantization noise per call -> `(batch,)`."""
        noise = keras.random.uniform(ops.shape(images), seed=self.noise_generator)
        return self.dequantized_log_density(images, noise, training=training)

    def log_likelihood(self, images):
        """log p_V(x + u), one u ~ U[0, 1)^D per image: in expectation a lower bound on log P(x)
        of the discrete image, in nats.

        Args:
            images: `(batch, *image_shape)` grey levels 0..255 (float32 or uint8).

        Returns:
            `(batch,)` float32.
        """
        images = validate_images(images, self.image_shape, value_range=(0.0, 255.0))
        return self(ops.cast(ops.convert_to_tensor(images), "float32"), training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean negative log-likelihood in nats per image; updates `nll` and `bits_per_dim`.
        `sample_weight` is ignored (every image counts once)."""
        nll = -ops.mean(y_pred)
        self.nll_tracker.update_state(nll)
        self.bits_per_dim_tracker.update_state(nll / (self.num_dimensions * math.log(2.0)))
        return nll

    # --- generation -----------------------------------------------------------------------

    def sample(self, num_samples, temperature=1.0, seed=None):
        """Draws `num_samples` images: z from the prior at `temperature`, y = f^-1(z), undo the
        logit. Returns `(num_samples, *image_shape)` in [0, 1] (display units: grey level / 256
        plus the dequantization offset)."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        if not float(temperature) >= 0.0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature!r}.")
        z = self.prior.sample((int(num_samples),) + self.latent_shape, temperature, seed=seed)
        y = self.flow.inverse(z, training=False)
        if self.logit is not None:
            y = self.logit.inverse(y)
        return ops.clip(y, 0.0, 1.0)

    # --- serialization --------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "flow": keras.saving.serialize_keras_object(self.flow),
            "prior": keras.saving.serialize_keras_object(self.prior),
            "image_shape": list(self.image_shape),
            "logit_alpha": self.logit_alpha,
            "data_kind": self.data_kind,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "flow", "prior"))
