"""Evaluation: importance-sampled NLL, ELBO and posterior diagnostics."""

from keras_crvae.evaluation.diagnostics import active_units, posterior_means
from keras_crvae.evaluation.likelihood import LikelihoodEstimate, elbo, importance_sampled_nll

__all__ = [
    "LikelihoodEstimate",
    "active_units",
    "elbo",
    "importance_sampled_nll",
    "posterior_means",
]
