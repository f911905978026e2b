"""Weight modulation and demodulation, StyleGAN2's styled convolution (Karras et al. 2020,
"Analyzing and Improving the Image Quality of StyleGAN", section 2.2, equations 1-3).

A style `s` (one scale per input channel, an affine transform of w) modulates the weights of the
convolution per example, and demodulation rescales every output channel to unit expected variance:

    w'_{ijk}  = s_i w_{ijk}                                       (1) modulation
    sigma_j   = sqrt(sum_{i,k} w'_{ijk}^2)                        (2) the output's std for unit inputs
    w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} w'_{ijk}^2 + epsilon)   (3) demodulation

(i: input channel, j: output channel, k: kernel position). Convolving with per-example weights is a
grouped convolution; here it is computed in the equivalent form the paper's footnote and its
"non-fused" implementation use, which needs only the ordinary convolution of `keras.ops` (every
backend, CPU and GPU, any precision; no custom kernels):

    conv(x, s_i w_{ijk}) = conv(s_i x_i, w_{ijk})      and      demodulation = a per-(example, output
                                                                channel) scale of the result.

`ToRGB` is the same modulated convolution with a 1x1 kernel and no demodulation (the paper's
Figure 7: tRGB), with StyleGAN2's skip connections: each resolution's RGB output is added to the
upsampled RGB image of the resolution before. Upsampling is bilinear (`upsample_2x`; the paper uses a
[1, 3, 3, 1] FIR filter after a transposed convolution, both low-pass filters of the same kind).
"""

import math

import keras
from keras import ops

from keras_crvae.layers.equalized import EqualizedDense, check_counts

DEMODULATION_EPSILON = 1e-8


def upsample_2x(images):
    """Bilinear 2x upsampling of `(B, H, W, C)` maps to `(B, 2H, 2W, C)` (half-pixel centres)."""
    height, width = images.shape[1], images.shape[2]
    return ops.image.resize(images, (2 * height, 2 * width), interpolation="bilinear")


def modulated_convolution(inputs, styles, kernel, demodulate=True,
                          epsilon=DEMODULATION_EPSILON):
    """Convolves each example with its own modulated (and demodulated) kernel; equations 1-3.

    Args:
        inputs: `(B, H, W, C_in)`.
        styles: `(B, C_in)`, the per-example input-channel scales `s`.
        kernel: `(k, k, C_in, C_out)`, the shared weights `w`.
        demodulate: bool, default True.
        epsilon: float, the demodulation's epsilon.

    Returns:
        `(B, H, W, C_out)` ("same" padding, stride 1).
    """
    styles = ops.cast(styles, inputs.dtype)
    kernel = ops.cast(kernel, inputs.dtype)
    outputs = ops.conv(inputs * styles[:, None, None, :], kernel, padding="same")
    if demodulate:
        # sum_{i,k} (s_i w_ijk)^2 = sum_i s_i^2 (sum_k w_ijk^2): a (B, C_in) x (C_in, C_out) product.
        kernel_energy = ops.sum(ops.square(kernel), axis=(0, 1))
        output_variance = ops.matmul(ops.square(styles), kernel_energy)
        outputs = outputs * ops.rsqrt(output_variance + epsilon)[:, None, None, :]
    return outputs


class _StyledLayer(keras.layers.Layer):
    """What the styled layers share: the affine transform of w into per-channel styles."""

    def _build_affine(self, w_shape, in_channels, bias_initializer_value=1.0):
        # StyleGAN2: styles start near 1 (bias 1) so a fresh layer is close to unmodulated.
        self.affine = EqualizedDense(in_channels, gain=1.0,
                                     bias_initializer_value=bias_initializer_value,
                                     name="affine")
        self.affine.build(tuple(w_shape))

    def styles(self, w):
        """The styles `(B, C_in)` of intermediate latents `w` `(B, w_dim)`."""
        return self.affine(w)


@keras.saving.register_keras_serializable(package="keras_crvae")
class ModulatedConv2D(_StyledLayer):
    """StyleGAN2's modulated (and demodulated) convolution, optionally upsampling first.

    Inputs: `[x (B, H, W, C_in), w (B, w_dim)]`. Output: `(B, H', W', filters)`, `H' = 2H` with
    `upsample`, else `H`.

    Args:
        filters: int, output channels.
        kernel_size: int, default 3.
        demodulate: bool, default True (StyleGAN2). False: modulation only.
        upsample: bool, default False. Bilinear 2x upsampling of x before the convolution.
        use_bias: bool, default True.

    Weights: `affine` (kernel `(w_dim, C_in)`, bias `(C_in,)`), `kernel` `(k, k, C_in, filters)`
    stored N(0, 1) and scaled by `1 / sqrt(k*k*C_in)` (equalized learning rate), `bias`.

    Reference: Karras et al. 2020, section 2.2 and Figure 2(c, d).
    """

    def __init__(self, filters, kernel_size=3, demodulate=True, upsample=False, use_bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = check_counts(filters=filters, kernel_size=kernel_size)
        self.demodulate = bool(demodulate)
        self.upsample = bool(upsample)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        in_channels = int(x_shape[-1])
        self._build_affine(w_shape, in_channels)
        self.runtime_scale = 1.0 / math.sqrt(self.kernel_size ** 2 * in_channels)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        x, w = inputs
        if self.upsample:
            x = upsample_2x(x)
        kernel = ops.cast(self.kernel, x.dtype) * self.runtime_scale
        outputs = modulated_convolution(x, self.styles(w), kernel, self.demodulate)
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        factor = 2 if self.upsample else 1
        spatial = [None if d is None else factor * d for d in x_shape[1:3]]
        return (x_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      demodulate=self.demodulate, upsample=self.upsample, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class ToRGB(_StyledLayer):
    """StyleGAN2's tRGB with skip connections: a modulated 1x1 convolution (no demodulation) to
    image channels, plus the upsampled image of the previous resolution when one is given.

    Inputs: `[x (B, H, W, C), w (B, w_dim)]` at the lowest resolution, or
    `[x, w, previous_image (B, H/2, W/2, image_channels)]`. Output: `(B, H, W, image_channels)`.

    Args:
        image_channels: int, default 3.

    Reference: Karras et al. 2020, section 4.1 and Figure 7(b) ("output skips").
    """

    def __init__(self, image_channels=3, **kwargs):
        super().__init__(**kwargs)
        (self.image_channels,) = check_counts(image_channels=image_channels)

    def build(self, input_shape):
        x_shape, w_shape = input_shape[0], input_shape[1]
        in_channels = int(x_shape[-1])
        self._build_affine(w_shape, in_channels)
        self.runtime_scale = 1.0 / math.sqrt(in_channels)
        self.kernel = self.add_weight(
            name="kernel", shape=(1, 1, in_channels, self.image_channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = self.add_weight(name="bias", shape=(self.image_channels,),
                                    initializer="zeros")

    def call(self, inputs):
        x, w = inputs[0], inputs[1]
        kernel = ops.cast(self.kernel, x.dtype) * self.runtime_scale
        image = modulated_convolution(x, self.styles(w), kernel, demodulate=False)
        image = image + ops.cast(self.bias, image.dtype)
        if len(inputs) > 2:
            image = image + ops.cast(upsample_2x(inputs[2]), image.dtype)
        return image

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:3]) + (self.image_channels,)

    def get_config(self):
        config = super().get_config()
        config["image_channels"] = self.image_channels
        return config
