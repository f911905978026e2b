"""The style-based generator: mapping network and synthesis network (StyleGAN: Karras et al. 2019;
StyleGAN2: Karras et al. 2020), as functional Keras models on `keras_crvae.layers`.

    generator:  z (B, latent_dim) -> mapping -> w (B, w_dim) -> repeat num_ws times -> ws
                -> synthesis -> images (B, *image_shape) in [-1, 1]

The synthesis network takes one w per styled layer, `ws` `(B, num_ws, w_dim)`, so style mixing and
truncation (`keras_crvae.models.StyleGAN`) only change its input. Blocks double the resolution from
a learned 4x4 constant to the output side `R = 4 * 2**n`:

    "modulated" (StyleGAN2, Figure 2(d) and 7(b), skip generator):
        4x4:    const -> modconv3x3(ws[0]) -> noise -> LReLU;           rgb = tRGB(ws[1])
        2R':    modconv3x3 up(ws[2b-1]) -> noise -> LReLU -> modconv3x3(ws[2b]) -> noise -> LReLU;
                rgb = tRGB(ws[2b+1]) + upsample(rgb)
    "adain" (StyleGAN, Figure 1(b)):
        4x4:    const -> noise -> AdaIN(ws[0]) -> conv3x3 -> noise -> LReLU -> AdaIN(ws[1])
        2R':    upsample -> conv3x3 -> noise -> LReLU -> AdaIN(ws[2b]) -> conv3x3 -> noise -> LReLU
                -> AdaIN(ws[2b+1]);  the last block -> 1x1 conv -> RGB

`num_ws = 2 * (number of blocks)` in both: as in StyleGAN2's code a tRGB shares its w with the next
block's first convolution. Channels double from `base_channels` at the output resolution towards
4x4, capped at `max_channels` (the paper: 512 up to 64x64, halving above).

Departures from the papers, for a CPU-sized library: bilinear upsampling instead of the [1, 3, 3, 1]
FIR filter; a tanh on the output so images are in the library's GAN range [-1, 1] (StyleGAN's output
is linear and clipped when saved); a 28x28 image shape (MNIST) is synthesised at 32x32 and
centre-cropped to 28x28 inside the generator, so the data and the discriminator stay 28x28.
"""

import keras
from keras import ops

from keras_crvae import layers as crvae_layers

STYLES = ("modulated", "adain")


def synthesis_resolution(image_shape):
    """The side `4 * 2**n` the synthesis network generates for `image_shape` (cropped to it)."""
    side = int(image_shape[0])
    resolution = 4
    while resolution < side:
        resolution *= 2
    return resolution


def num_styled_layers(image_shape):
    """`num_ws`: the number of w's the synthesis network of `image_shape` takes."""
    blocks = synthesis_resolution(image_shape).bit_length() - 2  # 4 -> 1 block, 8 -> 2, ...
    return 2 * blocks


def _check_image_shape(image_shape):
    image_shape = tuple(int(d) for d in image_shape)
    if (len(image_shape) != 3 or image_shape[0] != image_shape[1] or image_shape[0] < 8
            or synthesis_resolution(image_shape) - image_shape[0] >= image_shape[0] // 2
            or image_shape[2] < 1):
        raise ValueError("`image_shape` must be square (side, side, channels) with a side of 8 or "
                         "more that is a power of 2 or a little below one (e.g. (28, 28, 1), "
                         f"(32, 32, 3), (64, 64, 3)); got {image_shape}.")
    return image_shape


def build_mapping_network(latent_dim=512, w_dim=512, num_layers=8, name="mapping"):
    """z `(B, latent_dim)` -> w `(B, w_dim)`: `keras_crvae.layers.MappingNetwork` as a model.

    Args:
        latent_dim: int, default 512. w_dim: int, default 512. num_layers: int, default 8.
        name: str.

    Reference: Karras et al. 2019, section 2 and appendix C.
    """
    z = keras.Input((int(latent_dim),), name="z")
    w = crvae_layers.MappingNetwork(w_dim, num_layers, name="mapping_mlp")(z)
    return keras.Model(z, w, name=name)


def build_synthesis_network(image_shape=(32, 32, 3), w_dim=512, base_channels=32,
                            max_channels=256, style="modulated", noise_inputs=True, seed=None,
                            name="synthesis"):
    """ws `(B, num_ws, w_dim)` -> images `(B, *image_shape)` in [-1, 1] (module docstring).

    Args:
        image_shape: tuple, default (32, 32, 3). Sides that are not a power of 2 (28) are
            synthesised at the next one and centre-cropped.
        w_dim: int, default 512.
        base_channels: int, default 32. Channels at the output resolution.
        max_channels: int, default 256. Cap of the channels towards 4x4.
        style: "modulated" (StyleGAN2, default) or "adain" (StyleGAN).
        noise_inputs: bool, default True. Per-layer noise (False: a deterministic generator).
        seed: int or None. Seeds of the noise layers (offset per layer).
        name: str.

    Returns:
        `keras.Model`.

    Reference: Karras et al. 2019, Figure 1(b); Karras et al. 2020, Figures 2(d) and 7(b).
    """
    image_shape = _check_image_shape(image_shape)
    if style not in STYLES:
        raise ValueError(f"`style` must be one of {STYLES}, got {style!r}.")
    crvae_layers.check_counts(w_dim=w_dim, base_channels=base_channels, max_channels=max_channels)
    resolution = synthesis_resolution(image_shape)
    num_ws = num_styled_layers(image_shape)
    blocks = num_ws // 2

    def channels(block):  # block 0 is 4x4, the last block is the output resolution
        return min(int(max_channels), int(base_channels) * 2 ** (blocks - 1 - block))

    layer_count = [0]

    def noise(x, label):
        if not noise_inputs:
            return x
        layer_count[0] += 1
        layer_seed = None if seed is None else int(seed) + layer_count[0]
        return crvae_layers.NoiseInjection(seed=layer_seed, name=f"noise_{label}")(x)

    def lrelu(x, label):
        return keras.layers.LeakyReLU(0.2, name=f"lrelu_{label}")(x)

    ws = keras.Input((num_ws, int(w_dim)), name="ws")
    w = [ws[:, i] for i in range(num_ws)]
    x = crvae_layers.ConstantInput(channels(0), name="constant")(ws)
    rgb = None
    if style == "modulated":
        x = crvae_layers.ModulatedConv2D(channels(0), name="conv_4x4")([x, w[0]])
        x = lrelu(noise(x, "4x4"), "4x4")
        rgb = crvae_layers.ToRGB(image_shape[2], name="to_rgb_4x4")([x, w[1]])
        for block in range(1, blocks):
            side = 4 * 2 ** block
            label = f"{side}x{side}"
            x = crvae_layers.ModulatedConv2D(channels(block), upsample=True,
                                             name=f"conv0_{label}")([x, w[2 * block - 1]])
            x = lrelu(noise(x, f"0_{label}"), f"0_{label}")
            x = crvae_layers.ModulatedConv2D(channels(block), name=f"conv1_{label}")(
                [x, w[2 * block]])
            x = lrelu(noise(x, f"1_{label}"), f"1_{label}")
            rgb = crvae_layers.ToRGB(image_shape[2], name=f"to_rgb_{label}")(
                [x, w[2 * block + 1], rgb])
    else:
        for block in range(blocks):
            side = 4 * 2 ** block
            label = f"{side}x{side}"
            if block:
                x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up_{label}")(x)
                x = crvae_layers.EqualizedConv2D(channels(block), name=f"conv0_{label}")(x)
                x = lrelu(noise(x, f"0_{label}"), f"0_{label}")
            else:
                x = noise(x, f"0_{label}")
            x = crvae_layers.AdaptiveInstanceNormalization(name=f"adain0_{label}")(
                [x, w[2 * block]])
            x = crvae_layers.EqualizedConv2D(channels(block), name=f"conv1_{label}")(x)
            x = lrelu(noise(x, f"1_{label}"), f"1_{label}")
            x = crvae_layers.AdaptiveInstanceNormalization(name=f"adain1_{label}")(
                [x, w[2 * block + 1]])
        rgb = crvae_layers.EqualizedConv2D(image_shape[2], kernel_size=1, gain=1.0,
                                           name="to_rgb")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(rgb)
    margin = resolution - image_shape[0]
    if margin:
        crop = (margin // 2, margin - margin // 2)
        images = crvae_layers.SliceCropping2D((crop, crop), name="crop")(images)
    return keras.Model(ws, images, name=name)


def build_style_generator(image_shape=(32, 32, 3), latent_dim=512, w_dim=512, mapping_layers=8,
                          base_channels=32, max_channels=256, style="modulated",
                          noise_inputs=True, seed=None, name="generator"):
    """z `(B, latent_dim)` -> images `(B, *image_shape)`: mapping, the same w for every styled
    layer, synthesis. Its layers "mapping" and "synthesis" are the two networks (`StyleGAN` uses
    them for style mixing and truncation).

    Args: those of `build_mapping_network` and `build_synthesis_network`.

    Returns:
        `keras.Model`.
    """
    mapping = build_mapping_network(latent_dim, w_dim, mapping_layers)
    synthesis = build_synthesis_network(image_shape, w_dim, base_channels, max_channels, style,
                                        noise_inputs, seed)
    num_ws = synthesis.input_shape[1]
    z = keras.Input((int(latent_dim),), name="z")
    w = mapping(z)
    ws = ops.repeat(ops.expand_dims(w, 1), num_ws, axis=1)
    return keras.Model(z, synthesis(ws), name=name)


def build_residual_discriminator(image_shape=(32, 32, 3), base_channels=32, max_channels=256,
                                 name="discriminator"):
    """StyleGAN2's residual ("resnet") discriminator: images `(B, *image_shape)` in [-1, 1] ->
    `[logits (B, 1), features (B, F)]`, the outputs of `networks.build_dcgan_discriminator`.

        fromRGB:  conv1x1(base) -> LReLU(0.2)
        block b (side s -> s/2, channels c -> min(2c, max_channels)):
            main  = conv3x3(c) -> LReLU -> avgpool2 -> conv3x3(2c) -> LReLU
            skip  = avgpool2 -> conv1x1(2c, no bias)
            out   = (main + skip) / sqrt(2)                                    (`block{b}`)
        while the side is even and above 4; then conv3x3 -> LReLU -> flatten -> dense(c) -> LReLU
        = features -> dense(1) logits.

    The 1/sqrt(2) keeps the variance of the sum of two unit-variance paths at one (StyleGAN2,
    section 4.1 and Figure 7(c)). Departures, as in the generator (module docstring): 2x2 average
    pooling instead of the [1, 3, 3, 1] FIR filter before the strided convolutions, plain Keras
    convolutions (no equalized learning rate) and no minibatch standard-deviation layer, like the
    DCGAN critic the presets use by default. No normalisation: R1 needs a critic that treats the
    examples of a batch independently.

    Args:
        image_shape: tuple `(H, W, C)`, H = W; default (32, 32, 3). 28x28 stops at 7x7.
        base_channels: int, default 32. Channels of fromRGB; each block doubles them.
        max_channels: int, default 256. The cap of the doubling.
        name: str.

    Returns:
        `keras.Model` with outputs `[logits, features]`.

    Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020,
    Figure 7(c) ("residual nets" discriminator) and appendix B.
    """
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or image_shape[0] != image_shape[1] or image_shape[0] < 4:
        raise ValueError(f"`image_shape` must be (H, H, C) with H >= 4; got {image_shape}.")
    if int(base_channels) < 1 or int(max_channels) < int(base_channels):
        raise ValueError(f"`base_channels` ({base_channels}) must be >= 1 and `max_channels` "
                         f"({max_channels}) at least as large.")
    images = keras.Input(image_shape, name="images")
    channels = int(base_channels)
    x = keras.layers.Conv2D(channels, 1, name="from_rgb")(images)
    x = keras.layers.LeakyReLU(0.2, name="from_rgb_lrelu")(x)
    side, block = image_shape[0], 0
    while side > 4 and side % 2 == 0:
        out_channels = min(2 * channels, int(max_channels))
        label = f"block{block}"
        main = keras.layers.Conv2D(channels, 3, padding="same", name=f"{label}_conv0")(x)
        main = keras.layers.LeakyReLU(0.2, name=f"{label}_lrelu0")(main)
        main = keras.layers.AveragePooling2D(2, name=f"{label}_down")(main)
        main = keras.layers.Conv2D(out_channels, 3, padding="same", name=f"{label}_conv1")(main)
        main = keras.layers.LeakyReLU(0.2, name=f"{label}_lrelu1")(main)
        skip = keras.layers.AveragePooling2D(2, name=f"{label}_skip_down")(x)
        skip = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{label}_skip")(skip)
        x = keras.layers.Add(name=f"{label}_sum")([main, skip])
        x = keras.layers.Rescaling(2.0 ** -0.5, name=label)(x)
        channels, side, block = out_channels, side // 2, block + 1
    x = keras.layers.Conv2D(channels, 3, padding="same", name="final_conv")(x)
    x = keras.layers.LeakyReLU(0.2, name="final_lrelu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(channels, name="final_dense")(x)
    features = keras.layers.LeakyReLU(0.2, name="features")(x)
    logits = keras.layers.Dense(1, dtype="float32", name="logit")(features)
    return keras.Model(images, [logits, features], name=name)
