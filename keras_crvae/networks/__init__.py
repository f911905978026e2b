"""Functional builders of encoders and decoders per dataset and image size.

Files by dataset or architecture (`mnist`, `image64`, `mlp`, `sprites`, `dcgan`, `infogan`,
`resnet`, `stylegan`, `pixelcnn`, `vq_vae`, `two_stage`, `super_resolution`, `perceptual`); `blocks`
holds the pieces they share.
Imports: `keras_crvae.layers` only (layers -> networks -> models, docs/design.md). Aliases of old
module paths: `stage2` (= `super_resolution`); `two_stage` re-exports the InfoGAN and ResNet
builders that moved to `infogan` and `resnet`.
"""

from keras_crvae.networks.dcgan import build_dcgan_discriminator, build_dcgan_generator
from keras_crvae.networks.flows import (build_glow_flow, build_nice_flow, build_realnvp_flow,
                                        coupling_glow, coupling_mlp, coupling_resnet)
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
from keras_crvae.networks.pixelcnn import build_gated_pixelcnn, build_pixelcnn
from keras_crvae.networks.perceptual import build_perceptual_network, imagenet_preprocess
from keras_crvae.networks.super_resolution import (build_stage2_discriminator,
                                                   build_stage2_generator)
from keras_crvae.networks.vq_vae import build_vq_decoder, build_vq_encoder
from keras_crvae.networks.inference import InferenceNetwork, inference_network
from keras_crvae.networks.infogan import build_infogan_decoder, build_infogan_encoder
from keras_crvae.networks.resnet import build_resnet_decoder, build_resnet_encoder
from keras_crvae.networks.reversible import build_irevnet_classifier
from keras_crvae.networks.stylegan import (
    build_mapping_network,
    build_residual_discriminator,
    build_style_generator,
    build_synthesis_network,
    num_styled_layers,
)
from keras_crvae.networks.two_stage import (
    build_latent_decoder,
    build_latent_encoder,
    build_two_stage_decoder,
    build_two_stage_encoder,
)
from keras_crvae.networks import stage2  # noqa: F401  (alias of super_resolution)

__all__ = [
    "InferenceNetwork",
    "inference_network",
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
    "build_gated_pixelcnn",
    "build_pixelcnn",
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
    "build_vq_decoder",
    "build_vq_encoder",
    "pixel_mean_logits",
    "set_output_bias",
]
