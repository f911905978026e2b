"""The training job of the GAN presets (`examples/train_celeba.py`, `crvae train`): the 64x64 VAE-GAN /
crVAE-GAN and the standalone GANs of `presets.gans` (DCGAN, WGAN, WGAN-GP, InfoGAN; 28x28 MNIST or
64x64 colour images).

Outputs in `output_dir`:
    model.keras                     the trained model with both optimizers' states, written atomically
    samples.png, samples_epoch{N}.png                  prior samples of fixed latents, every epoch
    reconstructions.png, reconstructions_epoch{N}.png  fixed real images above their reconstructions
                                    (models with an encoder)
    metrics.json                    the history, final metrics, wall time and images/s
    history.csv                     per-epoch metrics, one row per epoch
    run.json                        the preset and settings of the run (`keras_crvae.runs`)
    tensorboard/                    scalars (`keras.callbacks.TensorBoard`) and image grids
    backup/                         `keras.callbacks.BackupAndRestore`: a killed run resumes at the
                                    epoch it stopped in (`resume=False` starts afresh); removed
                                    when the run completes

Rerunning on the same `output_dir` follows `keras_crvae.runs`: a killed run resumes, a finished one
is "already trained" unless more epochs are asked for (then it continues from its model.keras), and
another preset's run or changed settings are refused.

The learning rate follows the reference's step decay (halved every `lr_decay_every_epochs` epochs)
through the optimizers' schedules, so a resumed run continues the schedule where it stopped.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import presets, runs
from keras_crvae.distribute import make_strategy
from keras_crvae.io import write_json
from keras_crvae.training import EpochHistory, load_model, read_history, save_model


def _count_batches(dataset):
    import tensorflow as tf

    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The dataset repeats forever: pass `steps_per_epoch`.")
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        cardinality = sum(1 for _ in dataset)
    if cardinality < 1:
        raise ValueError("The dataset yields no full batch: use more images or a smaller "
                         "`batch_size`.")
    return cardinality


def digit_dataset(images, batch_size, seed=0, repeat=False, shuffle=True, drop_remainder=True):
    """MNIST digits (uint8 0..255 or floats in [0, 1], `(N, 28, 28[, 1])`) as float32 batches
    `(batch_size, 28, 28, 1)` in [-1, 1], the range of the GANs' tanh generators."""
    import tensorflow as tf

    from keras_crvae import data

    images = data.to_unit_images(images) * 2.0 - 1.0
    if drop_remainder and len(images) < batch_size:
        raise ValueError(f"{len(images)} images make no full batch of {batch_size}.")
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        dataset = dataset.shuffle(min(len(images), 60000), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)


def train_gan(preset="celeba_crvae_gan", *, npz=None, image_dir=None, tfds_name=None, data_dir=None,
              arrays=None, output_dir="crvae_gan_run", epochs=None, steps_per_epoch=None,
              batch_size=None, resume=True, strategy="default", seed=0, verbose=1, run_eagerly=False,
              callbacks=(), data_spec=None, **overrides):
    """Trains a GAN preset on 64x64 images and writes the artifacts listed in the module docstring.

    Exactly one image source: `npz` ("PATH" or "PATH:KEY"), `image_dir`, `tfds_name` (+ `data_dir`)
    or `arrays`; see `keras_crvae.data.image_dataset` (centre crop, resize to 64x64, [-1, 1], the
    dataset's augmentation). The MNIST presets (`mnist_dcgan`, ...) take `arrays` of digits
    (`digit_dataset`).

    Args:
        preset: str, a GAN preset (`celeba_crvae_gan`, `celeba_vae_gan`, `birds_*`, `lsun_*`,
            `mnist_dcgan`, `mnist_wgan`, `mnist_wgan_gp`, `mnist_infogan`, `celeba_dcgan`).
        npz, image_dir, tfds_name, data_dir, arrays: the image source.
        output_dir: str, default "crvae_gan_run".
        epochs, batch_size: override the preset's values when given.
        steps_per_epoch: int or None. Default: one pass over the data (the dataset then repeats).
        resume: bool, default True. Continue a killed run from `output_dir/backup`.
        strategy: str ("default", "mirrored", "multi_worker"; `keras_crvae.distribute`) or a
            `tf.distribute.Strategy`, default "default".
        seed: int, default 0.
        verbose: int, default 1. Keras progress bars.
        callbacks: extra `keras.callbacks.Callback`s, run after the job's own (so a checkpoint
            exists when they run at an epoch's end).
        run_eagerly: bool, default False. Run `train_step` eagerly (debugging; slow per step but
            skips tracing, which dominates runs of a few steps).
        data_spec: str or None, where the images came from (run.json).
        **overrides: preset overrides, e.g. `base_channels=8`, `learning_rate=1e-4`.

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).

    Raises:
        keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
            preset's with other settings.
    """
    from keras_crvae import data
    from keras_crvae.training import _worker_output_dir

    if isinstance(strategy, str):  # first: multi-worker collectives must precede any TF op
        strategy = make_strategy(strategy)
    if not presets.is_gan_preset(preset):
        raise ValueError(f"`preset`={preset!r} is not a GAN preset; GAN presets: "
                         f"{[p for p in presets.list_presets() if presets.is_gan_preset(p)]}.")
    config, overrides = presets.preset_for_run(preset, epochs, batch_size, **overrides)
    multiple, reason = presets.gan_batch_multiple(config)
    if config.training.batch_size < multiple or config.training.batch_size % multiple:
        raise ValueError(f"`batch_size` must be a positive multiple of {multiple} ({reason}); got "
                         f"{config.training.batch_size}.")

    distribution = strategy
    output_dir = _worker_output_dir(output_dir, distribution)  # only the chief writes output_dir
    settings = runs.run_settings(config)
    plan = runs.plan_run(output_dir, preset, settings, config.training.epochs, fresh=not resume)
    if plan.action == "done":
        if verbose:
            print(plan.message, flush=True)
        metrics_path = os.path.join(output_dir, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as handle:
                return json.load(handle)
        return {}

    keras.utils.set_random_seed(seed)
    source = dict(npz=npz, image_dir=image_dir, tfds_name=tfds_name, data_dir=data_dir,
                  arrays=arrays,
                  # Stage2 presets train on images at their output size; Stage1 ones at 64x64.
                  image_size=int(config.network.get("output_size", 64)))
    batch_size = config.training.batch_size
    if presets.is_digit_gan(config):
        if arrays is None or any(v is not None for v in (npz, image_dir, tfds_name)):
            raise ValueError(f"{preset} trains on MNIST digits: pass them as `arrays`.")
        dataset = digit_dataset(arrays, batch_size, seed=seed, repeat=True)
        grid_images = digit_dataset(arrays[:32], 32, shuffle=False, drop_remainder=False)
    else:
        one_pass = data.image_dataset(**source, batch_size=batch_size, seed=seed,
                                      drop_remainder=True)
        dataset = data.image_dataset(**source, batch_size=batch_size, seed=seed, repeat=True,
                                     drop_remainder=True)
        grid_images = data.image_dataset(**source, batch_size=32, augment=None, shuffle=False,
                                         drop_remainder=False)
    if steps_per_epoch is None:
        steps_per_epoch = len(arrays) // batch_size if presets.is_digit_gan(config) else \
            _count_batches(one_pass)
    elif int(steps_per_epoch) < 1:
        raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps_per_epoch}.")
    steps_per_epoch = int(steps_per_epoch)
    grid_images = next(iter(grid_images))
    grid_images = np.asarray(grid_images)[: 8 * (min(32, len(grid_images)) // 8)]

    model_path = os.path.join(output_dir, "model.keras")
    with distribution.scope():
        if plan.action == "continue":  # the finished run's weights and both optimizers' states
            model = load_model(model_path)
        else:
            model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed,
                                        **overrides)
    model.run_eagerly = bool(run_eagerly)

    created_output_dir = not os.path.isdir(output_dir)
    if not resume:
        runs.clear_run(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    runs.write_run(output_dir, preset, settings, plan.initial_epoch, data=data_spec)
    backup_dir = os.path.join(output_dir, runs.BACKUP_DIR)
    extra_callbacks = list(callbacks)
    callbacks = [
        crvae_callbacks.NaNGuard(),
        keras.callbacks.BackupAndRestore(backup_dir),
        EpochHistory(os.path.join(output_dir, "history.csv")),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard"), update_freq="epoch"),
    ]
    if len(grid_images):
        callbacks.append(crvae_callbacks.ImageGrids(
            output_dir, grid_images, seed=seed, log_dir=os.path.join(output_dir, "tensorboard")))
    callbacks += extra_callbacks
    if verbose:
        if plan.message:
            print(plan.message, flush=True)
        print(f"Training {preset} on {data_spec or 'the given images'}: "
              f"{runs.epochs_text(config.training.epochs)} of {steps_per_epoch} steps at batch "
              f"{config.training.batch_size} -> {output_dir}/", flush=True)
    start = time.time()
    history = runs.fit_keeping_only_resumable_state(
        model, output_dir, created_output_dir, x=dataset, epochs=config.training.epochs,
        steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False, verbose=verbose,
        initial_epoch=plan.initial_epoch if plan.action == "continue" else 0)
    train_seconds = time.time() - start
    save_model(model, model_path)
    runs.write_run(output_dir, preset, settings, config.training.epochs, finished=True,
                   data=data_spec)

    images_seen = steps_per_epoch * config.training.batch_size * len(history.epoch)
    metrics = {
        "preset": preset,
        "config": {"network": config.network, "model": config.model,
                   "training": dataclasses.asdict(config.training)},
        "steps_per_epoch": steps_per_epoch,
        "epochs_this_run": len(history.epoch),
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
        "final": {key: float(values[-1]) for key, values in history.history.items() if values},
        "history": {key: [float(row[key]) for row in
                          read_history(os.path.join(output_dir, "history.csv"))
                          if row.get(key, "") != ""] for key in history.history},
        "strategy": type(distribution).__name__,
        "num_replicas": int(distribution.num_replicas_in_sync),
        "backend": keras.backend.backend(),
    }
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    return metrics
