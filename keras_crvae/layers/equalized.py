"""Equalized learning rate (Karras et al. 2018, "Progressive Growing of GANs", section 4.1).

A layer stores its weights as draws of N(0, 1 / lr_multiplier) and multiplies them at run time by
`c = gain / sqrt(fan_in)` (He's constant for `gain = sqrt(2)`) and by `lr_multiplier`:

    effective_kernel = kernel * gain / sqrt(fan_in) * lr_multiplier        std: gain / sqrt(fan_in)
    effective_bias   = bias * lr_multiplier

so the effective weights start with He's standard deviation, while Adam, whose step is invariant to
the scale of the gradient, moves every stored weight by about the same amount: the effective
learning rate of a weight is `lr * c * lr_multiplier`, the same dynamic range for every layer. The
mapping network of StyleGAN uses `lr_multiplier = 0.01` (Karras et al. 2019, "A Style-Based
Generator Architecture", appendix C: "we reduce the learning rate by two orders of magnitude for the
mapping network").
"""

import math

import keras
from keras import ops

HE_GAIN = math.sqrt(2.0)


def check_counts(**counts):
    """Returns the integer values of `counts` (name -> value); raises ValueError naming the first
    that is not an integer >= 1. Shared by the style-based generator's layers."""
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) != value or int(value) < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return [int(value) for value in counts.values()]


def _check_positive(name, value):
    if not float(value) > 0:
        raise ValueError(f"`{name}` must be > 0, got {value!r}.")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_crvae")
class EqualizedDense(keras.layers.Layer):
    """A dense layer with an equalized learning rate (see the module docstring).

    Input shape: `(batch, fan_in)`. Output shape: `(batch, units)`.

    Args:
        units: int, output features.
        gain: float, default sqrt(2) (He's constant for a (leaky) ReLU that follows); 1 for a
            linear layer.
        lr_multiplier: float, default 1. StyleGAN's mapping network: 0.01.
        bias_initializer_value: float, default 0. The effective bias at initialisation (StyleGAN2's
            style affine layers: 1, so styles start near 1).
        activation: None (default) or "leaky_relu" (slope 0.2, the StyleGAN mapping network's).

    >>> layer = EqualizedDense(4)
    >>> layer(keras.ops.ones((2, 3))).shape
    (2, 4)

    Reference: Karras et al. 2018, section 4.1.
    """

    def __init__(self, units, gain=HE_GAIN, lr_multiplier=1.0, bias_initializer_value=0.0,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        (self.units,) = check_counts(units=units)
        if activation not in (None, "leaky_relu"):
            raise ValueError(f"`activation` must be None or 'leaky_relu', got {activation!r}.")
        self.gain = _check_positive("gain", gain)
        self.lr_multiplier = _check_positive("lr_multiplier", lr_multiplier)
        self.bias_initializer_value = float(bias_initializer_value)
        self.activation = activation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.runtime_scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier))
        self.bias = self.add_weight(
            name="bias", shape=(self.units,),
            initializer=keras.initializers.Constant(
                self.bias_initializer_value / self.lr_multiplier))

    @property
    def effective_kernel(self):
        """The kernel the layer applies, `(fan_in, units)`."""
        return ops.cast(self.kernel, self.compute_dtype) * self.runtime_scale

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.effective_kernel)
        outputs = outputs + ops.cast(self.bias, self.compute_dtype) * self.lr_multiplier
        if self.activation == "leaky_relu":
            outputs = ops.leaky_relu(outputs, 0.2)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, gain=self.gain, lr_multiplier=self.lr_multiplier,
                      bias_initializer_value=self.bias_initializer_value,
                      activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class EqualizedConv2D(keras.layers.Layer):
    """A 2-D convolution (stride 1, "same" padding) with an equalized learning rate.

    Input shape: `(batch, height, width, in_channels)`. Output shape: `(batch, height, width,
    filters)`. The fan-in is `kernel_size**2 * in_channels`.

    Args:
        filters: int, output channels.
        kernel_size: int, default 3.
        gain: float, default sqrt(2).
        lr_multiplier: float, default 1.
        use_bias: bool, default True.

    Reference: Karras et al. 2018, section 4.1.
    """

    def __init__(self, filters, kernel_size=3, gain=HE_GAIN, lr_multiplier=1.0, use_bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = check_counts(filters=filters, kernel_size=kernel_size)
        self.gain = _check_positive("gain", gain)
        self.lr_multiplier = _check_positive("lr_multiplier", lr_multiplier)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        fan_in = self.kernel_size ** 2 * in_channels
        self.runtime_scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    @property
    def effective_kernel(self):
        """The kernel the layer applies, `(k, k, in_channels, filters)`."""
        return ops.cast(self.kernel, self.compute_dtype) * self.runtime_scale

    def call(self, inputs):
        outputs = ops.conv(inputs, self.effective_kernel, padding="same")
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype) * self.lr_multiplier
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, gain=self.gain,
                      lr_multiplier=self.lr_multiplier, use_bias=self.use_bias)
        return config
