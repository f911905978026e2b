"""The ResNet (ScaleBlock) encoder and decoder of the Two-Stage VAE's first stage (Dai & Wipf,
ICLR 2019), images `(B, H, W, C)` with `H = W` <-> latents `(B, latent_dim)`:

the ScaleBlock network of the supplement's Figure 11. A ScaleBlock is `blocks_per_scale` residual
blocks, each `depth_per_block x (BN -> ReLU -> conv3x3)` plus a conv shortcut (`res_block` of
`network/util.py`, GitHub daib13/TwoStageVAE). Encoder: `conv(base)`, then `num_scales` ScaleBlocks
with a stride-2 conv doubling the channels between them, flatten, a fully connected ScaleBlock of
`fc_dim` units (`res_fc_block`: no BN, as the reference), and a dense head of `2*latent` (mean,
log sd). Decoder: `fc(2*2*c0)` reshaped to 2x2, then `deconv/2` halving the channels and a
ScaleBlock per scale up to the image size, then `conv3x3 -> C` and a sigmoid. `c0 = base *
2^(log2(size) - 1)` capped at 1024, so MNIST (base 32, size 32) starts from `2*2*512 = 2048` units
and 64x64 images from `2*2*1024 = 4096` units, the caption's numbers.

BatchNorm follows the reference's `batch_norm`: epsilon 1e-5, moving-average decay 0.999
(`networks.blocks`).

Deviation (documented): the reference `Resnet` asserts a power-of-two image size; here a 28x28
decoder grows to 32x32 and crops 2 pixels per side, and a 28x28 encoder uses `padding="same"`
stride-2 convs (28 -> 14 -> 7 -> 4).

Imports: `keras_crvae.layers` and `networks.blocks` (layers -> networks -> models, docs/design.md).
`networks.two_stage` dispatches to these builders by architecture name.
"""

import math

import keras

from keras_crvae.layers import GaussianParameters, SliceCropping2D
from keras_crvae.networks import blocks


def _residual_block(x, channels, depth, kernel_size, name):
    """`depth x (BN -> ReLU -> conv)` plus a conv shortcut (reference `res_block`)."""
    y = x
    for index in range(depth):
        y = keras.layers.ReLU(name=f"{name}_relu{index}")(blocks.two_stage_batch_norm(y, f"{name}_bn{index}"))
        y = keras.layers.Conv2D(channels, kernel_size, padding="same", name=f"{name}_conv{index}")(y)
    shortcut = keras.layers.Conv2D(channels, kernel_size, padding="same",
                                   name=f"{name}_shortcut")(x)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def _scale_block(x, channels, num_blocks, depth, kernel_size, name):
    for index in range(num_blocks):
        x = _residual_block(x, channels, depth, kernel_size, f"{name}_block{index}")
    return x


def _dense_residual_block(x, units, depth, name):
    """`depth x (ReLU -> fc)` plus a linear shortcut (reference `res_fc_block`)."""
    y = x
    for index in range(depth):
        y = keras.layers.ReLU(name=f"{name}_relu{index}")(y)
        y = keras.layers.Dense(units, name=f"{name}_fc{index}")(y)
    shortcut = keras.layers.Dense(units, name=f"{name}_shortcut")(x)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def build_resnet_encoder(image_shape=(28, 28, 1), latent_dim=64, base_channels=32, num_scales=3,
                         blocks_per_scale=2, depth_per_block=2, kernel_size=3, fc_dim=512,
                         name="encoder"):
    """The ScaleBlock encoder of Figure 11: images -> `[mean, log_var]`.

    Args:
        image_shape: tuple `(size, size, channels)`. Default `(28, 28, 1)`.
        latent_dim: int, default 64 (`kappa` of the caption).
        base_channels: int, default 32 (channels after the first conv).
        num_scales: int, default 3 (`N`: 3 for MNIST/Fashion/CIFAR, 4 for CelebA).
        blocks_per_scale: int, default 2 (residual blocks per ScaleBlock; the paper's figure).
        depth_per_block: int, default 2 (BN-ReLU-conv units per residual block).
        kernel_size: int, default 3.
        fc_dim: int, default 512 (width of the fully connected ScaleBlock).
        name: str, model name.

    Returns:
        `keras.Model`: `(B, *image_shape)` -> `[(B, latent_dim), (B, latent_dim)]`.
    """
    image_shape = blocks.check_square_image_shape(image_shape)
    blocks.check_positive(latent_dim=latent_dim, base_channels=base_channels, num_scales=num_scales,
                       blocks_per_scale=blocks_per_scale, depth_per_block=depth_per_block,
                       kernel_size=kernel_size, fc_dim=fc_dim)
    images = keras.Input(image_shape, name="images")
    channels = base_channels
    x = keras.layers.Conv2D(channels, kernel_size, padding="same", name="conv0")(images)
    for scale in range(num_scales):
        x = _scale_block(x, channels, blocks_per_scale, depth_per_block, kernel_size,
                         f"scale{scale}")
        if scale != num_scales - 1:
            channels *= 2
            x = keras.layers.Conv2D(channels, kernel_size, strides=2, padding="same",
                                    name=f"downsample{scale}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for block in range(blocks_per_scale):
        x = _dense_residual_block(x, fc_dim, depth_per_block, f"fc_scale_block{block}")
    x = keras.layers.Dense(2 * latent_dim, name="gaussian")(x)
    mean, log_var = GaussianParameters("log_std", name="posterior")(x)
    return keras.Model(images, [mean, log_var], name=name)


def build_resnet_decoder(image_shape=(28, 28, 1), latent_dim=64, base_channels=32,
                         blocks_per_scale=2, depth_per_block=2, kernel_size=3, max_channels=1024,
                         name="decoder"):
    """The ScaleBlock decoder of Figure 11: `z (B, latent_dim)` -> pixel means in [0, 1].

    `fc -> reshape (2, 2, c0)`, then per scale `deconv/2 (halving channels) -> ScaleBlock`, up to the
    next power of two >= the image size; `conv -> channels -> sigmoid`; a centre crop when the image
    size is not a power of two (28 -> from 32).

    Args:
        image_shape: tuple `(size, size, channels)`. Default `(28, 28, 1)`.
        latent_dim: int, default 64.
        base_channels: int, default 32 (channels at full resolution).
        blocks_per_scale, depth_per_block, kernel_size: as `build_resnet_encoder`.
        max_channels: int, default 1024 (the reference's cap).
        name: str, model name.

    Returns:
        `keras.Model`: `(B, latent_dim)` -> `(B, *image_shape)`.
    """
    image_shape = blocks.check_square_image_shape(image_shape)
    blocks.check_positive(latent_dim=latent_dim, base_channels=base_channels,
                       blocks_per_scale=blocks_per_scale, depth_per_block=depth_per_block,
                       kernel_size=kernel_size, max_channels=max_channels)
    size = image_shape[0]
    grown = 2 ** math.ceil(math.log2(size))
    num_upsamples = int(math.log2(grown)) - 1
    # Channels per resolution 2, 4, ..., grown: halving on the way up, base at full size.
    channels = [min(base_channels * 2 ** (num_upsamples - i), max_channels)
                for i in range(num_upsamples + 1)]
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(2 * 2 * channels[0], name="fc0")(z)
    x = keras.layers.Reshape((2, 2, channels[0]), name="to_map")(x)
    for scale in range(num_upsamples):
        x = keras.layers.Conv2DTranspose(channels[scale + 1], kernel_size, strides=2,
                                         padding="same", name=f"upsample{scale}")(x)
        x = _scale_block(x, channels[scale + 1], blocks_per_scale, depth_per_block, kernel_size,
                         f"scale{scale}")
    x = keras.layers.Conv2D(image_shape[-1], kernel_size, padding="same", name="to_pixels")(x)
    if grown != size:
        x = SliceCropping2D((grown - size) // 2, name="crop")(x)
    pixels = keras.layers.Activation("sigmoid", name="pixel_mean")(x)
    return keras.Model(z, pixels, name=name)
