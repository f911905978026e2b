"""Evaluation: importance-sampled NLL, ELBO, posterior diagnostics and the Frechet distance."""

from keras_crvae.evaluation.diagnostics import active_units, posterior_means
from keras_crvae.evaluation.fid import feature_statistics, fid, frechet_distance
from keras_crvae.evaluation.likelihood import LikelihoodEstimate, elbo, importance_sampled_nll
from keras_crvae.evaluation.inception import FIDInceptionV3

__all__ = [
    "LikelihoodEstimate",
    "active_units",
    "elbo",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "importance_sampled_nll",
    "posterior_means",
    "FIDInceptionV3",
]
