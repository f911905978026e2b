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
    if isinstance(presets.get_preset(preset), presets.TwoStagePreset):
        return train_two_stage(preset, train_images, eval_images, output_dir, epochs=epochs,
                               batch_size=batch_size, seed=seed, verbose=verbose, **overrides)
    if train_images is None or eval_images is None:
        embedded = crvae_data.load_embedded_mnist()
        train_images = embedded["x_train"] if train_images is None else train_images
        eval_images = embedded["x_test"] if eval_images is None else eval_images
    train_images = crvae_data.to_unit_images(train_images, name="train_images")
    eval_images = crvae_data.static_binarize(eval_images, seed=0)
    config, overrides = presets.preset_for_run(preset, epochs, batch_size, **overrides)

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



# =====================================================================================================
# Two-Stage VAE (Dai & Wipf 2019): `crvae train --preset=mnist_two_stage`
# =====================================================================================================


def fit_two_stage(model, train_images, stage1_epochs, stage2_epochs, batch_size=100, seed=0,
                  stage1_callbacks=(), stage2_callbacks=(), recalibrate_batch_norm=True, verbose=1):
    """Trains stage 1 on `train_images`, then stage 2 on latents from the frozen stage-1 posterior.

    Args:
        model: compiled `keras_crvae.models.TwoStageVAE` (both stages compiled).
        train_images: float array `(N, *image_shape)` in [0, 1].
        stage1_epochs, stage2_epochs: int.
        batch_size: int, default 100 (the paper's).
        seed: int, default 0. Shuffling and stage-2 noise.
        stage1_callbacks, stage2_callbacks: extra Keras callbacks.
        recalibrate_batch_norm: bool, default True. Before extracting the stage-2 data, re-estimate
            stage 1's BatchNorm moving statistics on `train_images` (`GammaVAE.recalibrate_batch_norm`;
            not in the reference, whose 0.999 decay needs hundreds of epochs to forget its start).
        verbose: int, Keras progress bars.

    Returns:
        dict: `stage1_history`, `stage2_history` (Keras history dicts), `gamma_x` and `gamma_z`
        (lists of `(epoch, gamma)`), `stage1_seconds`, `stage2_seconds`.
    """
    gamma_x = crvae_callbacks.GammaHistory(verbose=bool(verbose))
    gamma_z = crvae_callbacks.GammaHistory(verbose=bool(verbose))
    start = time.time()
    stage1 = model.stage1.fit(train_images, batch_size=batch_size, epochs=stage1_epochs,
                              shuffle=True, callbacks=[gamma_x, *stage1_callbacks],
                              verbose=verbose)
    if recalibrate_batch_norm:
        model.stage1.recalibrate_batch_norm(train_images, batch_size=batch_size)
    stage1_seconds = time.time() - start
    start = time.time()
    latents = model.stage2_data(train_images, batch_size=batch_size, seed=seed)
    stage2 = model.stage2.fit(latents, epochs=stage2_epochs, callbacks=[gamma_z, *stage2_callbacks],
                              verbose=verbose)
    return {
        "stage1_history": {k: [float(v) for v in vs] for k, vs in stage1.history.items()},
        "stage2_history": {k: [float(v) for v in vs] for k, vs in stage2.history.items()},
        "gamma_x": gamma_x.epochs,
        "gamma_z": gamma_z.epochs,
        "stage1_seconds": round(stage1_seconds, 2),
        "stage2_seconds": round(time.time() - start, 2),
    }


def train_two_stage(preset="mnist_two_stage", train_images=None, eval_images=None,
                    output_dir="crvae_run", epochs=None, stage2_epochs=None, batch_size=None,
                    num_fid_samples=1000, seed=0, verbose=1, **overrides):
    """Trains both stages of a Two-Stage VAE preset and writes its artifacts.

    Outputs in `output_dir`: `model.keras`, `samples.png` (stage-2 samples), `samples_stage1.png`,
    `reconstructions.png`, `history_stage1.csv`, `history_stage2.csv`, `metrics.json` (gamma per
    epoch of both stages, active latent dimensions, singular-value spectra, and, for 28x28x1 images,
    the MNIST-classifier FID of stage-1 and stage-2 samples against `eval_images`).

    Args:
        preset: str, a `TwoStagePreset` name.
        train_images: array `(N, H, W[, C])` grey levels / uint8; default: the embedded MNIST subset.
        eval_images: array of evaluation images; default: the embedded subset's test images.
        output_dir: str, default "crvae_run".
        epochs, stage2_epochs, batch_size: override the preset's values when given.
        num_fid_samples: int, default 1000. Samples per stage for the FID (0 skips it).
        seed: int, default 0.
        verbose: int, default 1.
        **overrides: preset overrides (stage-2 keys prefixed `stage2_`).

    Returns:
        dict, the content of metrics.json.
    """
    from keras_crvae.evaluation import two_stage_diagnostics as diagnostics

    if train_images is None or eval_images is None:
        embedded = crvae_data.load_embedded_mnist()
        train_images = embedded["x_train"] if train_images is None else train_images
        eval_images = embedded["x_test"] if eval_images is None else eval_images
    train_images = _unit_images(train_images, "train_images")
    eval_images = _unit_images(eval_images, "eval_images")
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if stage2_epochs is not None:
        overrides["stage2_epochs"] = int(stage2_epochs)
    if batch_size is not None:
        overrides["batch_size"] = overrides["stage2_batch_size"] = int(batch_size)
    config = presets.get_preset(preset, **overrides)
    if not isinstance(config, presets.TwoStagePreset):
        raise ValueError(f"`preset` {preset!r} is not a Two-Stage VAE preset.")
    if config.training.epochs < 1 or config.stage2_training.epochs < 1:
        raise ValueError("`epochs` and `stage2_epochs` must be >= 1.")
    if tuple(train_images.shape[1:]) != tuple(config.network["image_shape"]):
        raise ValueError(f"`train_images` have shape {train_images.shape[1:]} but preset {preset!r} "
                         f"expects {tuple(config.network['image_shape'])}.")

    keras.utils.set_random_seed(seed)
    batch = config.training.batch_size
    steps_per_epoch = len(train_images) // batch
    model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed, **overrides)
    os.makedirs(output_dir, exist_ok=True)
    run = fit_two_stage(
        model, train_images, config.training.epochs, config.stage2_training.epochs,
        batch_size=batch, seed=seed, verbose=verbose,
        stage1_callbacks=[keras.callbacks.CSVLogger(os.path.join(output_dir, "history_stage1.csv"))],
        stage2_callbacks=[keras.callbacks.CSVLogger(os.path.join(output_dir, "history_stage2.csv"))],
    )
    save_model(model, os.path.join(output_dir, "model.keras"))

    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=2, seed=seed)),
                    os.path.join(output_dir, "samples.png"))
    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=1, seed=seed)),
                    os.path.join(output_dir, "samples_stage1.png"))
    originals = eval_images[:32]
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(originals))
    shape = originals.shape[1:]
    rows = np.concatenate([originals.reshape((4, 8) + shape),
                           reconstructions.reshape((4, 8) + shape)], axis=1)
    save_image_grid(rows.reshape((64,) + shape), os.path.join(output_dir, "reconstructions.png"))

    metrics = {
        "preset": preset,
        "config": {"network": config.network, "model": config.model,
                   "training": dataclasses.asdict(config.training),
                   "stage2_network": config.stage2_network,
                   "stage2_training": dataclasses.asdict(config.stage2_training)},
        "num_train_images": int(len(train_images)),
        "backend": keras.backend.backend(),
        "paper_fid": config.paper_fid,
        **run,
    }
    metrics.update(diagnostics.two_stage_report(
        model, eval_images, num_fid_samples=num_fid_samples, seed=seed))
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    if verbose:
        summary = {k: metrics.get(k) for k in ("gamma_x", "gamma_z", "active_dimensions", "fid")}
        print(json.dumps(summary, indent=2, default=str))
    return metrics


def _unit_images(images, name):
    """float32 images in [0, 1] with a channel axis: MNIST via `data.to_unit_images`, uint8 colour
    images divided by 255."""
    images = np.asarray(images)
    if images.ndim == 3 or images.shape[1:] == (28, 28, 1):
        return crvae_data.to_unit_images(images, name=name)
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    validate = __import__("keras_crvae.models", fromlist=["validate_images"]).validate_images
    validate(images, images.shape[1:], name=name)
    return images.astype("float32")
