"""Small activation blocks used by the reference networks."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_crvae")
class ConcatenatedReLU(keras.layers.Layer):
    """Concatenated ReLU: `relu(concat([x, -x], axis))`, doubling the channels.

    This is the reference's `ConcatAct()` (an `nn.ConcatTable` of `Identity` and `MulConstant(-1)`)
    followed by `JoinTable(2)` and `ReLU`, from `models/allconv_*_mnist.lua` of WendyShang/crVAE
    (Shang et al. 2018). It keeps both the positive and the negative phase of every filter.

    Input shape: `(batch, ..., channels)`. Output shape: `(batch, ..., 2 * channels)`.

    Args:
        axis: int, default -1. The axis to concatenate on (channels-last).

    >>> layer = ConcatenatedReLU()
    >>> layer(keras.ops.convert_to_tensor([[1.0, -2.0]])).shape
    (1, 4)

    Reference: Shang, Sohn, Tian, "Channel-Recurrent Autoencoding for Image Modeling", WACV 2018.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        return ops.relu(ops.concatenate([inputs, -inputs], axis=self.axis))

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if shape[self.axis] is not None:
            shape[self.axis] = 2 * shape[self.axis]
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis})
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class ElementwiseBias(keras.layers.Layer):
    """Adds a learned bias tensor of the full per-example shape (no broadcasting over positions).

    The reference's `nn.Add(size)` with `reset(0.01)`: one trainable value per element of the
    `(w, w, Z)` latent map, initialised uniformly in `[-init_range, init_range]`
    (`models/allconv_lstm_mnist.lua`, the `mu0` of the mean path and the generation-side bias).

    Input shape: `(batch, *shape)`. Output shape: same.

    Args:
        init_range: float, default 0.01. Half-width of the uniform initialiser.
    """

    def __init__(self, init_range=0.01, **kwargs):
        super().__init__(**kwargs)
        if init_range < 0:
            raise ValueError(f"`init_range` must be >= 0, got {init_range}.")
        self.init_range = float(init_range)

    def build(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                "ElementwiseBias needs a fully known per-example shape; got input_shape="
                f"{tuple(input_shape)}."
            )
        self.bias = self.add_weight(
            name="bias",
            shape=tuple(input_shape[1:]),
            initializer=keras.initializers.RandomUniform(-self.init_range, self.init_range),
        )

    def call(self, inputs):
        return inputs + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"init_range": self.init_range})
        return config
