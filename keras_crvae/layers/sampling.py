"""Reparameterised Gaussian sampling and the per-element KL to the standard normal prior.

For a diagonal Gaussian posterior `q(z|x) = N(mean, exp(log_var))` and prior `p(z) = N(0, I)`:

    z  = mean + exp(log_var / 2) * eps,             eps ~ N(0, I)          (reparameterisation)
    KL = 0.5 * (exp(log_var) + mean**2 - 1 - log_var)    per element     (closed form)

The reference is `Sampler.lua` and `KLDCriterion.lua` of GitHub `WendyShang/crVAE`; the KL there is
summed over elements and averaged over the batch, which `keras_crvae.losses` does on top of these
per-element values.

On the TensorFlow backend the tensor math goes through `tensorflow_probability` (`tfd.Normal`,
`tfd.kl_divergence`), as docs/design.md section 2 asks; on other backends (JAX) it is `keras.ops`.
The noise `eps` always comes from `keras.random` with the layer's seed generator, so the two paths give the
same numbers for the same seed. This module is one of the few places allowed to import TensorFlow.
Under a TensorFlow distribution strategy the noise is `keras_crvae.distribute.replica_normal`: each
replica's rows of the draw a single device makes for the whole global batch.
"""

import keras
from keras import ops

from keras_crvae import distribute, losses

_TFP_DISTRIBUTIONS = None


def _tfp_distributions():
    """Imports `tfp.distributions` lazily (TFP is slow to import and TF-only)."""
    global _TFP_DISTRIBUTIONS
    if _TFP_DISTRIBUTIONS is None:
        import tensorflow_probability as tfp

        _TFP_DISTRIBUTIONS = tfp.distributions
    return _TFP_DISTRIBUTIONS


def tfp_available():
    """True when the backend is TensorFlow and `tensorflow_probability` imports."""
    if keras.backend.backend() != "tensorflow":
        return False
    try:
        _tfp_distributions()
    except Exception:  # ImportError, or TFP failing against the installed TF/Keras.
        return False
    return True


def gaussian_kl_to_standard_normal(mean, log_var, use_tfp=False):
    """Per-element `KL(N(mean, exp(log_var)) || N(0, 1))`, same shape as `mean`.

    Args:
        mean: tensor of any shape.
        log_var: tensor of the same shape.
        use_tfp: bool. Compute with `tfd.kl_divergence` (TensorFlow backend only).
    """
    if use_tfp:
        tfd = _tfp_distributions()
        posterior = tfd.Normal(loc=mean, scale=ops.exp(0.5 * log_var))
        prior = tfd.Normal(loc=ops.zeros_like(mean), scale=ops.ones_like(mean))
        return tfd.kl_divergence(posterior, prior)
    return losses.gaussian_kl_per_element(mean, log_var)


def reparameterized_sample(mean, log_var, noise, use_tfp=False):
    """`mean + exp(log_var / 2) * noise`, via `tfd.Normal`'s location/scale when `use_tfp`."""
    if use_tfp:
        posterior = _tfp_distributions().Normal(loc=mean, scale=ops.exp(0.5 * log_var))
        return posterior.loc + posterior.scale * noise
    return mean + ops.exp(0.5 * log_var) * noise


@keras.saving.register_keras_serializable(package="keras_crvae")
class GaussianSampler(keras.layers.Layer):
    """Draws `z ~ q(z|x) = N(mean, exp(log_var))` and returns it with the per-element KL to N(0, I).

    Inputs: `[mean, log_var]`, two tensors of the same shape `(batch, *latent_shape)`.
    Outputs: `[z, kl]`, both of that shape; `kl` is the closed-form per-element KL divergence.

    Args:
        seed: int or None, default None. Seed of the layer's `keras.random.SeedGenerator`.
        use_tfp: bool or "auto", default "auto". Use TensorFlow Probability for the tensor math; "auto"
            means yes on the TensorFlow backend when TFP imports. True on another backend is an error.

    >>> sampler = GaussianSampler(seed=0, use_tfp=False)
    >>> z, kl = sampler([keras.ops.zeros((2, 3)), keras.ops.zeros((2, 3))])
    >>> float(keras.ops.sum(kl))
    0.0

    Reference: Kingma & Welling 2014 (reparameterisation); `Sampler.lua`, `KLDCriterion.lua` of
    WendyShang/crVAE.
    """

    def __init__(self, seed=None, use_tfp="auto", **kwargs):
        super().__init__(**kwargs)
        if use_tfp not in ("auto", True, False):
            raise ValueError(f"`use_tfp` must be 'auto', True or False, got {use_tfp!r}.")
        if use_tfp is True and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "`use_tfp=True` needs the TensorFlow backend; the current backend is "
                f"{keras.backend.backend()!r}. Use use_tfp='auto' or False."
            )
        self.seed = seed
        self.use_tfp = use_tfp
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def uses_tfp(self):
        """Whether this layer computes with TFP on the current backend."""
        if self.use_tfp == "auto":
            return tfp_available()
        return bool(self.use_tfp)

    def call(self, inputs):
        mean, log_var = inputs
        # Under a TF distribution strategy each replica takes its rows of one global-batch draw.
        noise = distribute.replica_normal(ops.shape(mean), self.seed_generator, dtype=mean.dtype)
        use_tfp = self.uses_tfp
        z = reparameterized_sample(mean, log_var, noise, use_tfp=use_tfp)
        kl = gaussian_kl_to_standard_normal(mean, log_var, use_tfp=use_tfp)
        return [z, kl]

    def compute_output_shape(self, input_shape):
        return [input_shape[0], input_shape[0]]

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "use_tfp": self.use_tfp})
        return config
