"""Reusable Keras layers of keras_crvae; all are registered for `.keras` serialization."""

from keras_crvae.layers.activations import ConcatenatedReLU, ElementwiseBias
from keras_crvae.layers.bijector import Bijector, BijectorChain
from keras_crvae.layers.channel_recurrent import (
    ChannelRecurrentLatent,
    blocks_to_channels,
    channels_to_blocks,
)
from keras_crvae.layers.cropping import SliceCropping2D
from keras_crvae.layers.discriminator import (
    L2Normalize,
    MinibatchDiscrimination,
    SpectralDiscriminator,
    SpectralNormalization,
)
from keras_crvae.layers.normalization import BatchNormalization
from keras_crvae.layers.sampling import GaussianSampler
from keras_crvae.layers.gaussian_parameters import GaussianParameters
from keras_crvae.layers.gated_pixelcnn import GatedPixelCNNBlock, gated_activation
from keras_crvae.layers.masked_conv import MaskedConv2D, causal_conv_mask, shift_down
from keras_crvae.layers.transposed_conv import PhaseConv2DTranspose
from keras_crvae.layers.vector_quantizer import VectorQuantizer, codebook_statistics

__all__ = [
    "BatchNormalization",
    "Bijector",
    "BijectorChain",
    "ChannelRecurrentLatent",
    "ConcatenatedReLU",
    "ElementwiseBias",
    "GaussianSampler",
    "GatedPixelCNNBlock",
    "L2Normalize",
    "MaskedConv2D",
    "MinibatchDiscrimination",
    "SpectralDiscriminator",
    "SpectralNormalization",
    "GaussianParameters",
    "PhaseConv2DTranspose",
    "SliceCropping2D",
    "VectorQuantizer",
    "blocks_to_channels",
    "causal_conv_mask",
    "channels_to_blocks",
    "codebook_statistics",
    "gated_activation",
    "shift_down",
]
