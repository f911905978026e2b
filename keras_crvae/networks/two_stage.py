"""Networks of the Two-Stage VAE (Dai & Wipf, ICLR 2019): both first-stage architectures and the
small dense second stage.

First stage, images `(B, H, W, C)` with `H = W` in {28, 32, 64} <-> latents `(B, latent_dim)`:

- "infogan", the neutral architecture of Lucic et al. 2018 used for the paper's Table 1 (supplement
  section 6; `Infogan` class of `network/two_stage_vae_model.py`, GitHub daib13/TwoStageVAE):
  encoder `conv4x4/2(64) -> LReLU(0.2) -> conv4x4/2(128) -> BN -> LReLU -> fc(1024) -> BN -> LReLU ->
  fc(2*latent)`, every conv/fc spectrally normalised (one power iteration, as the reference);
  decoder `fc(1024) -> BN -> ReLU -> fc(128*(H/4)^2) -> BN -> ReLU -> deconv4x4/2(64) -> BN -> ReLU
  -> deconv4x4/2(C) -> sigmoid`. Weights start at N(0, 0.02) as in the reference's `util.py`.
- "resnet", the ScaleBlock network of the supplement's Figure 11: a ScaleBlock is
  `blocks_per_scale` residual blocks, each `depth_per_block x (BN -> ReLU -> conv3x3)` plus a conv
  shortcut (`res_block` of `network/util.py`). Encoder: `conv(base)`, then `num_scales` ScaleBlocks
  with a stride-2 conv doubling the channels between them, flatten, a fully connected ScaleBlock of
  `fc_dim` units (`res_fc_block`: no BN, as the reference), and a dense head of `2*latent`
  (mean, log sd). Decoder: `fc(2*2*c0)` reshaped to 2x2, then `deconv/2` halving the channels and a
  ScaleBlock per scale up to the image size, then `conv3x3 -> C` and a sigmoid. `c0 = base *
  2^(log2(size) - 1)` capped at 1024, so MNIST (base 32, size 32) starts from `2*2*512 = 2048` units
  and 64x64 images from `2*2*1024 = 4096` units, the caption's numbers.

BatchNorm follows the reference's `batch_norm`: epsilon 1e-5, moving-average decay 0.999.

Deviation (documented): the reference `Resnet` asserts a power-of-two image size; here a 28x28
decoder grows to 32x32 and crops 2 pixels per side, and a 28x28 encoder uses `padding="same"`
stride-2 convs (28 -> 14 -> 7 -> 4).

Second stage, latents `(B, latent_dim)` <-> codes `(B, code_dim)` (`build_encoder2` /
`build_decoder2`): `depth` ReLU dense layers of `width` units (3 x 1024 for Table 1), then the
*input* concatenated to the last hidden layer (the reference's skip), then linear heads.
"""

import math

import keras

from keras_crvae.layers import GaussianParameters

ARCHITECTURES = ("infogan", "resnet")
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.999


def _normal_init(stddev=0.02):
    return keras.initializers.RandomNormal(stddev=stddev)


def _truncated_init(stddev=0.02):
    return keras.initializers.TruncatedNormal(stddev=stddev)


def _batch_norm(x, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _maybe_spectral(layer, spectral_norm):
    if not spectral_norm:
        return layer
    return keras.layers.SpectralNormalization(layer, power_iterations=1, name=layer.name + "_sn")


def _validate_image_shape(image_shape):
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or image_shape[0] != image_shape[1] or image_shape[2] < 1:
        raise ValueError(f"`image_shape` must be (size, size, channels); got {image_shape}.")
    if image_shape[0] % 4:
        raise ValueError(f"`image_shape` sides must be divisible by 4; got {image_shape}.")
    return image_shape


def _validate_positive(**values):
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {value}.")


def build_infogan_encoder(image_shape=(28, 28, 1), latent_dim=64, spectral_norm=True,
                          name="encoder"):
    """The InfoGAN-style ("neutral") first-stage encoder: images -> `[mean, log_var]`.

    Args:
        image_shape: tuple `(size, size, channels)`, size divisible by 4. Default `(28, 28, 1)`.
        latent_dim: int, default 64 (the reference's `--latent-dim`).
        spectral_norm: bool, default True. Wrap every conv/fc in `keras.layers.SpectralNormalization`
            (one power iteration), as the reference's `use_sn=True`.
        name: str, model name.

    Returns:
        `keras.Model`: `(B, *image_shape)` -> `[(B, latent_dim), (B, latent_dim)]`, the posterior
        scale parameterised as `sd = 1e-6 + softplus(raw)` (reference).
    """
    image_shape = _validate_image_shape(image_shape)
    _validate_positive(latent_dim=latent_dim)
    images = keras.Input(image_shape, name="images")
    conv1 = keras.layers.Conv2D(64, 4, strides=2, padding="same", name="conv1",
                                kernel_initializer=_truncated_init())
    x = _maybe_spectral(conv1, spectral_norm)(images)
    x = keras.layers.LeakyReLU(0.2, name="lrelu1")(x)
    conv2 = keras.layers.Conv2D(128, 4, strides=2, padding="same", name="conv2",
                                kernel_initializer=_truncated_init())
    x = _maybe_spectral(conv2, spectral_norm)(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu2")(_batch_norm(x, "bn2"))
    x = keras.layers.Flatten(name="flatten")(x)
    fc3 = keras.layers.Dense(1024, kernel_initializer=_normal_init(), name="fc3")
    x = _maybe_spectral(fc3, spectral_norm)(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu3")(_batch_norm(x, "bn3"))
    head = keras.layers.Dense(2 * latent_dim, kernel_initializer=_normal_init(), name="gaussian")
    x = _maybe_spectral(head, spectral_norm)(x)
    mean, log_var = GaussianParameters("softplus", name="posterior")(x)
    return keras.Model(images, [mean, log_var], name=name)


def build_infogan_decoder(image_shape=(28, 28, 1), latent_dim=64, name="decoder"):
    """The InfoGAN-style first-stage decoder: `z (B, latent_dim)` -> pixel means in [0, 1].

    Args:
        image_shape: tuple `(size, size, channels)`, size divisible by 4. Default `(28, 28, 1)`.
        latent_dim: int, default 64.
        name: str, model name.

    Returns:
        `keras.Model`: `(B, latent_dim)` -> `(B, *image_shape)` after a sigmoid.
    """
    image_shape = _validate_image_shape(image_shape)
    _validate_positive(latent_dim=latent_dim)
    quarter = image_shape[0] // 4
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(1024, kernel_initializer=_normal_init(), name="fc1")(z)
    x = keras.layers.ReLU(name="relu1")(_batch_norm(x, "bn1"))
    x = keras.layers.Dense(128 * quarter * quarter, kernel_initializer=_normal_init(), name="fc2")(x)
    x = keras.layers.ReLU(name="relu2")(_batch_norm(x, "bn2"))
    x = keras.layers.Reshape((quarter, quarter, 128), name="to_map")(x)
    x = keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same", name="deconv3",
                                     kernel_initializer=_normal_init())(x)
    x = keras.layers.ReLU(name="relu3")(_batch_norm(x, "bn3"))
    x = keras.layers.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same",
                                     name="deconv4", kernel_initializer=_normal_init())(x)
    pixels = keras.layers.Activation("sigmoid", name="pixel_mean")(x)
    return keras.Model(z, pixels, name=name)


def _residual_block(x, channels, depth, kernel_size, name):
    """`depth x (BN -> ReLU -> conv)` plus a conv shortcut (reference `res_block`)."""
    y = x
    for index in range(depth):
        y = keras.layers.ReLU(name=f"{name}_relu{index}")(_batch_norm(y, f"{name}_bn{index}"))
        y = keras.layers.Conv2D(channels, kernel_size, padding="same", name=f"{name}_conv{index}")(y)
    shortcut = keras.layers.Conv2D(channels, kernel_size, padding="same",
                                   name=f"{name}_shortcut")(x)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def _scale_block(x, channels, blocks, depth, kernel_size, name):
    for index in range(blocks):
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
    image_shape = _validate_image_shape(image_shape)
    _validate_positive(latent_dim=latent_dim, base_channels=base_channels, num_scales=num_scales,
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
    image_shape = _validate_image_shape(image_shape)
    _validate_positive(latent_dim=latent_dim, base_channels=base_channels,
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
        x = keras.layers.Cropping2D((grown - size) // 2, name="crop")(x)
    pixels = keras.layers.Activation("sigmoid", name="pixel_mean")(x)
    return keras.Model(z, pixels, name=name)


def build_two_stage_encoder(architecture="infogan", image_shape=(28, 28, 1), latent_dim=64,
                            **kwargs):
    """Dispatches to `build_infogan_encoder` or `build_resnet_encoder` by `architecture`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"`architecture` must be one of {ARCHITECTURES}, got {architecture!r}.")
    builder = build_infogan_encoder if architecture == "infogan" else build_resnet_encoder
    return builder(image_shape=image_shape, latent_dim=latent_dim, **kwargs)


def build_two_stage_decoder(architecture="infogan", image_shape=(28, 28, 1), latent_dim=64,
                            **kwargs):
    """Dispatches to `build_infogan_decoder` or `build_resnet_decoder` by `architecture`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"`architecture` must be one of {ARCHITECTURES}, got {architecture!r}.")
    builder = build_infogan_decoder if architecture == "infogan" else build_resnet_decoder
    return builder(image_shape=image_shape, latent_dim=latent_dim, **kwargs)


def _dense_trunk(x, depth, width, prefix):
    hidden = x
    for index in range(depth):
        hidden = keras.layers.Dense(width, activation="relu", name=f"{prefix}fc{index}")(hidden)
    # The reference concatenates the block's input to its last hidden layer.
    return keras.layers.Concatenate(name=f"{prefix}skip")([x, hidden])


def build_latent_encoder(latent_dim=64, code_dim=None, depth=3, width=1024, name="encoder2"):
    """Second-stage encoder: stage-1 latents `z (B, latent_dim)` -> `[mean_u, log_var_u]`.

    Args:
        latent_dim: int, default 64. Size of the stage-1 latent `z` (the input).
        code_dim: int or None. Size of the stage-2 code `u`; default `latent_dim` (reference).
        depth: int, default 3 (`--second-depth`).
        width: int, default 1024 (`--second-dim`).
        name: str, model name.

    Returns:
        `keras.Model`: `(B, latent_dim)` -> `[(B, code_dim), (B, code_dim)]` (log-sd head, as
        `mu_u`/`logsd_u` of the reference).
    """
    code_dim = latent_dim if code_dim is None else code_dim
    _validate_positive(latent_dim=latent_dim, code_dim=code_dim, depth=depth, width=width)
    z = keras.Input((latent_dim,), name="z")
    x = _dense_trunk(z, depth, width, "")
    x = keras.layers.Dense(2 * code_dim, name="gaussian")(x)
    mean, log_var = GaussianParameters("log_std", name="posterior")(x)
    return keras.Model(z, [mean, log_var], name=name)


def build_latent_decoder(latent_dim=64, code_dim=None, depth=3, width=1024, name="decoder2"):
    """Second-stage decoder: codes `u (B, code_dim)` -> the mean of `z`, `(B, latent_dim)`, linear.

    Args: as `build_latent_encoder`.

    Returns:
        `keras.Model`: `(B, code_dim)` -> `(B, latent_dim)`.
    """
    code_dim = latent_dim if code_dim is None else code_dim
    _validate_positive(latent_dim=latent_dim, code_dim=code_dim, depth=depth, width=width)
    u = keras.Input((code_dim,), name="u")
    x = _dense_trunk(u, depth, width, "")
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(x)
    return keras.Model(u, z_mean, name=name)
