"""Stage-1 64x64 RGB encoders, decoders and discriminators of VAE-GAN and crVAE-GAN.

Ported from `models/allconv_baseline.lua` (VAE-GAN: fully connected latent, 4x4x64) and
`models/allconv_lstm.lua` (crVAE-GAN: channel-recurrent latent with BatchNorm in the inference
recurrence) of GitHub `WendyShang/crVAE`; supplement sections C-D of Shang et al. (2018).
With `base_channels=32` (`-baseChannels`) the encoder trunk ends in a `(4, 4, 256)` map `h`; the latent
map is `(4, 4, 64)` (`-nf`). Decoders end in `tanh`, images in [-1, 1].

Torch-to-Keras details (as in `networks/mnist.py`): symmetric Torch padding is `ZeroPadding2D` +
`padding="valid"`; a transposed conv with padding 1 is `Conv2DTranspose(valid)` + `Cropping2D(1)`
(both written as Keras' equivalent `padding="same"` where that is the same function);
Torch BatchNorm momentum `m` is Keras `1 - m`; convolutions start uniform in `+-sqrt(1/(k*k*out))`.
The baseline file hard-codes `eps=1e-6, momentum=0.9` (Keras 0.1) for its first three BatchNorms; we
keep that for the dense latent.
"""

import functools

import keras

from keras_crvae.layers import ChannelRecurrentLatent, ConcatenatedReLU
from keras_crvae.layers.discriminator import SpectralDiscriminator
from keras_crvae.networks import blocks
from keras_crvae.networks.blocks import conv, dense_init

IMAGE_SHAPE = (64, 64, 3)
SPATIAL_SIZE = 4
# `build_image64_decoder(upsampling=...)`: the reference's deconvs, or resize-convolutions.
DECODER_UPSAMPLINGS = ("deconv", "nearest")
LATENT_KINDS = ("dense", "recurrent")


def _check_latent(latent, base_channels, latent_channels, time_steps):
    if latent not in LATENT_KINDS:
        raise ValueError(f"`latent` must be one of {LATENT_KINDS}, got {latent!r}.")
    if int(base_channels) <= 0 or int(latent_channels) <= 0:
        raise ValueError("`base_channels` and `latent_channels` must be positive ints, got "
                         f"{base_channels!r} and {latent_channels!r}.")
    if latent == "recurrent" and (8 * base_channels % time_steps or latent_channels % time_steps):
        raise ValueError(f"`time_steps`={time_steps} must divide 8*base_channels={8 * base_channels} "
                         f"and latent_channels={latent_channels}.")


def build_image64_encoder(latent="recurrent", base_channels=32, latent_channels=64, time_steps=8,
                          lstm_layers=2, bn_epsilon=1e-5, bn_momentum=0.9, name=None,
                          synchronized_batch_norm=False):
    """64x64x3 images in [-1, 1] -> `[mean, log_var]`, each `(batch, 4, 4, latent_channels)`.

    Trunk (`encoder` of the reference, `b = base_channels`): CReLU -> conv5x5/2 (b) -> BN -> CReLU ->
    conv3x3/2 (2b) -> BN -> CReLU -> conv3x3/2 (4b) -> BN -> CReLU -> conv3x3 (8b) -> BN -> LeakyReLU(0.1)
    -> conv3x3/2 (8b) -> BN -> CReLU -> conv3x3 (8b) -> BN -> LeakyReLU(0.1), giving `h (4, 4, 8b)`.
    Latent: `"dense"` -> two Linear heads on flattened `h` (VAE-GAN); `"recurrent"` ->
    `ChannelRecurrentLatent` (conv mean head + bias, LSTM log-variance with BatchNorm; crVAE-GAN).

    Args:
        latent: str, "dense" or "recurrent", default "recurrent".
        base_channels: int, default 32 (`-baseChannels`).
        latent_channels: int, default 64 (`-nf`).
        time_steps: int, default 8 (`-timeStep`).
        lstm_layers: int, default 2 (`-rnnLayer`).
        bn_epsilon, bn_momentum: BatchNorm settings, default 1e-5 / 0.9 (Torch `-eps 1e-5 -mom 0.1`).
        name: str or None.
        synchronized_batch_norm: bool, default False. Every BatchNorm (the recurrent one included)
            uses the global batch's statistics under a TensorFlow distribution strategy (TensorFlow only);
            see `networks.build_mnist_encoder`.

    Returns:
        `keras.Model`.
    """
    _check_latent(latent, base_channels, latent_channels, time_steps)
    b = int(base_channels)
    batch_norm = functools.partial(blocks.batch_norm, synchronized=synchronized_batch_norm)
    early = (1e-6, 0.1) if latent == "dense" else (bn_epsilon, bn_momentum)
    images = keras.Input(IMAGE_SHAPE, name="images")
    x = ConcatenatedReLU(name="crelu0")(images)
    x = conv(x, b, 5, stride=2, padding=2, name="conv1")
    x = ConcatenatedReLU(name="crelu1")(batch_norm(x, *early, name="bn1"))
    x = conv(x, 2 * b, 3, stride=2, padding=1, name="conv2")
    x = ConcatenatedReLU(name="crelu2")(batch_norm(x, *early, name="bn2"))
    x = conv(x, 4 * b, 3, stride=2, padding=1, name="conv3_1")
    x = ConcatenatedReLU(name="crelu3")(batch_norm(x, *early, name="bn3_1"))
    x = conv(x, 8 * b, 3, padding=1, name="conv3_2")
    x = keras.layers.LeakyReLU(0.1, name="lrelu3")(batch_norm(x, bn_epsilon, bn_momentum, "bn3_2"))
    x = conv(x, 8 * b, 3, stride=2, padding=1, name="conv4_1")
    x = ConcatenatedReLU(name="crelu4")(batch_norm(x, bn_epsilon, bn_momentum, "bn4_1"))
    x = conv(x, 8 * b, 3, padding=1, name="conv4_2")
    h = keras.layers.LeakyReLU(0.1, name="lrelu4")(batch_norm(x, bn_epsilon, bn_momentum, "bn4_2"))
    latent_shape = (SPATIAL_SIZE, SPATIAL_SIZE, int(latent_channels))
    if latent == "dense":
        flat = keras.layers.Flatten(name="flatten")(h)
        outputs = [
            keras.layers.Reshape(latent_shape, name=f"{head}_reshape")(
                keras.layers.Dense(SPATIAL_SIZE * SPATIAL_SIZE * latent_channels,
                                   kernel_initializer=dense_init(), name=head)(flat))
            for head in ("mean", "log_var")
        ]
    else:
        outputs = ChannelRecurrentLatent(
            "inference", latent_channels=latent_channels, time_steps=time_steps,
            lstm_layers=lstm_layers, mean_head="conv", recurrent_batch_norm=True,
            synchronized_batch_norm=synchronized_batch_norm,
            name="recurrence")(h)
    return keras.Model(images, outputs, name=name or f"image64_{latent}_encoder")


def build_image64_decoder(latent="recurrent", base_channels=32, latent_channels=64, time_steps=8,
                          lstm_layers=2, bn_epsilon=1e-5, bn_momentum=0.9, name=None,
                          synchronized_batch_norm=False, upsampling="deconv"):
    """z `(batch, 4, 4, latent_channels)` -> images `(batch, 64, 64, 3)` in [-1, 1] (tanh).

    `"dense"`: Linear(4*4*Z -> 4*4*8b) -> reshape. `"recurrent"`: `ChannelRecurrentLatent` generation
    half (2-layer LSTM over T channel blocks, hidden `w*w*8b/T`), then conv3x3 (8b) -> BN; the model
    also returns `u` (before the learned bias), the MI target: outputs `[images, u]`.
    Then (`decoder` of the reference): deconv4x4/2 (8b) -> BN -> LReLU -> conv3x3 (8b) -> BN -> LReLU ->
    deconv (4b) -> BN -> LReLU -> deconv (2b) -> BN -> LReLU -> deconv (2b) -> BN -> LReLU ->
    conv3x3 (2b) -> BN -> LReLU -> conv3x3 (3) -> tanh; all LeakyReLU slopes 0.1.
    `upsampling="nearest"` makes each deconv a 2x nearest-neighbour upsampling followed by a
    conv3x3 of the same width (resize-convolution, Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"): a departure from the reference, for the face GANs' stripes
    (docs/faces.md, "The lattice").

    Args: as `build_image64_encoder`, and `upsampling`: "deconv" (default, the reference's 4x4
    stride-2 transposed convolutions) or "nearest".

    Returns:
        `keras.Model`: images, or `[images, u]` for `latent="recurrent"`.
    """
    _check_latent(latent, base_channels, latent_channels, time_steps)
    if upsampling not in DECODER_UPSAMPLINGS:
        raise ValueError(f"`upsampling` must be one of {DECODER_UPSAMPLINGS}, got {upsampling!r}.")
    b = int(base_channels)
    latent_shape = (SPATIAL_SIZE, SPATIAL_SIZE, int(latent_channels))
    z = keras.Input(latent_shape, name="z")

    def upsample(x, filters, padding, name):  # the reference's deconv, or a resize-convolution
        if upsampling == "deconv":
            return blocks.transposed_conv(x, filters, padding, name)
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=name + "_upsample")(x)
        return conv(x, filters, 3, padding=1, name=name)

    norm = (bn_epsilon, bn_momentum)
    batch_norm = functools.partial(blocks.batch_norm, synchronized=synchronized_batch_norm)
    if latent == "dense":
        x = keras.layers.Flatten(name="flatten")(z)
        x = keras.layers.Dense(SPATIAL_SIZE * SPATIAL_SIZE * 8 * b, kernel_initializer=dense_init(),
                               name="fc")(x)
        x = keras.layers.Reshape((SPATIAL_SIZE, SPATIAL_SIZE, 8 * b), name="fc_reshape")(x)
        u = None
    else:
        x, u = ChannelRecurrentLatent(
            "generation", latent_channels=latent_channels, time_steps=time_steps,
            hidden_channels=8 * b, lstm_layers=lstm_layers, return_u=True, name="recurrence")(z)
        x = batch_norm(conv(x, 8 * b, 3, padding=1, name="conv5"), *norm, name="bn5")
    lrelu = keras.layers.LeakyReLU
    x = lrelu(0.1, name="lrelu4_1")(batch_norm(upsample(x, 8 * b, 1, "deconv4_1"), *norm,
                                               name="bn4_1"))
    x = lrelu(0.1, name="lrelu4_2")(batch_norm(conv(x, 8 * b, 3, padding=1, name="conv4_2"), *norm,
                                               name="bn4_2"))
    x = lrelu(0.1, name="lrelu3")(batch_norm(upsample(x, 4 * b, 1, "deconv3"), *norm,
                                             name="bn3"))
    x = lrelu(0.1, name="lrelu2")(batch_norm(upsample(x, 2 * b, 1, "deconv2"), *norm,
                                             name="bn2"))
    x = lrelu(0.1, name="lrelu1")(batch_norm(upsample(x, 2 * b, 1, "deconv1"), *norm,
                                             name="bn1"))
    x = lrelu(0.1, name="lrelu0")(batch_norm(conv(x, 2 * b, 3, padding=1, name="conv0"), *norm,
                                             name="bn0"))
    images = keras.layers.Activation("tanh", name="tanh")(conv(x, 3, 3, padding=1, name="to_rgb"))
    outputs = images if u is None else [images, u]
    return keras.Model(z, outputs, name=name or f"image64_{latent}_decoder")


def build_image64_discriminator(base_channels=64, latent_channels=None, spectral_norm=True,
                                dropout_rate=0.5, minibatch_kernels=100, minibatch_kernel_dim=5,
                                minibatch_average=False, pooling="max", bn_epsilon=1e-5,
                                bn_momentum=0.9, name=None, synchronized_batch_norm=False):
    """A `SpectralDiscriminator` for 64x64x3 images, built.

    Args:
        base_channels: int, default 64 (the reference's `2 * -baseChannels`).
        latent_channels: int or None, default None. Set it (to `Z`) for the crVAE-GAN's MI head.
        spectral_norm, dropout_rate, minibatch_kernels, minibatch_kernel_dim, minibatch_average,
            pooling, bn_epsilon, bn_momentum, synchronized_batch_norm: see
            `keras_crvae.layers.SpectralDiscriminator`.
        name: str or None.

    Returns:
        `SpectralDiscriminator` (a layer): images -> logits `(batch, 1)` or `[logits, q (batch, 4, 4, Z)]`.
    """
    discriminator = SpectralDiscriminator(
        base_channels=base_channels, latent_channels=latent_channels, spectral_norm=spectral_norm,
        dropout_rate=dropout_rate, minibatch_kernels=minibatch_kernels,
        minibatch_kernel_dim=minibatch_kernel_dim, minibatch_average=minibatch_average,
        pooling=pooling, bn_epsilon=bn_epsilon, bn_momentum=bn_momentum,
        synchronized_batch_norm=synchronized_batch_norm, name=name or "discriminator")
    discriminator.build((None,) + IMAGE_SHAPE)
    return discriminator
