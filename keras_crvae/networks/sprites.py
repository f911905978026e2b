"""The 64x64 single-channel networks of the disentangling-VAE papers, and FactorVAE's discriminator.

Encoder and decoder (Kim & Mnih 2018, appendix Table 1, "2D Shapes (dSprites)"; Burgess et al. 2018,
appendix A.1 uses the same four stride-2 convolutions with 32 channels and two 256-unit layers):

    encoder  images (64, 64, 1) -> conv4x4/2(32) -> ReLU -> conv4x4/2(32) -> ReLU
             -> conv4x4/2(64) -> ReLU -> conv4x4/2(64) -> ReLU -> fc(128) -> ReLU -> fc(2 * latent)
             -> [mean, log_var]
    decoder  z (latent,) -> fc(128) -> ReLU -> fc(4*4*64) -> ReLU -> deconv4x4/2(64) -> ReLU
             -> deconv4x4/2(32) -> ReLU -> deconv4x4/2(32) -> ReLU -> deconv4x4/2(1) -> logits

`channels` and `dense_units` change the widths (the CPU study uses narrower ones); `padding="same"`
halves / doubles the side at every stride-2 layer (64 -> 32 -> 16 -> 8 -> 4 and back).

TC discriminator (Kim & Mnih 2018, appendix: "6 layers, 1000 hidden units per layer, leaky ReLU
0.2"): five hidden Dense(1000) + LeakyReLU(0.2) layers and one output layer; one logit
`log D(z) / (1 - D(z))` (the paper's two softmax logits carry the same information: their
difference is this logit).
"""

import keras

from keras_crvae.layers import GaussianParameters

PAPER_CHANNELS = (32, 32, 64, 64)
PAPER_DENSE_UNITS = (128,)


def _check_widths(channels, dense_units, latent_dim):
    channels, dense_units = tuple(int(c) for c in channels), tuple(int(u) for u in dense_units)
    if len(channels) != 4 or min(channels) < 1:
        raise ValueError(f"`channels` must be 4 positive ints (one per stride-2 layer, 64 -> 4); "
                         f"got {channels}.")
    if min(dense_units, default=1) < 1:
        raise ValueError(f"`dense_units` must be positive ints; got {dense_units}.")
    if int(latent_dim) < 1:
        raise ValueError(f"`latent_dim` must be >= 1, got {latent_dim}.")
    return channels, dense_units


def build_sprites_encoder(latent_dim=10, channels=PAPER_CHANNELS, dense_units=PAPER_DENSE_UNITS,
                          name="encoder"):
    """The papers' 64x64x1 encoder: images -> `[mean (B, latent_dim), log_var (B, latent_dim)]`.

    Args:
        latent_dim: int, default 10 (all three papers on dSprites).
        channels: 4 ints, default (32, 32, 64, 64) (Kim & Mnih 2018, Table 1).
        dense_units: ints, default (128,). Hidden fully connected layers after the convolutions
            (Burgess et al. 2018: (256, 256)).
        name: str.
    """
    channels, dense_units = _check_widths(channels, dense_units, latent_dim)
    images = keras.Input((64, 64, 1), name="images")
    x = images
    for index, width in enumerate(channels):
        x = keras.layers.Conv2D(width, 4, strides=2, padding="same", activation="relu",
                                name=f"conv{index + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{index + 1}")(x)
    x = keras.layers.Dense(2 * int(latent_dim), name="gaussian")(x)
    mean, log_var = GaussianParameters("log_var", name="posterior")(x)
    return keras.Model(images, [mean, log_var], name=name)


def build_sprites_decoder(latent_dim=10, channels=PAPER_CHANNELS, dense_units=PAPER_DENSE_UNITS,
                          name="decoder"):
    """The papers' 64x64x1 decoder: `z (B, latent_dim)` -> Bernoulli logits `(B, 64, 64, 1)`.

    Args: as `build_sprites_encoder` (the layers mirror the encoder's).
    """
    channels, dense_units = _check_widths(channels, dense_units, latent_dim)
    z = keras.Input((int(latent_dim),), name="z")
    x = z
    for index, units in enumerate(reversed(dense_units)):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{index + 1}")(x)
    x = keras.layers.Dense(4 * 4 * channels[-1], activation="relu", name="fc_grid")(x)
    x = keras.layers.Reshape((4, 4, channels[-1]), name="grid")(x)
    # Mirror of the encoder: the grid has channels[3]; deconvs of channels[2], [1], [0], then 1.
    for index, width in enumerate(reversed(channels[:-1])):
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu",
                                         name=f"deconv{index + 1}")(x)
    logits = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="logits")(x)
    return keras.Model(z, logits, name=name)


def build_tc_discriminator(latent_dim=10, hidden_units=1000, hidden_layers=5,
                           name="tc_discriminator"):
    """FactorVAE's discriminator: `z (B, latent_dim)` -> logit `(B, 1)` that z is from `q(z)`
    rather than from the product of its marginals.

    Args:
        latent_dim: int, default 10.
        hidden_units: int, default 1000 (Kim & Mnih 2018).
        hidden_layers: int, default 5 (with the output layer, the paper's 6 layers).
        name: str.
    """
    if int(hidden_units) < 1 or int(hidden_layers) < 0 or int(latent_dim) < 1:
        raise ValueError("`latent_dim` and `hidden_units` must be >= 1, `hidden_layers` >= 0; got "
                         f"{latent_dim}, {hidden_units}, {hidden_layers}.")
    z = keras.Input((int(latent_dim),), name="z")
    x = z
    for index in range(int(hidden_layers)):
        x = keras.layers.Dense(int(hidden_units), name=f"hidden{index + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{index + 1}")(x)
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(z, logit, name=name)
