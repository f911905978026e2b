"""Per-layer noise inputs of the style-based generator (Karras et al. 2019, section 3.2).

One single-channel image of uncorrelated Gaussian noise per example and layer, broadcast to every
feature map with a learned per-channel scaling factor, is added to a convolution's output. It lets
the generator place stochastic detail (hair, freckles) without spending network capacity on
pseudo-random numbers. The strengths start at zero, so a fresh generator is deterministic.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_crvae")
class NoiseInjection(keras.layers.Layer):
    """`x + strength * noise`, noise `(B, H, W, 1)` ~ N(0, I) drawn at every call.

    Input shape: `(batch, height, width, channels)`. Output shape: same.

    Args:
        seed: int or None, the noise's seed.

    Weights: `strength` `(channels,)`, initialised to 0 (StyleGAN's per-channel scaling factors).

    Reference: Karras et al. 2019, section 3.2 and Figure 1(b) ("B").
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.strength = self.add_weight(name="strength", shape=(int(input_shape[-1]),),
                                        initializer="zeros")

    def call(self, inputs):
        shape = ops.shape(inputs)
        noise = keras.random.normal((shape[0], shape[1], shape[2], 1), seed=self.seed_generator,
                                    dtype=self.compute_dtype)
        return inputs + noise * ops.cast(self.strength, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
