"""The 28x28 MNIST encoders and decoders of the crVAE ablation (supplement section B, Table 1).

Ported from `models/allconv_baseline_mnist.lua` (VAE: fully connected latent),
`models/allconv_conv_mnist.lua` (cVAE: convolutional latent) and `models/allconv_lstm_mnist.lua`
(crVAE: channel-recurrent latent) of GitHub `WendyShang/crVAE`. With `base_channels=32` the encoder
trunk ends in a `(4, 4, 256)` map, and every model has the same latent size, `4*4*latent_channels`.

Torch-to-Keras details kept exactly:
- Torch's symmetric padding: `ZeroPadding2D(p)` + `Conv2D(padding="valid")`; a transposed conv with
  padding `p` is `Conv2DTranspose(padding="valid")` + `Cropping2D(p)`. Where that equals Keras'
  `padding="same"` (a stride-1 conv with `p = (k-1)/2`, a 4x4 stride-2 transposed conv with `p = 1`)
  the builders use "same": the same function and weights with fewer ops
  (`tests/networks/test_torch_padding.py` checks the equality on every backend).
- Torch BatchNorm `momentum m` is Keras `momentum = 1 - m`. The baseline/conv reference files hard-code
  `eps=1e-6, momentum=0.9` (Keras 0.1); the lstm file takes `-eps 1e-5 -mom 0.1` (Keras 0.9).
- Convolutions start uniform in `+-sqrt(1 / (k*k*out_channels))` with zero bias (`ConvInit`); Linear
  layers keep Torch's default `+-1/sqrt(fan_in)` with zero bias.
- The decoder returns **logits**; the reference's final `nn.Sigmoid` is applied by `VAE.decode`.
"""

import keras

from keras_crvae.layers import ChannelRecurrentLatent, ConcatenatedReLU
from keras_crvae.networks import blocks
# The shared blocks live in `networks/blocks.py`; their old private names stay importable from here.
from keras_crvae.networks.blocks import (  # noqa: F401
    batch_norm as _batch_norm, conv as _conv, conv_init as _conv_init, dense_init as _dense_init,
    transposed_conv as _transposed_conv, transposed_conv_init as _transposed_conv_init)

LATENT_KINDS = ("dense", "conv", "recurrent")
SPATIAL_SIZE = 4  # w: the 28x28 trunk ends at 4x4.


def _leaky(x, name):
    return keras.layers.LeakyReLU(negative_slope=0.1, name=name)(x)


def _validate(latent, base_channels, latent_channels, time_steps):
    if latent not in LATENT_KINDS:
        raise ValueError(f"`latent` must be one of {LATENT_KINDS}, got {latent!r}.")
    if base_channels < 1 or latent_channels < 1:
        raise ValueError(
            "`base_channels` and `latent_channels` must be positive, got "
            f"{base_channels} and {latent_channels}."
        )
    if latent == "recurrent":
        for what, channels in (("encoder output (8 * base_channels)", 8 * base_channels),
                               ("latent channels", latent_channels)):
            if time_steps < 1 or channels % time_steps:
                raise ValueError(
                    f"`time_steps`={time_steps} must divide the {what} = {channels}."
                )


def build_mnist_encoder(
    latent="recurrent",
    base_channels=32,
    latent_channels=64,
    time_steps=8,
    lstm_layers=2,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    name="encoder",
    synchronized_batch_norm=False,
):
    """Builds the MNIST inference network: images `(B, 28, 28, 1)` -> `[mean, log_var]`.

    Trunk (reference `vae_encoder`): three stages `conv(stride 2) -> BN -> ConcatenatedReLU ->
    conv3x3 -> BN -> LeakyReLU(0.1)`, 28 -> 15 -> 8 -> 4, channels `2b, 4b, 8b` for `b=base_channels`.

    Args:
        latent: str. "dense" (VAE: two Linear heads, latent `(4*4*Z,)`), "conv" (cVAE: two 3x3 conv
            heads, latent `(4, 4, Z)`) or "recurrent" (crVAE: `ChannelRecurrentLatent` with a Dense
            mean head, latent `(4, 4, Z)`).
        base_channels: int, default 32 (`-baseChannels`).
        latent_channels: int, default 64 (`Z`, `-nf`).
        time_steps: int, default 8 (`T`, recurrent only).
        lstm_layers: int, default 2 (`-rnnLayer`, recurrent only).
        bn_epsilon: float, default 1e-5. BatchNorm epsilon.
        bn_momentum: float, default 0.9. Keras BatchNorm momentum (`1 -` Torch momentum).
        name: str, model name.
        synchronized_batch_norm: bool, default False. BatchNorm statistics over the global batch
            (all replicas) under a TensorFlow distribution strategy, so a mirrored step computes exactly what
            one device computes on the whole batch; TensorFlow backend only. False: per-replica
            statistics (Keras' default, and identical when training on one device).
    """
    _validate(latent, base_channels, latent_channels, time_steps)
    images = keras.Input((28, 28, 1), name="images")
    # Third down-sampling: 5x5/pad 2 in the baseline and conv files, 3x3/pad 1 in the lstm file.
    third_kernel, third_padding = (3, 1) if latent == "recurrent" else (5, 2)
    stages = [(5, 3), (3, 1), (third_kernel, third_padding)]
    x = images
    channels = base_channels
    for index, (kernel, padding) in enumerate(stages, start=1):
        x = blocks.conv(x, channels, kernel, stride=2, padding=padding, name=f"conv{index}_1")
        x = blocks.batch_norm(x, bn_epsilon, bn_momentum, f"bn{index}_1", synchronized_batch_norm)
        x = ConcatenatedReLU(name=f"crelu{index}")(x)
        channels *= 2
        x = blocks.conv(x, channels, 3, padding=1, name=f"conv{index}_2")
        x = blocks.batch_norm(x, bn_epsilon, bn_momentum, f"bn{index}_2", synchronized_batch_norm)
        x = _leaky(x, f"lrelu{index}")
    if latent == "dense":
        flat = keras.layers.Flatten(name="flatten")(x)
        size = SPATIAL_SIZE * SPATIAL_SIZE * latent_channels
        mean = keras.layers.Dense(size, kernel_initializer=blocks.dense_init(), name="mean")(flat)
        log_var = keras.layers.Dense(size, kernel_initializer=blocks.dense_init(), name="log_var")(flat)
    elif latent == "conv":
        mean = blocks.conv(x, latent_channels, 3, padding=1, name="mean")
        log_var = blocks.conv(x, latent_channels, 3, padding=1, name="log_var")
    else:
        mean, log_var = ChannelRecurrentLatent(
            "inference", latent_channels=latent_channels, time_steps=time_steps,
            lstm_layers=lstm_layers, mean_head="dense", name="inference_recurrence",
        )(x)
    return keras.Model(images, [mean, log_var], name=name)


def build_mnist_decoder(
    latent="recurrent",
    base_channels=32,
    latent_channels=64,
    time_steps=8,
    lstm_layers=2,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    name="decoder",
    synchronized_batch_norm=False,
):
    """Builds the MNIST generation network: `z` -> Bernoulli logits `(B, 28, 28, 1)`.

    Head by `latent`: "dense" (VAE: `Linear(4*4*Z -> 4*4*8b)`), "conv" (cVAE: `conv3x3(Z -> 8b) -> BN`)
    or "recurrent" (crVAE: `ChannelRecurrentLatent("generation")` with LSTM hidden size
    `4*4*8b/T`, then `conv3x3 -> BN`). Body: `deconv4x4/2 -> BN -> LReLU -> conv3x3 -> BN -> LReLU` three
    times (4 -> 8 -> 16 -> 28), channels `8b, 4b, 2b`, then `conv3x3(valid) -> 1` logits.

    Args: as `build_mnist_encoder`.

    Returns:
        `keras.Model` from z (`(4*4*Z,)` for "dense", else `(4, 4, Z)`) to logits.
    """
    _validate(latent, base_channels, latent_channels, time_steps)
    channels = 8 * base_channels
    if latent == "dense":
        z = keras.Input((SPATIAL_SIZE * SPATIAL_SIZE * latent_channels,), name="z")
        x = keras.layers.Dense(
            SPATIAL_SIZE * SPATIAL_SIZE * channels, kernel_initializer=blocks.dense_init(),
            name="project"
        )(z)
        x = keras.layers.Reshape((SPATIAL_SIZE, SPATIAL_SIZE, channels), name="to_map")(x)
    else:
        z = keras.Input((SPATIAL_SIZE, SPATIAL_SIZE, latent_channels), name="z")
        x = z
        if latent == "recurrent":
            x = ChannelRecurrentLatent(
                "generation", latent_channels=latent_channels, time_steps=time_steps,
                hidden_channels=channels, lstm_layers=lstm_layers, name="generation_recurrence",
            )(x)
        x = blocks.conv(x, channels, 3, padding=1, name="project")
        x = blocks.batch_norm(x, bn_epsilon, bn_momentum, "bn_project", synchronized_batch_norm)
    # (deconv padding, output channels) per stage: 4->8, 8->16, 16->30 then a valid 3x3 conv -> 28.
    for index, (padding, out_channels) in enumerate(
        [(1, channels), (1, channels // 2), (2, channels // 4)], start=1
    ):
        x = blocks.transposed_conv(x, out_channels, padding, name=f"deconv{index}")
        x = blocks.batch_norm(x, bn_epsilon, bn_momentum, f"bn_deconv{index}",
                              synchronized_batch_norm)
        x = _leaky(x, f"lrelu_deconv{index}")
        x = blocks.conv(x, out_channels, 3, padding=1, name=f"conv{index}")
        x = blocks.batch_norm(x, bn_epsilon, bn_momentum, f"bn_conv{index}", synchronized_batch_norm)
        x = _leaky(x, f"lrelu_conv{index}")
    logits = blocks.conv(x, 1, 3, name="logits")
    return keras.Model(z, logits, name=name)
