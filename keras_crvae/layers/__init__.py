"""Reusable Keras layers of keras_crvae; all are registered for `.keras` serialization."""

from keras_crvae.layers.activations import ConcatenatedReLU, ElementwiseBias
from keras_crvae.layers.adain import AdaptiveInstanceNormalization
from keras_crvae.layers.actnorm import ActNorm
from keras_crvae.layers.bijector import Bijector, BijectorChain
from keras_crvae.layers.coupling import AdditiveCoupling, AffineCoupling, checkerboard_mask
from keras_crvae.layers.diagonal_scaling import DiagonalScaling
from keras_crvae.layers.invertible_conv import InvertibleConv1x1
from keras_crvae.layers.latent_gaussian import LatentGaussian
from keras_crvae.layers.logit import LogitTransform
from keras_crvae.layers.multiscale import MultiScaleFlow
from keras_crvae.layers.priors import StandardGaussian, StandardLogistic
from keras_crvae.layers.reshapes import FlattenEvent, Squeeze
from keras_crvae.layers.channel_recurrent import (
    ChannelRecurrentLatent,
    blocks_to_channels,
    channels_to_blocks,
)
from keras_crvae.layers.constant_input import ConstantInput
from keras_crvae.layers.cropping import SliceCropping2D
from keras_crvae.layers.discriminator import (
    L2Normalize,
    MinibatchDiscrimination,
    SpectralDiscriminator,
    SpectralNormalization,
)
from keras_crvae.layers.folded_conv import FoldedConvolution
from keras_crvae.layers.equalized import EqualizedConv2D, EqualizedDense, check_counts
from keras_crvae.layers.mapping_network import MappingNetwork, normalize_second_moment
from keras_crvae.layers.noise_injection import NoiseInjection
from keras_crvae.layers.normalization import (
    BatchNormalization, average_batch_norm_statistics, batch_norm_layers)
from keras_crvae.layers.style_modulation import (
    ModulatedConv2D,
    ToRGB,
    modulated_convolution,
    upsample_2x,
)
from keras_crvae.layers.sampling import GaussianSampler
from keras_crvae.layers.gaussian_parameters import GaussianParameters
from keras_crvae.layers.iaf import InverseAutoregressiveFlow
from keras_crvae.layers.made import MADE
from keras_crvae.layers.planar_radial_flows import PlanarFlow, RadialFlow
from keras_crvae.layers.reversible import InvertibleFeatureExtractor, ReversibleStack
from keras_crvae.layers.gated_pixelcnn import GatedPixelCNNBlock, gated_activation
from keras_crvae.layers.masked_conv import MaskedConv2D, causal_conv_mask, shift_down
from keras_crvae.layers.transposed_conv import PhaseConv2DTranspose
from keras_crvae.layers.vector_quantizer import VectorQuantizer, codebook_statistics

__all__ = [
    "LatentGaussian",
    "AdaptiveInstanceNormalization",
    "ConstantInput",
    "EqualizedConv2D",
    "FoldedConvolution",
    "EqualizedDense",
    "MappingNetwork",
    "ModulatedConv2D",
    "NoiseInjection",
    "ToRGB",
    "check_counts",
    "modulated_convolution",
    "normalize_second_moment",
    "upsample_2x",
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "DiagonalScaling",
    "FlattenEvent",
    "InvertibleConv1x1",
    "LogitTransform",
    "MultiScaleFlow",
    "Squeeze",
    "StandardGaussian",
    "StandardLogistic",
    "checkerboard_mask",
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
    "GatedPixelCNNBlock",
    "MaskedConv2D",
    "MinibatchDiscrimination",
    "SpectralDiscriminator",
    "SpectralNormalization",
    "GaussianParameters",
    "PhaseConv2DTranspose",
    "PlanarFlow",
    "RadialFlow",
    "ReversibleStack",
    "SliceCropping2D",
    "VectorQuantizer",
    "blocks_to_channels",
    "causal_conv_mask",
    "channels_to_blocks",
    "codebook_statistics",
    "gated_activation",
    "shift_down",
]
