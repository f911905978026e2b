"""StyleGAN's mapping network f: Z -> W (Karras et al. 2019, section 2 and appendix C).

    z (B, latent_dim) -> z / sqrt(mean_i z_i^2 + 1e-8)        (normalise the second moment: PixelNorm)
      -> num_layers x [EqualizedDense(w_dim, lr_multiplier 0.01) -> LeakyReLU(0.2)] -> w (B, w_dim)

The intermediate latent w is what the synthesis network's styles are affine transforms of; an 8-layer
MLP lets W "unwarp" the distribution of the factors of variation (the paper's section 4).
"""

import keras
from keras import ops

from keras_crvae.layers.equalized import EqualizedDense, check_counts

MAPPING_LR_MULTIPLIER = 0.01  # appendix C: two orders of magnitude below the synthesis network


def normalize_second_moment(z, epsilon=1e-8):
    """`z / sqrt(mean(z**2, axis=-1) + epsilon)`: each row to unit mean square (PixelNorm)."""
    return z * ops.rsqrt(ops.mean(ops.square(z), axis=-1, keepdims=True) + epsilon)


@keras.saving.register_keras_serializable(package="keras_crvae")
class MappingNetwork(keras.layers.Layer):
    """z -> w: normalised z through an MLP of equalized-learning-rate dense layers.

    Input shape: `(batch, latent_dim)`. Output shape: `(batch, w_dim)`.

    Args:
        w_dim: int, default 512 (the paper's).
        num_layers: int, default 8 (the paper's).
        lr_multiplier: float, default 0.01 (appendix C).
        normalize_latents: bool, default True. Normalise z's second moment first.

    >>> mapping = MappingNetwork(w_dim=16, num_layers=2)
    >>> mapping(keras.ops.ones((3, 8))).shape
    (3, 16)

    Reference: Karras et al. 2019, section 2, Figure 1(b), appendix C.
    """

    def __init__(self, w_dim=512, num_layers=8, lr_multiplier=MAPPING_LR_MULTIPLIER,
                 normalize_latents=True, **kwargs):
        super().__init__(**kwargs)
        self.w_dim, self.num_layers = check_counts(w_dim=w_dim, num_layers=num_layers)
        self.lr_multiplier = float(lr_multiplier)
        self.normalize_latents = bool(normalize_latents)
        self.dense_layers = [
            EqualizedDense(self.w_dim, lr_multiplier=self.lr_multiplier, activation="leaky_relu",
                           name=f"dense{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, z):
        w = normalize_second_moment(z) if self.normalize_latents else z
        for layer in self.dense_layers:
            w = layer(w)
        return w

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.w_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(w_dim=self.w_dim, num_layers=self.num_layers,
                      lr_multiplier=self.lr_multiplier, normalize_latents=self.normalize_latents)
        return config
