"""Reversible residual networks: RevNet blocks whose backward pass recomputes activations
(Gomez, Ren, Urtasun & Grosse, "The Reversible Residual Network", NeurIPS 2017, section 3) and
i-RevNet's invertible down-sampling (Jacobsen, Smeulders & Oyallon, "i-RevNet", ICLR 2018,
section 3.1).

A block splits the channels into halves `(x1, x2)` and computes, with residual functions F and G
(here conv3x3 -> ReLU -> conv3x3, each to half the channels):

    y1 = x1 + F(x2)            inverse:   x2 = y2 - G(y1)
    y2 = x2 + G(y1)                       x1 = y1 - F(x2)

Because every block's input can be recomputed from its output, the backward pass of a stack needs
only the stack's output (section 3.2, Algorithm 1): walking the blocks from the last to the first,
it recomputes `G(y1)`, `x2`, `F(x2)`, `x1` and back-propagates through one block's F and G at a
time, so activation memory does not grow with depth (up to float32 round-off in the recomputed
inputs, the gradients are those of the ordinary, storing computation).

How the backward pass is swapped in: `keras.ops.custom_gradient` (TensorFlow's and JAX's
`custom_gradient`), applied to a pure function of the input and the weight values; its
gradient function back-propagates through each recomputed F and G with the backend's own
vector-Jacobian product (a gradient tape / `jax.vjp`: the one backend-specific piece, in
`keras_crvae.autodiff.vector_jacobian_product`). On other backends, or with
`recompute_gradients=False`, the stack runs as ordinary layers and the framework stores the
activations.

i-RevNet down-sampling (`space_to_depth`): each 2x2 patch becomes 4 channels, a permutation of
the values (nothing discarded, exactly invertible by `depth_to_space`).
"""

import keras
from keras import ops

from keras_crvae.autodiff import vector_jacobian_product

RECOMPUTING_BACKENDS = ("tensorflow", "jax")


def space_to_depth(x, block_size=2):
    """`(B, H, W, C)` -> `(B, H/b, W/b, b*b*C)`: each b x b patch stacked into channels (i-RevNet's
    invertible down-sampling; a permutation of the values)."""
    batch, height, width, channels = ops.shape(x)
    x = ops.reshape(x, (batch, height // block_size, block_size, width // block_size, block_size,
                        channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (batch, height // block_size, width // block_size,
                           block_size * block_size * channels))


def depth_to_space(x, block_size=2):
    """The inverse of `space_to_depth`: `(B, H, W, b*b*C)` -> `(B, H*b, W*b, C)`."""
    batch, height, width, channels = ops.shape(x)
    out_channels = channels // (block_size * block_size)
    x = ops.reshape(x, (batch, height, width, block_size, block_size, out_channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (batch, height * block_size, width * block_size, out_channels))


def _residual(h, kernel_in, bias_in, kernel_out, bias_out):
    """F or G: conv3x3 -> ReLU -> conv3x3 ("same" padding), from and to half the channels."""
    h = ops.relu(ops.conv(h, kernel_in, padding="same") + bias_in)
    return ops.conv(h, kernel_out, padding="same") + bias_out


# Weights per block: F's (kernel_in, bias_in, kernel_out, bias_out), then G's.
_WEIGHTS_PER_BLOCK = 8


def _block_forward(x1, x2, weights):
    y1 = x1 + _residual(x2, *weights[:4])
    return y1, x2 + _residual(y1, *weights[4:])


def _block_inverse(y1, y2, weights):
    x2 = y2 - _residual(y1, *weights[4:])
    return y1 - _residual(x2, *weights[:4]), x2


@keras.saving.register_keras_serializable(package="keras_crvae")
class ReversibleStack(keras.layers.Layer):
    """`num_blocks` RevNet blocks on a feature map whose backward pass recomputes activations.

    Input shape: `(batch, H, W, C)` with C even; output shape: the same. `inverse(y)` returns the
    input (to float32 precision).

    Args:
        num_blocks: int >= 1.
        hidden_channels: int, the width of F's and G's hidden conv layer.
        recompute_gradients: bool, default True. True: Gomez et al.'s backward pass (module
            docstring) on TensorFlow and JAX; False: the framework stores every activation
            (the same function and gradients, the memory of an ordinary network).
        **kwargs: `keras.layers.Layer` arguments.

    >>> stack = ReversibleStack(2, hidden_channels=4)
    >>> tuple(stack(keras.ops.ones((1, 4, 4, 2))).shape)
    (1, 4, 4, 2)

    Reference: Gomez et al. 2017, section 3 (eqs. 5-6) and Algorithm 1.
    """

    def __init__(self, num_blocks, hidden_channels, recompute_gradients=True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_blocks, bool) or int(num_blocks) < 1:
            raise ValueError(f"`num_blocks` must be >= 1, got {num_blocks!r}.")
        if isinstance(hidden_channels, bool) or int(hidden_channels) < 1:
            raise ValueError(f"`hidden_channels` must be >= 1, got {hidden_channels!r}.")
        self.num_blocks = int(num_blocks)
        self.hidden_channels = int(hidden_channels)
        self.recompute_gradients = bool(recompute_gradients)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % 2:
            raise ValueError(f"ReversibleStack splits the channels in halves; got {channels}.")
        half, hidden = channels // 2, self.hidden_channels
        self.block_weights = []
        for block in range(self.num_blocks):
            for function in ("f", "g"):
                self.block_weights += [
                    self.add_weight(shape=(3, 3, half, hidden), name=f"{function}{block}_kernel_in",
                                    initializer="he_normal"),
                    self.add_weight(shape=(hidden,), name=f"{function}{block}_bias_in",
                                    initializer="zeros"),
                    # Small output kernels: each block starts near the identity.
                    self.add_weight(shape=(3, 3, hidden, half), name=f"{function}{block}_kernel_out",
                                    initializer=keras.initializers.RandomNormal(stddev=0.01)),
                    self.add_weight(shape=(half,), name=f"{function}{block}_bias_out",
                                    initializer="zeros"),
                ]
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _weights_of(self, block, weights):
        return weights[block * _WEIGHTS_PER_BLOCK:(block + 1) * _WEIGHTS_PER_BLOCK]

    def _forward(self, x, weights):
        x1, x2 = ops.split(x, 2, axis=-1)
        for block in range(self.num_blocks):
            x1, x2 = _block_forward(x1, x2, self._weights_of(block, weights))
        return ops.concatenate([x1, x2], axis=-1)

    def inverse(self, y):
        """The input whose output is `y` `(batch, H, W, C)`."""
        weights = [ops.copy(w) for w in self.block_weights]
        y1, y2 = ops.split(y, 2, axis=-1)
        for block in reversed(range(self.num_blocks)):
            y1, y2 = _block_inverse(y1, y2, self._weights_of(block, weights))
        return ops.concatenate([y1, y2], axis=-1)

    def _recomputing_forward(self, x, *weights):
        """The forward pass whose gradient function recomputes (Gomez et al., Algorithm 1)."""
        # Stop-gradient copies: the framework records nothing inside the forward pass, so no
        # activation is kept for the backward pass but the output.
        output = self._forward(ops.stop_gradient(x), [ops.stop_gradient(w) for w in weights])

        def gradient(upstream, variables=None):
            y1, y2 = ops.split(output, 2, axis=-1)
            dy1, dy2 = ops.split(upstream, 2, axis=-1)
            weight_gradients = [None] * len(weights)
            for block in reversed(range(self.num_blocks)):
                first = block * _WEIGHTS_PER_BLOCK
                f_weights = list(weights[first:first + 4])
                g_weights = list(weights[first + 4:first + 8])
                g_out, g_grads = vector_jacobian_product(
                    lambda h, *w: _residual(h, *w), [y1] + g_weights, dy2)
                total_dy1 = dy1 + g_grads[0]  # y1 feeds G: dL/dy1 = dy1 + G'^T dy2 = dL/dx1
                x2 = y2 - g_out
                f_out, f_grads = vector_jacobian_product(
                    lambda h, *w: _residual(h, *w), [x2] + f_weights, total_dy1)
                weight_gradients[first:first + 4] = f_grads[1:]
                weight_gradients[first + 4:first + 8] = g_grads[1:]
                y1, y2 = y1 - f_out, x2
                dy1, dy2 = total_dy1, dy2 + f_grads[0]
            return (ops.concatenate([dy1, dy2], axis=-1), *weight_gradients)

        return output, gradient

    def call(self, inputs, training=None):
        # Tensors read from the variables (`ops.copy`: on TensorFlow `convert_to_tensor` would
        # return the variable itself), so the custom gradient is a function of values only.
        weights = [ops.copy(w) for w in self.block_weights]
        if self.recompute_gradients and keras.backend.backend() in RECOMPUTING_BACKENDS:
            return ops.custom_gradient(self._recomputing_forward)(inputs, *weights)
        return self._forward(inputs, weights)

    def get_config(self):
        config = super().get_config()
        config.update({"num_blocks": self.num_blocks, "hidden_channels": self.hidden_channels,
                       "recompute_gradients": self.recompute_gradients})
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class InvertibleFeatureExtractor(keras.layers.Layer):
    """An i-RevNet-style bijective feature extractor: per stage, `space_to_depth` (2x2 patches
    into channels) then a `ReversibleStack`. Nothing is discarded: `inverse(features)` returns the
    images to float32 precision; a classifier head (a projection) goes on top
    (`keras_crvae.networks.reversible.build_irevnet_classifier`).

    Input shape: `(batch, H, W, C)` with H and W divisible by `2**num_stages`; output shape:
    `(batch, H / 2**S, W / 2**S, C * 4**S)`, the same number of values.

    Args:
        num_stages: int >= 1, down-sampling stages.
        blocks_per_stage: int >= 1.
        hidden_channels: int, width of the residual functions.
        recompute_gradients: bool, default True (`ReversibleStack`).
        **kwargs: `keras.layers.Layer` arguments.

    Reference: Jacobsen et al. 2018, section 3.1 (the i-RevNet, without its initial channel
    padding: space-to-depth first makes the channel count even).
    """

    def __init__(self, num_stages, blocks_per_stage, hidden_channels, recompute_gradients=True,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_stages, bool) or int(num_stages) < 1:
            raise ValueError(f"`num_stages` must be >= 1, got {num_stages!r}.")
        self.num_stages = int(num_stages)
        self.blocks_per_stage = int(blocks_per_stage)
        self.hidden_channels = int(hidden_channels)
        self.recompute_gradients = bool(recompute_gradients)
        self.stages = [ReversibleStack(self.blocks_per_stage, self.hidden_channels,
                                       recompute_gradients=self.recompute_gradients,
                                       dtype=self.dtype_policy, name=f"stage{index}")
                       for index in range(self.num_stages)]

    def build(self, input_shape):
        height, width, channels = (int(size) for size in input_shape[1:])
        factor = 2 ** self.num_stages
        if height % factor or width % factor:
            raise ValueError(f"InvertibleFeatureExtractor with {self.num_stages} stages needs H "
                             f"and W divisible by {factor}; got {height}x{width}.")
        for stage in self.stages:
            height, width, channels = height // 2, width // 2, channels * 4
            stage.build((None, height, width, channels))
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        factor = 2 ** self.num_stages
        return (batch, height // factor, width // factor, channels * factor * factor)

    def call(self, inputs, training=None):
        x = inputs
        for stage in self.stages:
            x = stage(space_to_depth(x))
        return x

    def inverse(self, features):
        """The images whose features are `features`."""
        x = features
        for stage in reversed(self.stages):
            x = depth_to_space(stage.inverse(x))
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"num_stages": self.num_stages, "blocks_per_stage": self.blocks_per_stage,
                       "hidden_channels": self.hidden_channels,
                       "recompute_gradients": self.recompute_gradients})
        return config
