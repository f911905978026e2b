"""Stage2 (super-resolution) generator and discriminator: StackGAN's Stage-II without the text.

Ported from `stageII/model.py` of GitHub hanzhanggit/StackGAN (Zhang et al., "StackGAN", ICCV 2017),
as the crVAE supplement (sections C.2-C.4) uses it on top of the 64x64 Stage1 VAE-GAN / crVAE-GAN:

Generator (`g = base_channels`, StackGAN's `gf_dim` = 128), input `I x I` images in [-1, 1]:
    encode:    conv3x3 (g) -> ReLU -> [conv4x4/2 (2g) -> BN -> ReLU] -> [conv4x4/2 (4g) -> BN -> ReLU]
    joint:     conv3x3 (4g) -> BN -> ReLU            (StackGAN's image+text joint conv, no text here)
    residual:  `residual_blocks` x [conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + input, ReLU]  (4)
    up:        per step: nearest-neighbour x2 -> conv3x3 -> BN -> ReLU, channels 2g, g, g/2, g/4, ...
    output:    conv3x3 (3) -> tanh, at `O x O`
The supplement's CelebA variants (section C.3) are arguments: crVAE-GAN up-samples with a 4x4 stride-2
transposed convolution (padding 1) instead of nearest neighbour + conv3x3 (`upsampling="deconv"`);
VAE-GAN down-samples only once, 64 -> 32 instead of 64 -> 16 (`downsamplings=1`; the second encode
conv then keeps the spatial size). Birds keeps StackGAN's (section C.2).
Sizes: the number of up-sampling steps is `downsamplings + log2(O / I')`, where `I' = I` when `O / I`
is a power of two (64 -> 128, 32 -> 64) and otherwise the input is first resized (bilinear,
antialiased) to `I' = O / 2^ceil(log2(O / I))`: 64 -> 56 for LSUN's 224 (56 -> 14 -> 224).

Discriminator (`d = base_channels`, StackGAN's `df_dim` = 64), `O x O` images:
    conv4x4/2 (d) -> LReLU(0.2), then conv4x4/2 -> BN -> LReLU(0.2) with channels 2d, 4d, ... (at most
    32d) until the map is at most 7x7 (4x4 for 64/128/256, 7x7 for 224); 1x1 convs back to 8d
    (StackGAN: 32d -> 16d -> 8d); a residual block [1x1 (2d), 3x3 (2d), 3x3 (8d)]; then StackGAN's
    logit head without the text: conv1x1 (8d) -> BN -> LReLU(0.2) -> a conv covering the whole map
    (kernel = map size) -> one logit.
StackGAN initialises every conv with a truncated normal of stddev 0.02 and uses BatchNorm momentum 0.9
(Keras momentum 0.9, epsilon 1e-5); both are kept.

Imports: `networks.blocks` only. This module was `networks/stage2.py` (renamed in issue 27);
`keras_crvae.networks.stage2` is an alias, and the builders keep their names.
"""

import math

import keras

from keras_crvae import layers as crvae_layers
from keras_crvae.networks.blocks import transposed_conv

UPSAMPLINGS = ("nearest", "deconv")


def _init():
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _conv(x, filters, kernel_size, strides=1, name=None, use_bias=False):
    # StackGAN pads its 4x4 stride-2 convs "SAME" (TensorFlow), which Keras' "same" is.
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               use_bias=use_bias, kernel_initializer=_init(), name=name)(x)


def _bn(x, name, synchronized=False):
    return crvae_layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized,
                                   name=name)(x)


def _is_power_of_two(value):
    return value >= 1 and float(value).is_integer() and (int(value) & (int(value) - 1)) == 0


def generator_geometry(input_size, output_size, downsamplings=2):
    """`(resized_input, up_steps)` of the generator for `input_size -> output_size` (module docstring).

    Raises:
        ValueError: an output not larger than the input, or an input the down-sampling steps do not
            divide.
    """
    input_size, output_size, downsamplings = int(input_size), int(output_size), int(downsamplings)
    if input_size < 4 or output_size <= input_size:
        raise ValueError(f"Stage2 needs 4 <= input_size < output_size; got {input_size} -> "
                         f"{output_size}.")
    if downsamplings not in (1, 2):
        raise ValueError(f"`downsamplings` must be 1 or 2, got {downsamplings}.")
    ratio = output_size / input_size
    scale = int(round(ratio)) if _is_power_of_two(ratio) else 2 ** math.ceil(math.log2(ratio))
    if output_size % scale:
        raise ValueError(f"output_size={output_size} is not input_size={input_size} times a power of "
                         "two, and no power of two divides it into a smaller input.")
    resized = output_size // scale
    if resized % (2 ** downsamplings):
        raise ValueError(f"The generator input ({resized}x{resized}) must be divisible by "
                         f"{2 ** downsamplings} for {downsamplings} down-sampling steps.")
    return resized, downsamplings + int(round(math.log2(scale)))


def build_stage2_generator(input_size=64, output_size=128, base_channels=128, residual_blocks=4,
                           downsamplings=2, upsampling="nearest", synchronized_batch_norm=False,
                           name="stage2_generator"):
    """Low-resolution images `(B, I, I, 3)` in [-1, 1] -> `(B, O, O, 3)` in [-1, 1] (tanh).

    Args:
        input_size: int, default 64 (the Stage1 image size; 32 for the 32 -> 64 instance).
        output_size: int, default 128 (224 for LSUN).
        base_channels: int, default 128 (StackGAN's `gf_dim`).
        residual_blocks: int, default 4 (StackGAN).
        downsamplings: int, 2 (StackGAN: I -> I/4) or 1 (the supplement's CelebA VAE-GAN: I -> I/2).
        upsampling: str, "nearest" (StackGAN: nearest x2 + conv3x3) or "deconv" (the supplement's
            CelebA crVAE-GAN: 4x4 stride-2 transposed conv, padding 1).
        synchronized_batch_norm: bool, default False. BatchNorm over the global batch under a
            TensorFlow distribution strategy.
        name: str.

    Returns:
        `keras.Model`.

    Reference: Zhang et al. 2017 (StackGAN, Stage-II generator); crVAE supplement sections C.2-C.4.
    """
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"`upsampling` must be one of {UPSAMPLINGS}, got {upsampling!r}.")
    g = int(base_channels)
    if g < 4 or int(residual_blocks) < 0:
        raise ValueError(f"`base_channels` must be >= 4 and `residual_blocks` >= 0; got {g} and "
                         f"{residual_blocks}.")
    resized, up_steps = generator_geometry(input_size, output_size, downsamplings)
    images = keras.Input((int(input_size), int(input_size), 3), name="low_resolution")
    x = images
    if resized != int(input_size):
        x = keras.layers.Resizing(resized, resized, interpolation="bilinear", antialias=True,
                                  name="resize_input")(x)
    bn = lambda tensor, layer_name: _bn(tensor, layer_name, synchronized_batch_norm)  # noqa: E731
    relu = keras.layers.ReLU
    # === Encode ===
    x = relu(name="encode0_relu")(_conv(x, g, 3, name="encode0", use_bias=True))
    x = relu(name="encode1_relu")(bn(_conv(x, 2 * g, 4, strides=2, name="encode1"), "encode1_bn"))
    second_stride = 2 if int(downsamplings) == 2 else 1
    x = relu(name="encode2_relu")(bn(_conv(x, 4 * g, 4 if second_stride == 2 else 3,
                                           strides=second_stride, name="encode2"), "encode2_bn"))
    # === Joint conv (text-free) and residual blocks ===
    x = relu(name="joint_relu")(bn(_conv(x, 4 * g, 3, name="joint"), "joint_bn"))
    for block in range(int(residual_blocks)):
        prefix = f"residual{block}"
        y = relu(name=prefix + "_relu_a")(bn(_conv(x, 4 * g, 3, name=prefix + "_conv_a"),
                                             prefix + "_bn_a"))
        y = bn(_conv(y, 4 * g, 3, name=prefix + "_conv_b"), prefix + "_bn_b")
        x = relu(name=prefix + "_relu")(keras.layers.Add(name=prefix + "_add")([x, y]))
    # === Up-sample ===
    channels = 4 * g
    for step in range(up_steps):
        channels = max(channels // 2, 4)
        prefix = f"up{step}"
        if upsampling == "nearest":
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=prefix + "_nearest")(x)
            x = _conv(x, channels, 3, name=prefix + "_conv")
        else:
            x = transposed_conv(x, channels, 1, prefix + "_deconv")
        x = relu(name=prefix + "_relu")(bn(x, prefix + "_bn"))
    x = _conv(x, 3, 3, name="to_rgb", use_bias=True)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(images, outputs, name=name)


def build_stage2_discriminator(image_size=128, base_channels=64, synchronized_batch_norm=False,
                               name="stage2_discriminator"):
    """Images `(B, O, O, 3)` in [-1, 1] -> logits `(B, 1)` (StackGAN's Stage-II discriminator
    without the text; see the module docstring).

    Args:
        image_size: int >= 16, default 128. The Stage2 output size.
        base_channels: int, default 64 (StackGAN's `df_dim`).
        synchronized_batch_norm: bool, default False.
        name: str.

    Returns:
        `keras.Model`.

    Reference: Zhang et al. 2017 (StackGAN, `hr_d_encode_image` and `discriminator`).
    """
    size, d = int(image_size), int(base_channels)
    if size < 16 or d < 1:
        raise ValueError(f"`image_size` must be >= 16 and `base_channels` >= 1; got {size} and {d}.")
    images = keras.Input((size, size, 3), name="images")
    lrelu = lambda tensor, layer_name: keras.layers.LeakyReLU(0.2, name=layer_name)(tensor)  # noqa
    bn = lambda tensor, layer_name: _bn(tensor, layer_name, synchronized_batch_norm)  # noqa: E731
    x = lrelu(_conv(images, d, 4, strides=2, name="down0", use_bias=True), "down0_lrelu")
    spatial, channels, step = -(-size // 2), d, 1
    while spatial > 7:
        channels = min(2 * channels, 32 * d)
        x = lrelu(bn(_conv(x, channels, 4, strides=2, name=f"down{step}"), f"down{step}_bn"),
                  f"down{step}_lrelu")
        spatial, step = -(-spatial // 2), step + 1
    # Back to 8d with 1x1 convs (StackGAN: 32d -> 16d -> 8d); the last one without activation.
    reductions = []
    while channels > 8 * d:
        channels //= 2
        reductions.append(channels)
    if not reductions and channels != 8 * d:
        reductions = [8 * d]
    for index, width in enumerate(reductions):
        x = bn(_conv(x, width, 1, name=f"reduce{index}"), f"reduce{index}_bn")
        if index < len(reductions) - 1:
            x = lrelu(x, f"reduce{index}_lrelu")
    y = lrelu(bn(_conv(x, 2 * d, 1, name="residual_a"), "residual_a_bn"), "residual_a_lrelu")
    y = lrelu(bn(_conv(y, 2 * d, 3, name="residual_b"), "residual_b_bn"), "residual_b_lrelu")
    y = bn(_conv(y, 8 * d, 3, name="residual_c"), "residual_c_bn")
    x = lrelu(keras.layers.Add(name="residual_add")([x, y]), "residual_lrelu")
    x = lrelu(bn(_conv(x, 8 * d, 1, name="head"), "head_bn"), "head_lrelu")
    # One conv over the whole map = StackGAN's conv with kernel and stride s16.
    logits = keras.layers.Conv2D(1, spatial, padding="valid", kernel_initializer=_init(),
                                 name="logit")(x)
    logits = keras.layers.Reshape((1,), dtype="float32", name="logits")(logits)
    return keras.Model(images, logits, name=name)
