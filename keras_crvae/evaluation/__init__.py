"""Evaluation: importance-sampled NLL, ELBO, posterior diagnostics, the Frechet distance (with the
MNIST-classifier features for digits), the Two-Stage VAE diagnostics and the disentanglement
metrics (`disentanglement`: beta-VAE metric, FactorVAE metric, MIG)."""

from keras_crvae.evaluation.diagnostics import (
    active_units,
    posterior_means,
    posterior_means_per_layer,
)
from keras_crvae.evaluation.fid import feature_statistics, fid, frechet_distance
from keras_crvae.evaluation.likelihood import (
    LikelihoodEstimate,
    elbo,
    importance_sampled_nll,
    paired_difference,
)
from keras_crvae.evaluation.inception import FIDInceptionV3
from keras_crvae.evaluation.sampling import sample_batches
from keras_crvae.evaluation.mnist_features import (
    build_mnist_classifier,
    mnist_feature_extractor,
    mnist_fid,
)
from keras_crvae.evaluation import disentanglement, two_stage_diagnostics

__all__ = [
    "LikelihoodEstimate",
    "active_units",
    "elbo",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "importance_sampled_nll",
    "paired_difference",
    "posterior_means",
    "posterior_means_per_layer",
    "sample_batches",
    "FIDInceptionV3",
    "build_mnist_classifier",
    "mnist_feature_extractor",
    "mnist_fid",
    "two_stage_diagnostics",
    "disentanglement",
]
