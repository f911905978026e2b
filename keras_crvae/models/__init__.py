"""`keras.Model` subclasses of keras_crvae."""

from keras_crvae.models.vae import VAE, validate_images

__all__ = ["VAE", "validate_images"]
