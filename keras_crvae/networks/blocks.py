"""Building blocks the network builders share, as functions on Keras tensors.

The Torch ports of the crVAE reference (GitHub `WendyShang/crVAE`; `networks/mnist.py`,
`networks/image64.py`, `networks/super_resolution.py`): Torch's default initialisers, a conv with
Torch's symmetric padding, the 4x4 stride-2 transposed conv with Torch padding and BatchNorm with
Torch's momentum already converted (details in `networks/mnist.py`). Then the pieces of the Two-Stage
VAE reference (GitHub `daib13/TwoStageVAE`; `networks/infogan.py`, `networks/resnet.py`,
`networks/two_stage.py`): its BatchNorm constants and argument checks.

Imports: `keras` and `keras_crvae.layers` only. Every file of `networks/` may import it; it imports
no builder (layers -> networks -> models, docs/design.md).
"""

import keras

from keras_crvae import layers as crvae_layers
from keras_crvae.layers import PhaseConv2DTranspose, SliceCropping2D

# BatchNorm of the Two-Stage VAE reference (`batch_norm` of `network/util.py`): epsilon 1e-5,
# moving-average decay 0.999.
TWO_STAGE_BN_EPSILON = 1e-5
TWO_STAGE_BN_MOMENTUM = 0.999


def conv_init():
    """Torch's ConvInit of the reference: `U(-sqrt(1/n), sqrt(1/n))` with `n = k*k*out`."""
    # VarianceScaling(1/3) has limit sqrt(1/n).
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_out", distribution="uniform")


def transposed_conv_init():
    """`conv_init` for `Conv2DTranspose` kernels."""
    # Keras stores transposed kernels as (k, k, out, in): its fan_in is k*k*out, Torch's n.
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def dense_init():
    """Torch's `nn.Linear` default: `U(+-1/sqrt(fan_in))` (zero bias after the reference's init)."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def conv(x, filters, kernel_size, stride=1, padding=0, name=None):
    """Torch's `SpatialConvolution(k, stride, padding)` with ConvInit and zero bias, applied to `x`."""
    if padding and stride == 1 and 2 * padding == kernel_size - 1:
        # Torch's symmetric padding p = (k-1)/2 at stride 1 is Keras' "same": one op instead of a
        # Pad and a valid conv (and a Slice in the gradient); the same function and weights.
        return keras.layers.Conv2D(
            filters, kernel_size, padding="same",
            kernel_initializer=conv_init(), bias_initializer="zeros", name=name,
        )(x)
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=None if name is None else name + "_pad")(x)
    return keras.layers.Conv2D(
        filters, kernel_size, strides=stride, padding="valid",
        kernel_initializer=conv_init(), bias_initializer="zeros", name=name,
    )(x)


def transposed_conv(x, filters, padding, name):
    """Torch's 4x4 stride-2 `SpatialFullConvolution` with padding `padding`, applied to `x`."""
    # A 4x4 stride-2 transposed conv with Torch padding p is the full ("valid") output cropped by p
    # on each side. Keras' "same" is the full output cropped by 1, so p >= 1 is "same" cropped by
    # p - 1: no crop for p = 1 (one op less, and no crop gradient), and the "same" form is what
    # PhaseConv2DTranspose computes quickly on JAX (XLA:CPU).
    if padding < 1:
        return keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="valid",
            kernel_initializer=transposed_conv_init(), bias_initializer="zeros", name=name,
        )(x)
    x = PhaseConv2DTranspose(
        filters, 4, strides=2, padding="same",
        kernel_initializer=transposed_conv_init(), bias_initializer="zeros", name=name,
    )(x)
    if padding > 1:
        x = SliceCropping2D(padding - 1, name=name + "_crop")(x)
    return x


def batch_norm(x, epsilon, momentum, name, synchronized=False):
    """`BatchNormalization` (Keras `momentum`, i.e. Torch's `1 - momentum`) applied to `x`: the
    `keras_crvae.layers.BatchNormalization`, one fused kernel per step on TensorFlow."""
    # synchronized=True: statistics over the global batch under a TensorFlow distribution strategy.
    return crvae_layers.BatchNormalization(epsilon=epsilon, momentum=momentum,
                                   synchronized=synchronized, name=name)(x)


def two_stage_batch_norm(x, name):
    """`BatchNormalization` of the Two-Stage VAE reference applied to `x`."""
    return batch_norm(x, TWO_STAGE_BN_EPSILON, TWO_STAGE_BN_MOMENTUM, name)


def check_square_image_shape(image_shape):
    """`image_shape` as a tuple of ints, checked to be `(size, size, channels)` with the size
    divisible by 4 (the Two-Stage VAE's first-stage networks)."""
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or image_shape[0] != image_shape[1] or image_shape[2] < 1:
        raise ValueError(f"`image_shape` must be (size, size, channels); got {image_shape}.")
    if image_shape[0] % 4:
        raise ValueError(f"`image_shape` sides must be divisible by 4; got {image_shape}.")
    return image_shape


def check_positive(**values):
    """Raises a ValueError naming the first of the keyword arguments that is below 1."""
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {value}.")
