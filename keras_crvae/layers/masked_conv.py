"""Masked convolutions: the causal convolutions of PixelCNN and Gated PixelCNN.

A PixelCNN models `p(x) = prod_i p(x_i | x_<i)` with pixels in raster order (row by row, left to
right) and, inside a pixel, channels in the order R, G, B (van den Oord et al. 2016a, section 3.4).
A convolution becomes causal when its kernel is multiplied by a fixed 0/1 mask. For a kernel of
`kh x kw` taps with centre `(kh // 2, kw // 2)`:

    rows above the centre             all taps kept
    the centre row, left of centre    kept
    the centre row, right of centre   removed
    every row below the centre        removed
    the centre tap                    type "A": input channel group g_in feeds output group g_out
                                      only if g_in <  g_out (the first layer: a pixel never sees
                                      itself)
                                      type "B": if g_in <= g_out (later layers: a feature of pixel
                                      i may use the features already computed at pixel i)

Channel groups: with `color_channels=G` the input and output channels are split into G contiguous
groups of equal size (channel `k` of `n` is in group `k * G // n`), group 0 = R, 1 = G, 2 = B. With
`G=1` (grey or binary images, code maps) there is one group, so type A removes the centre and
type B keeps it.

The third type, "vertical", keeps every row up to and including the centre row (all columns): the
vertical stack of the Gated PixelCNN (van den Oord et al. 2016b, section 2.2), whose output is
shifted down one row (`shift_down`) before the horizontal stack reads it, so that no pixel of the
current row or below leaks into the prediction.

The mask is a constant multiplied with the kernel inside `call`, so gradients of the removed taps
are zero, the stored kernel stays whatever the optimizer makes of it, and every backend, `.keras`
file and SavedModel gets the same function (the kernel is never overwritten with `assign`).
"""

import keras
import numpy as np
from keras import ops

MASK_TYPES = ("A", "B", "vertical")


def channel_groups(channels, color_channels):
    """The colour group (0 .. color_channels - 1) of each of `channels` channels, contiguous."""
    return (np.arange(channels) * color_channels) // channels


def causal_conv_mask(kernel_size, in_channels, out_channels, mask_type, color_channels=1):
    """The 0/1 mask of a causal convolution kernel (module docstring).

    Args:
        kernel_size: `(kh, kw)`, both odd.
        in_channels, out_channels: ints, multiples of `color_channels`.
        mask_type: "A", "B" or "vertical".
        color_channels: int, default 1; the number of channel groups (3 for RGB).

    Returns:
        float32 NumPy array `(kh, kw, in_channels, out_channels)`, the layout of Keras kernels.
    """
    height, width = kernel_size
    centre_row, centre_column = height // 2, width // 2
    mask = np.zeros((height, width, in_channels, out_channels), "float32")
    if mask_type == "vertical":
        mask[:centre_row + 1] = 1.0
        return mask
    mask[:centre_row] = 1.0
    mask[centre_row, :centre_column] = 1.0
    in_group = channel_groups(in_channels, color_channels)[:, None]
    out_group = channel_groups(out_channels, color_channels)[None, :]
    centre = in_group < out_group if mask_type == "A" else in_group <= out_group
    mask[centre_row, centre_column] = centre.astype("float32")
    return mask


def shift_down(features):
    """`(B, H, W, C)` -> the same shape, moved down one row (zeros in row 0): row r holds row r-1.

    The Gated PixelCNN's link from the vertical to the horizontal stack (2016b, section 2.2)."""
    # `ops.slice` (gradient: a pad), not `[:, :-1]`: a strided slice's gradient has no fast
    # TensorFlow CPU kernel (see `gated_activation`).
    batch, height, width, channels = ops.shape(features)
    kept = ops.slice(features, (0, 0, 0, 0), (batch, height - 1, width, channels))
    return ops.pad(kept, ((0, 0), (1, 0), (0, 0), (0, 0)))


@keras.saving.register_keras_serializable(package="keras_crvae")
class MaskedConv2D(keras.layers.Conv2D):
    """A stride-1 "same" 2D convolution whose kernel is multiplied by a causal mask.

    Input `(B, H, W, C_in)` -> output `(B, H, W, filters)`. Arguments: those of
    `keras.layers.Conv2D` (strides 1, padding "same", dilation 1, channels_last, groups 1 only),
    plus:

    Args:
        mask_type: str, "A" (the first layer: the centre pixel's own channels of the same or a
            later colour are hidden), "B" (later layers) or "vertical" (Gated PixelCNN vertical
            stack: rows up to the centre row).
        color_channels: int, default 1. Number of colour groups of the channels (3 for RGB); the
            input channels and `filters` must be multiples of it.

    >>> layer = MaskedConv2D(8, 7, mask_type="A")
    >>> tuple(layer(keras.ops.zeros((1, 5, 5, 1))).shape)
    (1, 5, 5, 8)

    Reference: van den Oord et al., "Pixel Recurrent Neural Networks", ICML 2016, section 3.4
    (masks A and B); "Conditional Image Generation with PixelCNN Decoders", NeurIPS 2016, section
    2.2 (vertical stack).
    """

    def __init__(self, filters, kernel_size, mask_type="B", color_channels=1, **kwargs):
        for key, allowed in (("strides", (1, (1, 1))), ("padding", ("same",)),
                             ("dilation_rate", (1, (1, 1))), ("groups", (1,)),
                             ("data_format", (None, "channels_last"))):
            value = kwargs.get(key, allowed[0])
            if (tuple(value) if isinstance(value, list) else value) not in allowed:
                raise ValueError(f"MaskedConv2D supports `{key}` in {allowed} only; got {value!r}.")
        kwargs["padding"] = "same"
        super().__init__(filters, kernel_size, **kwargs)
        if mask_type not in MASK_TYPES:
            raise ValueError(f"`mask_type` must be one of {MASK_TYPES}; got {mask_type!r}.")
        if any(size % 2 == 0 for size in self.kernel_size):
            raise ValueError(f"`kernel_size` must be odd in both dimensions; got "
                             f"{self.kernel_size}.")
        if isinstance(color_channels, bool) or int(color_channels) < 1:
            raise ValueError(f"`color_channels` must be an int >= 1; got {color_channels!r}.")
        if filters % int(color_channels):
            raise ValueError(f"`filters` ({filters}) must be a multiple of `color_channels` "
                             f"({color_channels}).")
        self.mask_type = mask_type
        self.color_channels = int(color_channels)
        self.kernel_mask = None

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if in_channels % self.color_channels:
            raise ValueError(f"The input's {in_channels} channels must be a multiple of "
                             f"`color_channels` ({self.color_channels}).")
        super().build(input_shape)
        # A NumPy constant, not a weight: it is derived from the config and never trained or saved.
        self.kernel_mask = causal_conv_mask(self.kernel_size, in_channels, self.filters,
                                            self.mask_type, self.color_channels)

    def call(self, inputs):
        kernel = ops.cast(self.kernel, self.compute_dtype) * ops.convert_to_tensor(
            self.kernel_mask, dtype=self.compute_dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(mask_type=self.mask_type, color_channels=self.color_channels)
        return config
