"""The training job behind `crvae train`: fit a preset, then write the model, images and metrics.

Outputs in `output_dir`:
    model.keras           the trained model (compiled, optimizer state included), written atomically
    samples.png           an 8x8 grid of prior samples (also refreshed after every epoch)
    reconstructions.png   evaluation images (odd rows) above their reconstructions (even rows)
    metrics.json          ELBO, importance-sampled NLL (with k and standard error), active units,
                          the training history, wall time and throughput
    history.csv           per-epoch training metrics
    backup/               `keras.callbacks.BackupAndRestore` state: a killed run resumes where it stopped

With `strategy="mirrored"` or `"multi_worker"` the model is built and compiled inside the strategy's
scope and `fit` splits every global batch (`batch_size`) over the replicas. Under
`MultiWorkerMirroredStrategy` every worker runs this whole job (training and evaluation take part in
collective ops); the chief writes to `output_dir`, worker `i` to `output_dir/workers/worker_<i>`
so that workers sharing a file system do not overwrite each other.
"""

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import data as crvae_data
from keras_crvae import distribute, evaluation, presets
from keras_crvae.io import atomic_path, save_image_grid, write_json


def save_model(model, path):
    """Saves `model` to a `.keras` file atomically."""
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"`path` must end in '.keras', got {path!r}.")
    with atomic_path(path) as temporary:
        model.save(temporary)
    return path


def load_model(path):
    """Loads a `.keras` model saved by this library, with a clear error for a missing file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at `model`={path!r}. Pass the path of a .keras file.")
    return keras.saving.load_model(path)


def evaluate_model(model, images, nll_samples=1000, nll_images=None, batch_size=100, seed=0,
                   verbose=1):
    """ELBO (k=1), importance-sampled NLL and active units of `model` on binarized `images`.

    Returns:
        JSON-ready dict.
    """
    nll_images = len(images) if nll_images is None else min(int(nll_images), len(images))
    bound = evaluation.elbo(model, images, batch_size=batch_size, seed=seed)
    nll = evaluation.importance_sampled_nll(
        model, images[:nll_images], num_samples=nll_samples, batch_size=batch_size, seed=seed,
        verbose=verbose,
    )
    units = evaluation.active_units(model, images)
    return {
        "elbo": bound["elbo"].to_dict(),
        "reconstruction": bound["reconstruction"].to_dict(),
        "kl": bound["kl"].to_dict(),
        "nll": nll.to_dict(),
        "active_units": {key: value for key, value in units.items() if key != "activity"},
    }


def _worker_output_dir(output_dir, strategy):
    """`output_dir` for the chief (and without multi-worker), `output_dir/workers/worker_<i>` else."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(strategy.extended, "should_checkpoint", True):
        return output_dir
    return os.path.join(output_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def train(preset="mnist_crvae_quickstart", train_images=None, eval_images=None,
          output_dir="crvae_run", epochs=None, batch_size=None, nll_samples=100, nll_images=500,
          seed=0, fresh=False, verbose=1, strategy="default", **overrides):
    """Trains a preset and writes the artifacts listed in the module docstring.

    Args:
        preset: str, a name from `keras_crvae.list_presets()`.
        train_images: array `(N, 28, 28[, 1])` grey levels, dynamically binarized; default: the
            embedded MNIST subset's 10,000 training images.
        eval_images: array of evaluation images (statically binarized with seed 0); default: the
            embedded subset's 1,000 test images.
        output_dir: str, default "crvae_run".
        epochs, batch_size: override the preset's values when given.
        nll_samples: int, default 100. `k` of the importance-sampled NLL.
        nll_images: int, default 500. Evaluation images used for the NLL.
        seed: int, default 0.
        fresh: bool, default False. Delete a previous run's backup instead of resuming it.
        verbose: int, default 1. Keras progress bars.
        strategy: str ("default", "mirrored", "multi_worker"; see `keras_crvae.distribute`) or a
            `tf.distribute.Strategy`, default "default". Create a multi-worker strategy before
            any TensorFlow op runs (a name here is resolved first thing).
        **overrides: preset overrides (see `keras_crvae.from_preset`).

    Returns:
        dict, the content of metrics.json.
    """
    if isinstance(strategy, str):  # first: multi-worker collectives must precede any TF op
        strategy = distribute.make_strategy(strategy)
    if train_images is None or eval_images is None:
        embedded = crvae_data.load_embedded_mnist()
        train_images = embedded["x_train"] if train_images is None else train_images
        eval_images = embedded["x_test"] if eval_images is None else eval_images
    train_images = crvae_data.to_unit_images(train_images, name="train_images")
    eval_images = crvae_data.static_binarize(eval_images, seed=0)
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if batch_size is not None:
        overrides["batch_size"] = int(batch_size)
    config = presets.get_preset(preset, **overrides)
    if config.training.epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {config.training.epochs}.")

    keras.utils.set_random_seed(seed)
    dataset = crvae_data.training_data(train_images, batch_size=config.training.batch_size,
                                       seed=seed)
    steps_per_epoch = len(train_images) // config.training.batch_size
    with strategy.scope():  # variables and optimizer slots are created per replica
        model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed, **overrides)

    output_dir = _worker_output_dir(output_dir, strategy)
    os.makedirs(output_dir, exist_ok=True)
    backup_dir = os.path.join(output_dir, "backup")
    if fresh and os.path.exists(backup_dir):
        shutil.rmtree(backup_dir)
    callbacks = [
        crvae_callbacks.NaNGuard(),
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
        crvae_callbacks.SampleGrid(os.path.join(output_dir, "samples.png"), seed=seed),
    ]
    start = time.time()
    history = model.fit(dataset, epochs=config.training.epochs, callbacks=callbacks, shuffle=False,
                        verbose=verbose)
    train_seconds = time.time() - start
    save_model(model, os.path.join(output_dir, "model.keras"))

    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=seed)),
                    os.path.join(output_dir, "samples.png"))
    originals = eval_images[:32]
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(originals))
    rows = np.concatenate([originals.reshape(4, 8, 28, 28, 1),
                           reconstructions.reshape(4, 8, 28, 28, 1)], axis=1)
    save_image_grid(rows.reshape(64, 28, 28, 1), os.path.join(output_dir, "reconstructions.png"))

    if verbose:
        print(f"Evaluating on {len(eval_images)} statically binarized images "
              f"(NLL: k={nll_samples} on {min(nll_images, len(eval_images))} images)...")
    metrics = evaluate_model(model, eval_images, nll_samples=nll_samples, nll_images=nll_images,
                             seed=seed, verbose=verbose)
    images_seen = steps_per_epoch * config.training.batch_size * len(history.epoch)
    metrics.update({
        "preset": preset,
        "config": {"network": config.network, "model": config.model,
                   "training": dataclasses.asdict(config.training)},
        "num_train_images": int(len(train_images)),
        "epochs_this_run": len(history.epoch),
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "backend": keras.backend.backend(),
        "replicas": int(strategy.num_replicas_in_sync),
        "paper_nll": config.paper_nll,
    })
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    if verbose:
        print(json.dumps({k: metrics[k] for k in ("elbo", "nll", "active_units")}, indent=2))
    return metrics

