"""The VQ-VAE's encoder and decoder (van den Oord et al. 2017, section 4.1).

    encoder   images (H, W, C) -> `downsamples` 4x4 stride-2 convolutions (ReLU) -> 3x3 conv ->
              residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv, add) -> ReLU -> 1x1 conv to
              `code_dim`: the vectors to quantize, (H / 2^d, W / 2^d, code_dim)
    decoder   codes (h, w, code_dim) -> 3x3 conv -> residual blocks -> ReLU -> `upsamples` 4x4
              stride-2 transposed convolutions (ReLU between) -> logits (H, W, C)

The paper's image model: two stride-2 convolutions, two residual blocks, 256 hidden units; the
presets use narrower, CPU-sized versions (keras_crvae/presets/vq_vae.py).
"""

import keras

from keras_crvae.layers import PhaseConv2DTranspose
from keras_crvae.networks.blocks import check_positive


def _residual_blocks(features, filters, count, name):
    for block in range(count):
        hidden = keras.layers.ReLU()(features)
        hidden = keras.layers.Conv2D(filters // 2 or 1, 3, padding="same", activation="relu",
                                     name=f"{name}_res{block}_conv3")(hidden)
        hidden = keras.layers.Conv2D(filters, 1, name=f"{name}_res{block}_conv1")(hidden)
        features = keras.layers.Add(name=f"{name}_res{block}_add")([features, hidden])
    return keras.layers.ReLU()(features)


def build_vq_encoder(image_shape, filters=32, code_dim=16, downsamples=2, residual_blocks=2,
                     name="vq_encoder"):
    """Images `(B, H, W, C)` -> vectors to quantize `(B, H / 2^d, W / 2^d, code_dim)`.

    Args:
        image_shape: `(H, W, C)`, H and W divisible by `2 ** downsamples`.
        filters: int, default 32. Hidden channels (the paper: 256).
        code_dim: int, default 16. D, the length of each code vector.
        downsamples: int, default 2. Stride-2 convolutions.
        residual_blocks: int, default 2.

    Reference: van den Oord et al., "Neural Discrete Representation Learning", 2017, section 4.1.
    """
    check_positive(filters=filters, code_dim=code_dim, downsamples=downsamples)
    height, width = int(image_shape[0]), int(image_shape[1])
    if height % 2 ** downsamples or width % 2 ** downsamples:
        raise ValueError(f"`image_shape` {tuple(image_shape)} must have sides divisible by "
                         f"2 ** downsamples = {2 ** downsamples}.")
    images = keras.Input(tuple(image_shape), name="images")
    features = images
    for step in range(downsamples):
        features = keras.layers.Conv2D(filters, 4, strides=2, padding="same", activation="relu",
                                       name=f"down{step}")(features)
    features = keras.layers.Conv2D(filters, 3, padding="same", name="encoder_conv")(features)
    features = _residual_blocks(features, filters, int(residual_blocks), "encoder")
    codes = keras.layers.Conv2D(code_dim, 1, name="to_code_dim")(features)
    return keras.Model(images, codes, name=name)


def build_vq_decoder(code_shape, image_channels=1, filters=32, upsamples=2, residual_blocks=2,
                     name="vq_decoder"):
    """Quantized vectors `(B, h, w, code_dim)` -> logits `(B, h * 2^u, w * 2^u, image_channels)`.

    Args:
        code_shape: `(h, w, code_dim)`.
        image_channels: int, default 1.
        filters, residual_blocks: as `build_vq_encoder`.
        upsamples: int, default 2. 4x4 stride-2 transposed convolutions.

    Reference: van den Oord et al., "Neural Discrete Representation Learning", 2017, section 4.1.
    """
    check_positive(image_channels=image_channels, filters=filters, upsamples=upsamples)
    codes = keras.Input(tuple(code_shape), name="quantized")
    features = keras.layers.Conv2D(filters, 3, padding="same", name="decoder_conv")(codes)
    features = _residual_blocks(features, filters, int(residual_blocks), "decoder")
    for step in range(upsamples):
        last = step == upsamples - 1
        features = PhaseConv2DTranspose(image_channels if last else filters, 4, strides=2,
                                        padding="same", activation=None if last else "relu",
                                        name=f"up{step}")(features)
    return keras.Model(codes, features, name=name)
