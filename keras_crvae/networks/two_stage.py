"""Networks of the Two-Stage VAE (Dai & Wipf, ICLR 2019): both first-stage architectures and the
small dense second stage.

First stage, images `(B, H, W, C)` with `H = W` in {28, 32, 64} <-> latents `(B, latent_dim)`:

- "infogan": `networks/infogan.py` (`build_infogan_encoder` / `build_infogan_decoder`), the neutral
  architecture of Lucic et al. 2018 used for the paper's Table 1.
- "resnet": `networks/resnet.py` (`build_resnet_encoder` / `build_resnet_decoder`), the ScaleBlock
  network of the supplement's Figure 11.

`build_two_stage_encoder` / `build_two_stage_decoder` pick one by name. The builders of both are
re-exported here, where they lived before the redesign of issue 27, so old imports keep working.

Second stage, latents `(B, latent_dim)` <-> codes `(B, code_dim)` (`build_encoder2` /
`build_decoder2`): `depth` ReLU dense layers of `width` units (3 x 1024 for Table 1), then the
*input* concatenated to the last hidden layer (the reference's skip), then linear heads.
"""

import keras

from keras_crvae.layers import GaussianParameters
from keras_crvae.networks import blocks
# The first-stage builders live in files named by architecture; re-exported under their old home.
from keras_crvae.networks.infogan import build_infogan_decoder, build_infogan_encoder
from keras_crvae.networks.resnet import build_resnet_decoder, build_resnet_encoder

ARCHITECTURES = ("infogan", "resnet")
BN_EPSILON = blocks.TWO_STAGE_BN_EPSILON
BN_MOMENTUM = blocks.TWO_STAGE_BN_MOMENTUM
# The old private names of the shared argument checks, kept for old imports.
_validate_image_shape = blocks.check_square_image_shape
_validate_positive = blocks.check_positive


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
    blocks.check_positive(latent_dim=latent_dim, code_dim=code_dim, depth=depth, width=width)
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
    blocks.check_positive(latent_dim=latent_dim, code_dim=code_dim, depth=depth, width=width)
    u = keras.Input((code_dim,), name="u")
    x = _dense_trunk(u, depth, width, "")
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(x)
    return keras.Model(u, z_mean, name=name)
