"""The learned constant input of the style-based generator (Karras et al. 2019, section 2).

The synthesis network starts from a learned `(size, size, channels)` tensor instead of a projection
of z: every image-specific input arrives through the styles (and the noise). Table 1, config (D),
removing the traditional input layer, improves FID.
"""

import keras
from keras import ops

from keras_crvae.layers.equalized import check_counts


@keras.saving.register_keras_serializable(package="keras_crvae")
class ConstantInput(keras.layers.Layer):
    """The learned constant, repeated for every example of the batch.

    Input shape: `(batch, ...)`, any tensor whose first axis is the batch (the styles); its values
    are not used. Output shape: `(batch, size, size, channels)`.

    Args:
        channels: int.
        size: int, default 4 (the paper's 4x4x512).

    Reference: Karras et al. 2019, section 2, Figure 1(b) ("Const 4x4x512").
    """

    def __init__(self, channels, size=4, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.size = check_counts(channels=channels, size=size)

    def build(self, input_shape):
        self.constant = self.add_weight(name="constant",
                                        shape=(self.size, self.size, self.channels),
                                        initializer=keras.initializers.RandomNormal(stddev=1.0))

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        constant = ops.cast(self.constant, self.compute_dtype)[None]
        return ops.tile(constant, (batch, 1, 1, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, size=self.size)
        return config
