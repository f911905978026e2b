"""`keras.Model` subclasses of keras_crvae."""

from keras_crvae.models.factor_vae import FactorVAE, permute_dims, tc_discriminator_loss
from keras_crvae.models.gan import GAN
from keras_crvae.models.hierarchical import HierarchicalVAE
from keras_crvae.models.infogan import InfoGAN
from keras_crvae.models.two_stage import GammaVAE, PosteriorLatents, TwoStageVAE
from keras_crvae.models.vae import VAE, validate_images
from keras_crvae.models.vae_gan import CRVAEGAN, VAEGAN, discriminator_batch_masks
from keras_crvae.models.super_resolution import Stage2
from keras_crvae.models import stage2  # noqa: F401  (alias of super_resolution)

__all__ = [
    "CRVAEGAN",
    "FactorVAE",
    "GAN",
    "GammaVAE",
    "HierarchicalVAE",
    "InfoGAN",
    "PosteriorLatents",
    "Stage2",
    "TwoStageVAE",
    "VAE",
    "VAEGAN",
    "discriminator_batch_masks",
    "permute_dims",
    "tc_discriminator_loss",
    "validate_images",
]
