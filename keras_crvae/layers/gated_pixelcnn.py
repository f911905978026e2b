"""One layer of the Gated PixelCNN: a vertical and a horizontal stack with gated units.

van den Oord et al. (2016b, "Conditional Image Generation with PixelCNN Decoders", section 2):

    v_pre = W_v * v + V_v c                           (masked "vertical": rows up to the current)
    h_pre = W_h * h + W_vh (shift_down(v_pre)) + V_h c   (masked 1 x k row conv, "A" or "B")
    v_out = tanh(v_pre[:F]) * sigmoid(v_pre[F:])
    y     = tanh(h_pre[:F]) * sigmoid(h_pre[F:])
    h_out = h + W_o y                                 (residual; the first layer has none)

The vertical stack sees every pixel in the rows above (and, before the shift, the current row), the
horizontal stack the pixels to the left in the current row; shifting the vertical features down one
row before they enter the horizontal stack hides the current row from them. Together they cover
every earlier pixel in the receptive field, so there is no blind spot (section 2.2; tested exactly
in tests/networks/test_pixelcnn.py). `c` is an optional conditioning input: a vector `(B, D)` (a
one-hot class, a latent code; "global" conditioning) or a map `(B, H, W, D)` ("location dependent",
section 2.3), projected by a dense layer or a 1x1 convolution.

With `color_channels=3` the horizontal stack's features are split in R, G, B groups (masked
convolutions' channel groups), and each gate multiplies the tanh and sigmoid halves of the same
group, so that a feature of the G group never sees the B value of its own pixel.
"""

import keras
from keras import ops

from keras_crvae.layers.masked_conv import MaskedConv2D, shift_down


def gated_activation(features, color_channels=1):
    """`tanh(first half) * sigmoid(second half)` per colour group: `(B, H, W, 2F)` ->
    `(B, H, W, F)`.

    The channels form `color_channels` contiguous groups; each group's first half goes through
    tanh and its second half through the sigmoid, so a group's output depends on that group only.
    """
    batch, height, width, channels = (ops.shape(features)[0], ops.shape(features)[1],
                                      ops.shape(features)[2], features.shape[-1])
    group_width = channels // (2 * color_channels)
    grouped = ops.reshape(features, (batch, height, width, color_channels, 2 * group_width))
    # `split`, not `grouped[..., :G]`: on TensorFlow a strided slice's gradient (`StridedSliceGrad`)
    # has no fast CPU kernel and took 54% of a mnist_gated_pixelcnn training step; a split's
    # gradient is one concatenation (tools/benchmarks/profile_step.py, docs/performance.md).
    tanh_half, sigmoid_half = ops.split(grouped, 2, axis=-1)
    gated = ops.tanh(tanh_half) * ops.sigmoid(sigmoid_half)
    return ops.reshape(gated, (batch, height, width, color_channels * group_width))


@keras.saving.register_keras_serializable(package="keras_crvae")
class GatedPixelCNNBlock(keras.layers.Layer):
    """A Gated PixelCNN layer: `[vertical, horizontal]` (or `[vertical, horizontal, condition]`) ->
    `[vertical, horizontal]`.

    Inputs: `vertical` and `horizontal` `(B, H, W, C)` (the image for the first layer, `filters`
    channels after it), optional `condition` `(B, D)` or `(B, H, W, D)`. Outputs: two
    `(B, H, W, filters)` tensors.

    Args:
        filters: int, F, the features of each stack (a multiple of `color_channels`).
        kernel_size: int, default 3. Odd; the vertical stack's kernel is `k x k` (masked to the
            rows up to the centre), the horizontal stack's `1 x k` (masked to the left half).
        first: bool, default False. The first layer: mask "A" in the horizontal stack and no
            residual connection.
        color_channels: int, default 1. Colour groups of the horizontal features (3 for RGB).

    >>> block = GatedPixelCNNBlock(8, first=True)
    >>> image = keras.ops.zeros((2, 5, 5, 1))
    >>> [tuple(t.shape) for t in block([image, image])]
    [(2, 5, 5, 8), (2, 5, 5, 8)]

    Reference: van den Oord et al., "Conditional Image Generation with PixelCNN Decoders",
    NeurIPS 2016, section 2 (figure 2).
    """

    def __init__(self, filters, kernel_size=3, first=False, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or int(filters) < 1 or int(filters) % int(color_channels):
            raise ValueError(f"`filters` must be a positive multiple of `color_channels` "
                             f"({color_channels}); got {filters!r}.")
        if isinstance(kernel_size, bool) or int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"`kernel_size` must be a positive odd int; got {kernel_size!r}.")
        # === Config ===
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.first = bool(first)
        self.color_channels = int(color_channels)

        # === Layers ===
        two_f = 2 * self.filters
        self.vertical_conv = MaskedConv2D(two_f, self.kernel_size, mask_type="vertical",
                                          name="vertical_conv")
        self.vertical_to_horizontal = keras.layers.Conv2D(two_f, 1, name="vertical_to_horizontal")
        self.horizontal_conv = MaskedConv2D(
            two_f, (1, self.kernel_size), mask_type="A" if self.first else "B",
            color_channels=self.color_channels, name="horizontal_conv")
        self.horizontal_output = MaskedConv2D(self.filters, 1, mask_type="B",
                                              color_channels=self.color_channels,
                                              name="horizontal_output")
        self.vertical_condition = None
        self.horizontal_condition = None

    def build(self, input_shape):
        vertical_shape, horizontal_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if not self.first and horizontal_shape[-1] != self.filters:
            raise ValueError(f"A non-first GatedPixelCNNBlock needs {self.filters} horizontal "
                             f"input channels (the residual); got {horizontal_shape[-1]}.")
        self.vertical_conv.build(vertical_shape)
        self.vertical_to_horizontal.build(vertical_shape[:-1] + (2 * self.filters,))
        self.horizontal_conv.build(horizontal_shape)
        self.horizontal_output.build(horizontal_shape[:-1] + (self.filters,))
        if len(input_shape) == 3:
            condition_shape = tuple(input_shape[2])
            if len(condition_shape) not in (2, 4):
                raise ValueError("The condition must be a vector (B, D) or a map (B, H, W, D); "
                                 f"got shape {condition_shape}.")
            make = ((lambda name: keras.layers.Dense(2 * self.filters, use_bias=False, name=name))
                    if len(condition_shape) == 2 else
                    (lambda name: keras.layers.Conv2D(2 * self.filters, 1, use_bias=False,
                                                      name=name)))
            self.vertical_condition = make("vertical_condition")
            self.horizontal_condition = make("horizontal_condition")
            self.vertical_condition.build(condition_shape)
            self.horizontal_condition.build(condition_shape)
        self.built = True

    def _condition(self, projection, condition):
        projected = projection(condition)
        if len(projected.shape) == 2:  # a global condition: the same shift at every pixel
            projected = projected[:, None, None, :]
        return projected

    def call(self, inputs):
        vertical, horizontal = inputs[0], inputs[1]
        vertical_pre = self.vertical_conv(vertical)
        if len(inputs) == 3:
            # Before the link to the horizontal stack, so the last layer's vertical condition
            # (whose own gated output nothing reads) still shapes the output.
            vertical_pre = vertical_pre + self._condition(self.vertical_condition, inputs[2])
        horizontal_pre = (self.horizontal_conv(horizontal)
                          + self.vertical_to_horizontal(shift_down(vertical_pre)))
        if len(inputs) == 3:
            horizontal_pre = horizontal_pre + self._condition(self.horizontal_condition,
                                                              inputs[2])
        vertical_out = gated_activation(vertical_pre)
        horizontal_out = self.horizontal_output(gated_activation(horizontal_pre,
                                                                 self.color_channels))
        if not self.first:
            horizontal_out = horizontal_out + horizontal
        return [vertical_out, horizontal_out]

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])[:-1] + (self.filters,)
        return [shape, shape]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, first=self.first,
                      color_channels=self.color_channels)
        return config
