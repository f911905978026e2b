"""`keras.Model` subclasses of keras_crvae."""

from keras_crvae.models.vae import VAE, validate_images
from keras_crvae.models.two_stage import GammaVAE, PosteriorLatents, TwoStageVAE

__all__ = ["VAE", "validate_images", "GammaVAE", "PosteriorLatents", "TwoStageVAE"]
