"""RealNVP's multi-scale architecture: after each scale but the last, half of the channels are
factored out (sent straight to the prior) and only the other half goes on to the next scale
(Dinh et al. 2017, section 3.6; Glow's "split", Kingma & Dhariwal 2018, Figure 2).

    h_0 = x;   (z_i, h_i) = split(f_i(h_{i-1}))  for i < L;   z_L = f_L(h_{L-1})
    z = concat(flatten(z_1), ..., flatten(z_L))          log|det J| = sum_i log|det J_{f_i}|

Factoring out is a coordinate selection, so it adds nothing to the log-determinant; the output is
the vector z of the input's size, on which a factorized prior is placed.
"""

import copy

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for


def _size(shape):
    size = 1
    for dimension in shape:
        size *= int(dimension)
    return size


@keras.saving.register_keras_serializable(package="keras_crvae")
class MultiScaleFlow(Bijector):
    """Scales of bijectors with half the channels factored out after each but the last.

    Input shape: `(batch, H, W, C)` images; output shape: `(batch, H*W*C)`, the factored-out
    parts of scales 1..L-1 followed by the last scale's output, each flattened row-major.

    Args:
        scales: list of `Bijector`s (usually `BijectorChain`s), one per scale; scale i's output
            must have an even number of channels for i < L.
        **kwargs: `keras.layers.Layer` arguments.

    Reference: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    section 3.6.
    """

    def __init__(self, scales, **kwargs):
        super().__init__(**kwargs)
        self.scales = list(scales)
        if not self.scales or not all(isinstance(s, Bijector) for s in self.scales):
            raise TypeError("scales: a non-empty list of keras_crvae Bijectors expected; got "
                            f"{[type(s).__name__ for s in self.scales]}")

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.factored_shapes = []  # per-example shapes of the factored-out parts
        for index, scale in enumerate(self.scales):
            if not scale.built:
                scale.build(shape)
            shape = tuple(scale.compute_output_shape(shape))
            if index < len(self.scales) - 1:
                if shape[-1] % 2:
                    raise ValueError(f"Scale {index} of MultiScaleFlow outputs {shape[-1]} "
                                     "channels; half of them are factored out, so an even "
                                     "number is needed.")
                shape = shape[:-1] + (shape[-1] // 2,)
                self.factored_shapes.append(shape[1:])
        self.final_shape = shape[1:]
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _size(input_shape[1:]))

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        total = ops.zeros((ops.shape(x)[0],), dtype="float32")
        pieces = []
        for index, scale in enumerate(self.scales):
            x, log_det = scale.forward_and_log_det(x, context=context, training=training)
            total = total + log_det
            if index < len(self.scales) - 1:
                half = x.shape[-1] // 2
                pieces.append(ops.reshape(x[..., :half], (-1, _size(x.shape[1:]) // 2)))
                x = x[..., half:]
        pieces.append(ops.reshape(x, (-1, _size(x.shape[1:]))))
        return ops.concatenate(pieces, axis=-1), total

    def inverse_and_log_det(self, y, context=None, training=None):
        # Built by a forward call or by `build(image shape)`: y's shape does not tell the scales'.
        sizes = [_size(shape) for shape in self.factored_shapes]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        h = ops.reshape(y[:, offsets[-1]:], (-1,) + tuple(self.final_shape))
        total = ops.zeros((ops.shape(y)[0],), dtype="float32")
        for index in reversed(range(len(self.scales))):
            if index < len(self.scales) - 1:
                factored = ops.reshape(y[:, offsets[index]:offsets[index + 1]],
                                       (-1,) + tuple(self.factored_shapes[index]))
                h = ops.concatenate([factored, h], axis=-1)
            h, log_det = self.scales[index].inverse_and_log_det(h, context=context,
                                                                training=training)
            total = total + log_det
        return h, total

    def get_config(self):
        config = super().get_config()
        config["scales"] = [keras.saving.serialize_keras_object(s) for s in self.scales]
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested configs in place
        config["scales"] = [keras.saving.deserialize_keras_object(s) for s in config["scales"]]
        return cls(**config)
