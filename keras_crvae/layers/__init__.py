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
from keras_crvae.layers.iaf import InverseAutoregressiveFlow
from keras_crvae.layers.made import MADE
from keras_crvae.layers.planar_radial_flows import PlanarFlow, RadialFlow
from keras_crvae.layers.reversible import InvertibleFeatureExtractor, ReversibleStack
from keras_crvae.layers.transposed_conv import PhaseConv2DTranspose

__all__ = [
    "BatchNormalization",
    "Bijector",
    "BijectorChain",
    "ChannelRecurrentLatent",
    "ConcatenatedReLU",
    "ElementwiseBias",
    "GaussianSampler",
    "InverseAutoregressiveFlow",
    "InvertibleFeatureExtractor",
    "L2Normalize",
    "MADE",
    "MinibatchDiscrimination",
    "SpectralDiscriminator",
    "SpectralNormalization",
    "GaussianParameters",
    "PhaseConv2DTranspose",
    "PlanarFlow",
    "RadialFlow",
    "ReversibleStack",
    "SliceCropping2D",
    "blocks_to_channels",
    "channels_to_blocks",
]
