"""The training job behind `crvae train`: fit a preset, then write the model, images and metrics.

Outputs in `output_dir`:
    model.keras           the trained model (compiled, optimizer state included), written atomically
    samples.png           an 8x8 grid of prior samples (also refreshed after every epoch)
    reconstructions.png   evaluation images (odd rows) above their reconstructions (even rows)
    metrics.json          ELBO, importance-sampled NLL (with k and standard error), active units,
                          the training history, wall time and throughput
    history.csv           per-epoch training metrics, one row per epoch (`EpochHistory`)
    run.json              the preset and settings of the run (`keras_crvae.runs`)
    backup/               `keras.callbacks.BackupAndRestore` state: a killed run resumes where it stopped

Running a job again on the same `output_dir` resumes a killed run, continues a finished one when
more epochs are asked for, says "already trained" otherwise, and refuses another preset's run or
changed settings (`keras_crvae.runs` has the rules; `fresh=True` starts over).

With `strategy="mirrored"` or `"multi_worker"` the model is built and compiled inside the strategy's
scope and `fit` splits every global batch (`batch_size`) over the replicas. Under
`MultiWorkerMirroredStrategy` every worker runs this whole job (training and evaluation take part in
collective ops); the chief writes to `output_dir`, worker `i` to `output_dir/workers/worker_<i>`
so that workers sharing a file system do not overwrite each other.
"""

import csv
import dataclasses
import os
import shutil
import time

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import data as crvae_data
from keras_crvae import distribute, evaluation, presets, runs
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
    import keras_crvae.models  # noqa: F401  (registers the library's classes for deserialization)

    return keras.saving.load_model(path)


def _say(message, verbose):
    """One status line between the progress bars (flushed, so it shows before the next bar)."""
    if verbose:
        print(message, flush=True)


def evaluate_model(model, images, nll_samples=1000, nll_images=None, batch_size=100, seed=0,
                   verbose=1):
    """ELBO (k=1), importance-sampled NLL and active units of `model` on binarized `images`.

    Returns:
        JSON-ready dict.
    """
    nll_images = len(images) if nll_images is None else min(int(nll_images), len(images))
    _say(f"  ELBO (k=1) on {len(images)} images ...", verbose)
    bound = evaluation.elbo(model, images, batch_size=batch_size, seed=seed)
    _say(f"  NLL: {nll_images} images x k={nll_samples} importance samples ...", verbose)
    nll = evaluation.importance_sampled_nll(
        model, images[:nll_images], num_samples=nll_samples, batch_size=batch_size, seed=seed,
        verbose=verbose,
    )
    _say(f"  active units on {len(images)} images ...", verbose)
    units = evaluation.active_units(model, images)
    return {
        "elbo": bound["elbo"].to_dict(),
        "reconstruction": bound["reconstruction"].to_dict(),
        "kl": bound["kl"].to_dict(),
        "nll": nll.to_dict(),
        "active_units": {key: value for key, value in units.items() if key != "activity"},
    }


class EpochHistory(keras.callbacks.Callback):
    """Writes per-epoch metrics to a CSV file with exactly one row per epoch.

    Unlike `keras.callbacks.CSVLogger` it adds no empty `val_*` columns, writes nothing before the
    first epoch ends (a run that fails at once leaves no empty file), and rows of a resumed or
    continued run replace those of the same epochs instead of repeating them. The file is rewritten
    atomically at every epoch's end (a few hundred rows at most).

    Args:
        path: str, the CSV file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        rows = [row for row in read_history(self.path) if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **{key: float(value) for key, value in (logs or {}).items()}})
        keys = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        with atomic_path(self.path) as temporary:
            with open(temporary, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys, restval="")
                writer.writeheader()
                writer.writerows(rows)


def read_history(path):
    """The rows of a history CSV as dicts (an empty list when there is no file)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("epoch", "").isdigit()]


def save_reconstruction_grid(model, images, path, columns=8):
    """Up to 32 `images` in rows of `columns`, each row followed by its reconstructions (fewer
    rows when there are fewer images; at least one image)."""
    count = min(32, len(images))
    count = count - count % columns if count >= columns else count
    columns = min(columns, count)
    originals = np.asarray(images[:count])
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(originals))
    shape = originals.shape[1:]
    rows = np.concatenate([originals.reshape((-1, columns) + shape),
                           reconstructions.reshape((-1, columns) + shape)], axis=1)
    save_image_grid(rows.reshape((-1,) + shape), path, columns=columns)


def _worker_output_dir(output_dir, strategy):
    """`output_dir` for the chief (and without multi-worker), `output_dir/workers/worker_<i>` else."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(strategy.extended, "should_checkpoint", True):
        return output_dir
    return os.path.join(output_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def train(preset="mnist_crvae_quickstart", train_images=None, eval_images=None,
          output_dir="crvae_run", epochs=None, batch_size=None, nll_samples=100, nll_images=500,
          seed=0, fresh=False, verbose=1, strategy="default", data_spec=None, eval_spec=None,
          **overrides):
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
        fresh: bool, default False. Delete a previous run in `output_dir` and start over; without
            it a killed run resumes and a finished one is kept or continued (`keras_crvae.runs`).
        verbose: int, default 1. Keras progress bars and status lines.
        strategy: str ("default", "mirrored", "multi_worker"; see `keras_crvae.distribute`) or a
            `tf.distribute.Strategy`, default "default". Create a multi-worker strategy before
            any TensorFlow op runs (a name here is resolved first thing).
        data_spec, eval_spec: str or None, where the images came from (recorded in run.json and
            printed).
        **overrides: preset overrides (see `keras_crvae.from_preset`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).

    Raises:
        keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
            preset's with other settings.
    """
    if isinstance(strategy, str):  # first: multi-worker collectives must precede any TF op
        strategy = distribute.make_strategy(strategy)
    if isinstance(presets.get_preset(preset), presets.TwoStagePreset):
        return train_two_stage(preset, train_images, eval_images, output_dir, epochs=epochs,
                               batch_size=batch_size, seed=seed, verbose=verbose, fresh=fresh,
                               **overrides)
    config, overrides = presets.preset_for_run(preset, epochs, batch_size, **overrides)
    output_dir = _worker_output_dir(output_dir, strategy)
    total_epochs = config.training.epochs
    settings = runs.run_settings(config)
    plan = runs.plan_run(output_dir, preset, settings, total_epochs, fresh=fresh)
    if plan.action == "done":
        _say(plan.message, verbose)
        return runs.finished_run_metrics(output_dir)
    if train_images is None or eval_images is None:
        embedded = crvae_data.load_embedded_mnist()
        train_images = embedded["x_train"] if train_images is None else train_images
        eval_images = embedded["x_test"] if eval_images is None else eval_images
        data_spec = data_spec or "embedded"
        eval_spec = eval_spec or "embedded:test"
    train_images = crvae_data.to_unit_images(train_images, name="train_images")
    eval_images = crvae_data.static_binarize(eval_images, seed=0)

    keras.utils.set_random_seed(seed)
    dataset = crvae_data.training_data(train_images, batch_size=config.training.batch_size,
                                       seed=seed)
    steps_per_epoch = len(train_images) // config.training.batch_size
    created_output_dir = not os.path.isdir(output_dir)
    if fresh:
        runs.clear_run(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    model_path = os.path.join(output_dir, "model.keras")
    with strategy.scope():  # variables and optimizer slots are created per replica
        if plan.action == "continue":  # the finished run's weights, optimizer state, LR schedule
            model = load_model(model_path)
        else:
            model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed,
                                        **overrides)
            # e.g. the IWAE MLPs' output bias; a resumed run's backup overwrites it anyway.
            presets.initialize_from_data(model, preset, train_images, **overrides)
    runs.write_run(output_dir, preset, settings, plan.initial_epoch, data=data_spec)

    backup_dir = os.path.join(output_dir, runs.BACKUP_DIR)
    callbacks = [
        crvae_callbacks.NaNGuard(),
        keras.callbacks.BackupAndRestore(backup_dir),
        EpochHistory(os.path.join(output_dir, "history.csv")),
        crvae_callbacks.SampleGrid(os.path.join(output_dir, "samples.png"), seed=seed),
    ]
    if plan.message:
        _say(plan.message, verbose)
    _say(f"Training {preset} on {len(train_images):,} images ({data_spec or 'arrays'}): "
         f"{runs.epochs_text(total_epochs)} of {steps_per_epoch} steps at batch "
         f"{config.training.batch_size}"
         f" -> {output_dir}/", verbose)
    start = time.time()
    history = runs.fit_keeping_only_resumable_state(
        model, output_dir, created_output_dir, x=dataset, epochs=total_epochs, callbacks=callbacks,
        shuffle=False, verbose=verbose,
        initial_epoch=plan.initial_epoch if plan.action == "continue" else 0)
    train_seconds = time.time() - start
    save_model(model, model_path)
    runs.write_run(output_dir, preset, settings, total_epochs, finished=True, data=data_spec)

    _say(f"Saved {model_path}; writing samples.png and reconstructions.png", verbose)
    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=seed)),
                    os.path.join(output_dir, "samples.png"))
    save_reconstruction_grid(model, eval_images, os.path.join(output_dir, "reconstructions.png"))

    _say(f"Evaluating on {len(eval_images)} statically binarized images of "
         f"{eval_spec or 'eval_images'}:", verbose)
    metrics = evaluate_model(model, eval_images, nll_samples=nll_samples, nll_images=nll_images,
                             seed=seed, verbose=verbose)
    images_seen = steps_per_epoch * config.training.batch_size * len(history.epoch)
    metrics.update({
        "preset": preset,
        "config": {"network": config.network, "model": config.model,
                   "training": dataclasses.asdict(config.training)},
        "num_train_images": int(len(train_images)),
        "epochs": total_epochs,
        "epochs_this_run": len(history.epoch),
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
        "history": {row_key: [float(row[row_key]) for row in
                              read_history(os.path.join(output_dir, "history.csv"))
                              if row.get(row_key, "") != ""]
                    for row_key in history.history},
        "backend": keras.backend.backend(),
        "replicas": int(strategy.num_replicas_in_sync),
        "paper_nll": config.paper_nll,
    })
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    if verbose:
        nll, bound = metrics["nll"], metrics["elbo"]
        print(f"NLL  {nll['mean']:.2f} +- {nll['standard_error']:.2f} nats (k={nll['num_samples']}, "
              f"{nll['num_images']} images; lower is better)\n"
              f"ELBO {bound['mean']:.2f} +- {bound['standard_error']:.2f} nats (higher is better)\n"
              f"Active units {metrics['active_units']['active_units']} / "
              f"{metrics['active_units']['num_latents']}", flush=True)
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
    _say(f"Stage 1 of 2: the image VAE, {runs.epochs_text(stage1_epochs)} on "
         f"{len(train_images):,} images", verbose)
    stage1 = model.stage1.fit(train_images, batch_size=batch_size, epochs=stage1_epochs,
                              shuffle=True, callbacks=[gamma_x, *stage1_callbacks],
                              verbose=verbose)
    if recalibrate_batch_norm:
        model.stage1.recalibrate_batch_norm(train_images, batch_size=batch_size)
    stage1_seconds = time.time() - start
    start = time.time()
    _say("Stage 2 of 2: encoding the images with the frozen stage 1, then the latent VAE, "
         f"{runs.epochs_text(stage2_epochs)}", verbose)
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
                    num_fid_samples=1000, seed=0, verbose=1, fresh=False, data_spec=None,
                    eval_spec=None, **overrides):
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
        fresh: bool, default False. Start over whatever `output_dir` holds. Without it a finished
            run with at least these epochs is kept ("already trained"), another preset's run or
            other settings are refused; a Two-Stage run does not resume mid-way (`runs`).
        data_spec, eval_spec: str or None, where the images came from (run.json).
        **overrides: preset overrides (stage-2 keys prefixed `stage2_`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).
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

    settings = runs.run_settings(config)
    # Stage 2's epochs count too: a run is "already trained" only if both stages have their epochs.
    total_epochs = runs.total_epochs(config)
    plan = runs.plan_run(output_dir, preset, settings, total_epochs, fresh=fresh, resumable=False)
    if plan.action == "done":
        _say(plan.message, verbose)
        return runs.finished_run_metrics(output_dir)
    if plan.message:
        _say(plan.message, verbose)

    keras.utils.set_random_seed(seed)
    batch = config.training.batch_size
    steps_per_epoch = len(train_images) // batch
    model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed, **overrides)
    created_output_dir = not os.path.isdir(output_dir)
    runs.clear_run(output_dir)  # a Two-Stage run always starts from epoch 0
    os.makedirs(output_dir, exist_ok=True)
    runs.write_run(output_dir, preset, settings, 0, data=data_spec)
    try:
        run = fit_two_stage(
            model, train_images, config.training.epochs, config.stage2_training.epochs,
            batch_size=batch, seed=seed, verbose=verbose,
            stage1_callbacks=[EpochHistory(os.path.join(output_dir, "history_stage1.csv"))],
            stage2_callbacks=[EpochHistory(os.path.join(output_dir, "history_stage2.csv"))],
        )
    except BaseException:
        if created_output_dir:  # nothing to resume: leave no half-made folder behind
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    save_model(model, os.path.join(output_dir, "model.keras"))
    runs.write_run(output_dir, preset, settings, total_epochs, finished=True, data=data_spec)
    _say(f"Saved {os.path.join(output_dir, 'model.keras')}; writing samples.png (stage 2), "
         "samples_stage1.png and reconstructions.png", verbose)

    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=2, seed=seed)),
                    os.path.join(output_dir, "samples.png"))
    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=1, seed=seed)),
                    os.path.join(output_dir, "samples_stage1.png"))
    save_reconstruction_grid(model, eval_images, os.path.join(output_dir, "reconstructions.png"))

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
    _say(f"Evaluating on {len(eval_images)} images of {eval_spec or 'eval_images'}: encoder "
         "variances, singular-value spectra"
         + (f", MNIST-classifier FID of {num_fid_samples} samples per stage" if num_fid_samples
            else ""), verbose)
    metrics.update(diagnostics.two_stage_report(
        model, eval_images, num_fid_samples=num_fid_samples, seed=seed))
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    if verbose:
        _print_two_stage_summary(metrics)
    return metrics


def _print_two_stage_summary(metrics):
    """A few lines of the Two-Stage metrics (the whole report is in metrics.json)."""
    def last_gamma(key):
        values = metrics.get(key) or []
        return f"{values[-1][1]:.4g}" if values and len(values[-1]) > 1 else "n/a"

    print(f"gamma_x {last_gamma('gamma_x')} (stage 1), gamma_z {last_gamma('gamma_z')} (stage 2) "
          "at the last epoch", flush=True)
    active = metrics.get("active_dimensions")
    if isinstance(active, dict) and "active_dimensions" in active:
        print(f"Active latent dimensions {active['active_dimensions']} / "
              f"{active.get('num_dimensions', '?')} (encoder variance below "
              f"{active.get('threshold', '?')})", flush=True)
    fid = metrics.get("fid")
    if isinstance(fid, dict):
        shown = ", ".join(f"{key} {value:.2f}" for key, value in fid.items()
                          if isinstance(value, (int, float)))
        print(f"FID (MNIST classifier features, lower is better): {shown}", flush=True)


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
