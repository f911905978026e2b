"""`keras.Model` subclasses of keras_crvae, one file per family.

`base` holds what the families share (float32 boundary, `run_network`, input and config checks,
`EncoderDecoderAPI`), `autoregressive` what the PixelCNN-based ones share (value likelihoods, the
compiled sampler); each family file imports it, `keras_crvae.losses`, `layers` and `networks`,
never a sibling family file except to subclass it (`FactorVAE(VAE)`, `InfoGAN(GAN)`); layers ->
networks -> models (docs/design.md). `stage2` is an alias of `super_resolution` (the Stage2
super-resolution GAN).
"""

from keras_crvae.models.factor_vae import FactorVAE, permute_dims, tc_discriminator_loss
from keras_crvae.models.flows import FlowModel
from keras_crvae.models.gan import GAN
from keras_crvae.models.hierarchical import HierarchicalVAE
from keras_crvae.models.infogan import InfoGAN
from keras_crvae.models.autoregressive import AutoregressiveSampler
from keras_crvae.models.pixelcnn import PixelCNN
from keras_crvae.models.two_stage import GammaVAE, PosteriorLatents, TwoStageVAE
from keras_crvae.models.vae import VAE, validate_images
from keras_crvae.models.vq_vae import VQVAE
from keras_crvae.models.vlae import VLAE
from keras_crvae.models.vae_gan import CRVAEGAN, VAEGAN, discriminator_batch_masks
from keras_crvae.models.super_resolution import Stage2
from keras_crvae.models.stylegan import StyleGAN, mixed_styles, truncate
from keras_crvae.models import stage2  # noqa: F401  (alias of super_resolution)

__all__ = [
    "CRVAEGAN",
    "FactorVAE",
    "FlowModel",
    "GAN",
    "GammaVAE",
    "HierarchicalVAE",
    "InfoGAN",
    "AutoregressiveSampler",
    "PixelCNN",
    "PosteriorLatents",
    "Stage2",
    "StyleGAN",
    "TwoStageVAE",
    "VAE",
    "VAEGAN",
    "VLAE",
    "VQVAE",
    "discriminator_batch_masks",
    "mixed_styles",
    "permute_dims",
    "tc_discriminator_loss",
    "truncate",
    "validate_images",
]
