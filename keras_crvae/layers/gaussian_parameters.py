"""Splits one dense head's output into the mean and log-variance of a diagonal Gaussian.

The Two-Stage VAE reference (`network/two_stage_vae_model.py` of GitHub daib13/TwoStageVAE) uses two
parameterisations of the posterior scale `sd`:

    "softplus": sd = 1e-6 + softplus(raw)      (InfoGAN encoder: one linear layer of 2*latent units)
    "log_std":  sd = exp(raw)                  (ResNet encoder and the second stage: `logsd` heads)

Both return `log_var = 2 * log(sd)`, the convention of the rest of the library.
"""

import keras
from keras import ops

SCALE_PARAMETERISATIONS = ("softplus", "log_std", "log_var")


@keras.saving.register_keras_serializable(package="keras_crvae")
class GaussianParameters(keras.layers.Layer):
    """`(batch, 2*d)` -> `[mean (batch, d), log_var (batch, d)]` with the reference's scale transform.

    The first `d` features are the mean, the last `d` the raw scale, turned into a log-variance by
    `scale`: "softplus" (`log_var = 2 log(min_std + softplus(raw))`), "log_std" (`log_var = 2 raw`)
    or "log_var" (`log_var = raw`).

    Args:
        scale: str, default "softplus". One of "softplus", "log_std", "log_var".
        min_std: float, default 1e-6. The floor added to the softplus scale (reference value).

    >>> mean, log_var = GaussianParameters("log_std")(keras.ops.ones((2, 4)))
    >>> tuple(mean.shape), float(log_var[0, 0])
    ((2, 2), 2.0)

    Reference: Dai & Wipf 2019; `Infogan.build_encoder1` / `build_encoder2` of daib13/TwoStageVAE.
    """

    def __init__(self, scale="softplus", min_std=1e-6, **kwargs):
        super().__init__(**kwargs)
        if scale not in SCALE_PARAMETERISATIONS:
            raise ValueError(f"`scale` must be one of {SCALE_PARAMETERISATIONS}, got {scale!r}.")
        if float(min_std) < 0:
            raise ValueError(f"`min_std` must be >= 0, got {min_std}.")
        self.scale = scale
        self.min_std = float(min_std)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] % 2:
            raise ValueError(
                f"`GaussianParameters` needs an even number of features (mean and scale halves); "
                f"got input shape {tuple(input_shape)}."
            )
        self.built = True

    def call(self, inputs):
        mean, raw = ops.split(inputs, 2, axis=-1)
        if self.scale == "softplus":
            log_var = 2.0 * ops.log(self.min_std + ops.softplus(raw))
        elif self.scale == "log_std":
            log_var = 2.0 * raw
        else:
            log_var = raw
        return [mean, log_var]

    def compute_output_shape(self, input_shape):
        half = None if input_shape[-1] is None else input_shape[-1] // 2
        shape = tuple(input_shape[:-1]) + (half,)
        return [shape, shape]

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "min_std": self.min_std})
        return config
