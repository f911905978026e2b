"""Functional builders of encoders and decoders per dataset and image size."""

from keras_crvae.networks.mnist import build_mnist_decoder, build_mnist_encoder

__all__ = ["build_mnist_decoder", "build_mnist_encoder"]
