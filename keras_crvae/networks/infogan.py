"""The InfoGAN-style ("neutral") encoder and decoder of the Two-Stage VAE's first stage (Dai & Wipf,
ICLR 2019), images `(B, H, W, C)` with `H = W` divisible by 4 <-> latents `(B, latent_dim)`:

the neutral architecture of Lucic et al. 2018 used for the paper's Table 1 (supplement section 6;
`Infogan` class of `network/two_stage_vae_model.py`, GitHub daib13/TwoStageVAE):
encoder `conv4x4/2(64) -> LReLU(0.2) -> conv4x4/2(128) -> BN -> LReLU -> fc(1024) -> BN -> LReLU ->
fc(2*latent)`, every conv/fc spectrally normalised (one power iteration, as the reference);
decoder `fc(1024) -> BN -> ReLU -> fc(128*(H/4)^2) -> BN -> ReLU -> deconv4x4/2(64) -> BN -> ReLU
-> deconv4x4/2(C) -> sigmoid`. Weights start at N(0, 0.02) as in the reference's `util.py`.

Not the InfoGAN *model* (`models/infogan.py`, the lecture's InfoGAN); only its network shape.
BatchNorm follows the reference's `batch_norm`: epsilon 1e-5, moving-average decay 0.999
(`networks.blocks`).

Imports: `keras_crvae.layers` and `networks.blocks` (layers -> networks -> models, docs/design.md).
`networks.two_stage` dispatches to these builders by architecture name.
"""

import keras

from keras_crvae.layers import GaussianParameters
from keras_crvae.networks import blocks


def _normal_init(stddev=0.02):
    return keras.initializers.RandomNormal(stddev=stddev)


def _truncated_init(stddev=0.02):
    return keras.initializers.TruncatedNormal(stddev=stddev)


def _maybe_spectral(layer, spectral_norm):
    if not spectral_norm:
        return layer
    return keras.layers.SpectralNormalization(layer, power_iterations=1, name=layer.name + "_sn")


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
    image_shape = blocks.check_square_image_shape(image_shape)
    blocks.check_positive(latent_dim=latent_dim)
    images = keras.Input(image_shape, name="images")
    conv1 = keras.layers.Conv2D(64, 4, strides=2, padding="same", name="conv1",
                                kernel_initializer=_truncated_init())
    x = _maybe_spectral(conv1, spectral_norm)(images)
    x = keras.layers.LeakyReLU(0.2, name="lrelu1")(x)
    conv2 = keras.layers.Conv2D(128, 4, strides=2, padding="same", name="conv2",
                                kernel_initializer=_truncated_init())
    x = _maybe_spectral(conv2, spectral_norm)(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu2")(blocks.two_stage_batch_norm(x, "bn2"))
    x = keras.layers.Flatten(name="flatten")(x)
    fc3 = keras.layers.Dense(1024, kernel_initializer=_normal_init(), name="fc3")
    x = _maybe_spectral(fc3, spectral_norm)(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu3")(blocks.two_stage_batch_norm(x, "bn3"))
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
    image_shape = blocks.check_square_image_shape(image_shape)
    blocks.check_positive(latent_dim=latent_dim)
    quarter = image_shape[0] // 4
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(1024, kernel_initializer=_normal_init(), name="fc1")(z)
    x = keras.layers.ReLU(name="relu1")(blocks.two_stage_batch_norm(x, "bn1"))
    x = keras.layers.Dense(128 * quarter * quarter, kernel_initializer=_normal_init(), name="fc2")(x)
    x = keras.layers.ReLU(name="relu2")(blocks.two_stage_batch_norm(x, "bn2"))
    x = keras.layers.Reshape((quarter, quarter, 128), name="to_map")(x)
    x = keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same", name="deconv3",
                                     kernel_initializer=_normal_init())(x)
    x = keras.layers.ReLU(name="relu3")(blocks.two_stage_batch_norm(x, "bn3"))
    x = keras.layers.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same",
                                     name="deconv4", kernel_initializer=_normal_init())(x)
    pixels = keras.layers.Activation("sigmoid", name="pixel_mean")(x)
    return keras.Model(z, pixels, name=name)
