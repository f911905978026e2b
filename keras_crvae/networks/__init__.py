"""Functional builders of encoders and decoders per dataset and image size."""

from keras_crvae.networks.image64 import (
    build_image64_decoder,
    build_image64_discriminator,
    build_image64_encoder,
)
from keras_crvae.networks.mnist import build_mnist_decoder, build_mnist_encoder

__all__ = [
    "build_image64_decoder",
    "build_image64_discriminator",
    "build_image64_encoder",
    "build_mnist_decoder",
    "build_mnist_encoder",
]
