"""Adaptive instance normalization, StyleGAN's (first version) way to apply a style (Karras et al.
2019, section 2, equation 1; Huang & Belongie 2017):

    AdaIN(x_i, y) = y_{s,i} (x_i - mu(x_i)) / sigma(x_i) + y_{b,i}

each feature map `x_i` normalised over its spatial positions, then scaled and biased by the style
`y = (y_s, y_b)`, an affine transform of w. As in the paper's implementation the scale is
parameterised as `1 + y_s` so a fresh layer starts near the identity. StyleGAN2 replaced it by weight
demodulation (`ModulatedConv2D`), which removes the "droplet" artifacts the normalisation causes
(Karras et al. 2020, section 2.1).
"""

import keras
from keras import ops

from keras_crvae.layers.equalized import EqualizedDense


@keras.saving.register_keras_serializable(package="keras_crvae")
class AdaptiveInstanceNormalization(keras.layers.Layer):
    """Instance-normalises x and applies the style of w.

    Inputs: `[x (B, H, W, C), w (B, w_dim)]`. Output: `(B, H, W, C)`.

    Args:
        epsilon: float, default 1e-5, added to the variance.

    Weights: `affine` (kernel `(w_dim, 2C)`, bias `(2C,)`): `[y_s, y_b]`.

    Reference: Karras et al. 2019, equation 1; Huang & Belongie 2017.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if not float(epsilon) > 0:
            raise ValueError(f"`epsilon` must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        self.channels = int(x_shape[-1])
        self.affine = EqualizedDense(2 * self.channels, gain=1.0, name="affine")
        self.affine.build(tuple(w_shape))

    def call(self, inputs):
        x, w = inputs
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        normalized = (x - mean) * ops.rsqrt(variance + self.epsilon)
        style = ops.cast(self.affine(w), x.dtype)
        scale, bias = style[:, : self.channels], style[:, self.channels:]
        return normalized * (1.0 + scale[:, None, None, :]) + bias[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
