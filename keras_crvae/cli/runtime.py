"""What the commands share once their checks have passed: loading the library, the model, the data.

`load_library` is the one place where the `crvae` command imports TensorFlow (see
`keras_crvae.cli` for why nothing before it does); the commands' `run` functions call it first.
"""

import logging
import os
import sys
import warnings

import numpy as np

from keras_crvae.cli.flags import FLAGS, UsageError, flag_text

# The attribute `crvae_cli` (the console script's entry module) sets on the `keras_crvae` package
# object it placed in `sys.modules` without running `keras_crvae/__init__.py`.
DEFERRED_INIT = "_crvae_cli_deferred_init"


def say(message):
    """A line of progress on stdout, flushed at once (a training command is silent for minutes)."""
    print(message, flush=True)


def load_library(verbose):
    """Imports TensorFlow, Keras and the whole library, with TF's C++ start-up log hidden.

    `TF_CPP_MIN_LOG_LEVEL` does not silence the lines TensorFlow's C++ logging prints while the
    shared libraries load (oneDNN, CUDA drivers, CPU features), so stderr is pointed at /dev/null
    at the file-descriptor level for the imports only. If `crvae_cli` deferred the package's
    `__init__`, it runs here, so that from now on `keras_crvae` is the package a user imports
    (every Keras class registered, every public name bound).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if verbose or "tensorflow" in sys.modules:
        _import_library()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    try:
        _import_library()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # (no-op without TensorFlow: JAX)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")


def _import_library():
    """Runs a deferred `keras_crvae/__init__.py`, then imports what the commands use."""
    import keras_crvae

    if vars(keras_crvae).pop(DEFERRED_INIT, False):
        keras_crvae.__spec__.loader.exec_module(keras_crvae)
    import keras_crvae.evaluation  # noqa: F401
    import keras_crvae.models  # noqa: F401
    import keras_crvae.training  # noqa: F401


def load_model():
    """The model of --model (after `load_library`), or a UsageError naming the flag."""
    from keras_crvae import training

    try:
        return training.load_model(FLAGS.model)
    except (ValueError, TypeError, KeyError, OSError) as error:
        if FLAGS.verbose:
            raise
        raise UsageError(f"{flag_text('model')}: cannot be loaded as a keras_crvae model "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:160]})") from None


def model_kind(model):
    """The kind of a loaded model: "gan" (VAE-GAN family), "two_stage", "vae" (a model with a
    likelihood and an encoder), "likelihood" (an exact-likelihood model of the likelihood job:
    `log_likelihood(images)` and `data_kind`) or its class name."""
    from keras_crvae import models

    if isinstance(model, models.VAEGAN):
        return "gan"
    if isinstance(model, models.TwoStageVAE):
        return "two_stage"
    if callable(getattr(model, "log_likelihood", None)) and callable(getattr(model, "encode",
                                                                             None)):
        return "vae"
    if callable(getattr(model, "log_likelihood", None)) and hasattr(model, "data_kind"):
        return "likelihood"
    return type(model).__name__


def load_mnist_spec(spec, split="test"):
    """Images of an 'embedded[:test]' or 'tfds:NAME' spec (NPZ files are read by the checks)."""
    from keras_crvae import data

    if spec.startswith("tfds:"):
        dataset = data.tfds_mnist(spec.split(":", 1)[1], split=split, data_dir=FLAGS.data_dir,
                                  batch_size=1000, binarize="none", shuffle=False)
        return np.concatenate([batch.numpy() for batch in dataset])
    return data.load_images(spec)
