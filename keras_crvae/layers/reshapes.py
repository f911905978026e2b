"""Volume-preserving reshapes of the flows: `Squeeze` (space to depth, RealNVP section 3.6) and
`FlattenEvent` (an image to a vector, NICE on 784-vectors). Both only move values, so
log|det J| = 0."""

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for


@keras.saving.register_keras_serializable(package="keras_crvae")
class Squeeze(Bijector):
    """Space to depth by 2x2: `(B, H, W, C) -> (B, H/2, W/2, 4C)`, log-det 0.

    Output pixel (h, w), channel `(2i + j) * C + c` holds input pixel (2h + i, 2w + j), channel c
    (i, j in {0, 1}).

    Reference: Dinh et al., "Density estimation using Real NVP", 2017, section 3.6 and Figure 3.
    """

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] % 2 or input_shape[2] % 2:
            raise ValueError(f"Squeeze needs images (batch, H, W, C) with H and W even; got "
                             f"{tuple(input_shape)}.")
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height // 2, width // 2, 4 * channels)

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        _, height, width, channels = x.shape
        blocks = ops.reshape(x, (-1, height // 2, 2, width // 2, 2, channels))
        blocks = ops.transpose(blocks, (0, 1, 3, 2, 4, 5))
        y = ops.reshape(blocks, (-1, height // 2, width // 2, 4 * channels))
        return y, ops.zeros((ops.shape(x)[0],), dtype=x.dtype)

    def inverse_and_log_det(self, y, context=None, training=None):
        _, half_height, half_width, channels = y.shape
        blocks = ops.reshape(y, (-1, half_height, half_width, 2, 2, channels // 4))
        blocks = ops.transpose(blocks, (0, 1, 3, 2, 4, 5))
        x = ops.reshape(blocks, (-1, 2 * half_height, 2 * half_width, channels // 4))
        return x, ops.zeros((ops.shape(y)[0],), dtype=y.dtype)


@keras.saving.register_keras_serializable(package="keras_crvae")
class FlattenEvent(Bijector):
    """`(B, *event_shape) -> (B, prod(event_shape))` in row-major order, log-det 0.

    Args:
        event_shape: tuple of ints, the input's shape without the batch axis (needed by the
            inverse).
    """

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.size = 1
        for dimension in self.event_shape:
            self.size *= dimension

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size)

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        return ops.reshape(x, (-1, self.size)), ops.zeros((ops.shape(x)[0],), dtype=x.dtype)

    def inverse_and_log_det(self, y, context=None, training=None):
        build_for(self, y)
        return (ops.reshape(y, (-1,) + self.event_shape),
                ops.zeros((ops.shape(y)[0],), dtype=y.dtype))

    def get_config(self):
        config = super().get_config()
        config["event_shape"] = list(self.event_shape)
        return config
