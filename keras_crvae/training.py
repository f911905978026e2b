"""Alias module: the training jobs moved into `keras_crvae.jobs` (one skeleton, `jobs.base`).

    train, VAEJob                         -> keras_crvae.jobs.vae
    train_two_stage, fit_two_stage        -> keras_crvae.jobs.two_stage
    save_model, load_model                -> keras_crvae.io
    evaluate_model                        -> keras_crvae.evaluation.summary
    EpochHistory, read_history            -> keras_crvae.callbacks
    save_reconstruction_grid              -> keras_crvae.jobs.base
"""

from keras_crvae.callbacks import EpochHistory, read_history  # noqa: F401
from keras_crvae.evaluation.summary import evaluate_model  # noqa: F401
from keras_crvae.io import load_model, save_model  # noqa: F401
from keras_crvae.jobs.base import save_reconstruction_grid  # noqa: F401
from keras_crvae.jobs.base import worker_output_dir as _worker_output_dir  # noqa: F401
from keras_crvae.jobs.two_stage import (  # noqa: F401
    _print_two_stage_summary, _unit_images, fit_two_stage, train_two_stage)
from keras_crvae.jobs.vae import VAEJob, train  # noqa: F401
