"""Alias module: the sprites job moved to `keras_crvae.jobs.disentangling`; its `TimeBudget` is
`keras_crvae.jobs.longrun.TimeBudget` (`per_step=True` for the old step-end budget)."""

from keras_crvae.jobs.disentangling import (  # noqa: F401
    DisentanglingJob, evaluate_sprites_model, is_sprites_preset, train_sprites)
from keras_crvae.jobs.longrun import TimeBudget as _TimeBudget


def TimeBudget(seconds):  # noqa: N802  (the old class's name)
    """The old `sprites_training.TimeBudget(seconds)`: a `longrun.TimeBudget` that stops `fit` at
    the end of the first step after `seconds` and counts the steps (`steps`)."""
    return _TimeBudget(seconds, per_step=True)
