"""keras_crvae: channel-recurrent VAEs (crVAE, crVAE-GAN) and the Two-Stage VAE in Keras 3."""

__version__ = "0.1.0"
