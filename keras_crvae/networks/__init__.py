"""Functional builders of encoders and decoders per dataset and image size."""

from keras_crvae.networks.dcgan import build_dcgan_discriminator, build_dcgan_generator
from keras_crvae.networks.image64 import (
    build_image64_decoder,
    build_image64_discriminator,
    build_image64_encoder,
)
from keras_crvae.networks.mlp import (
    build_mlp_bernoulli_decoder,
    build_mlp_gaussian,
    pixel_mean_logits,
    set_output_bias,
)
from keras_crvae.networks.mnist import build_mnist_decoder, build_mnist_encoder
from keras_crvae.networks.sprites import (
    build_sprites_decoder,
    build_sprites_encoder,
    build_tc_discriminator,
)
from keras_crvae.networks.perceptual import build_perceptual_network, imagenet_preprocess
from keras_crvae.networks.stage2 import build_stage2_discriminator, build_stage2_generator
from keras_crvae.networks.two_stage import (
    build_infogan_decoder,
    build_infogan_encoder,
    build_latent_decoder,
    build_latent_encoder,
    build_resnet_decoder,
    build_resnet_encoder,
    build_two_stage_decoder,
    build_two_stage_encoder,
)

__all__ = [
    "build_dcgan_discriminator",
    "build_dcgan_generator",
    "build_image64_decoder",
    "build_image64_discriminator",
    "build_image64_encoder",
    "build_mlp_bernoulli_decoder",
    "build_mlp_gaussian",
    "build_mnist_decoder",
    "build_mnist_encoder",
    "build_sprites_decoder",
    "build_sprites_encoder",
    "build_tc_discriminator",
    "build_perceptual_network",
    "build_stage2_discriminator",
    "build_stage2_generator",
    "imagenet_preprocess",
    "build_infogan_decoder",
    "build_infogan_encoder",
    "build_latent_decoder",
    "build_latent_encoder",
    "build_resnet_decoder",
    "build_resnet_encoder",
    "build_two_stage_decoder",
    "build_two_stage_encoder",
    "pixel_mean_logits",
    "set_output_bias",
]
