"""The GAN job (`keras_crvae.jobs.base.TrainingJob`; `examples/train_celeba.py`, `crvae train`): the
64x64 VAE-GAN / crVAE-GAN and the standalone GANs of `presets.gans` (DCGAN, WGAN, WGAN-GP, InfoGAN; 28x28 MNIST or
64x64 colour images).

Outputs in `output_dir`:
    model.keras                     the trained model with both optimizers' states, written atomically
    samples.png, samples_epoch{N}.png                  prior samples of fixed latents, every epoch
    reconstructions.png, reconstructions_epoch{N}.png  fixed real images above their reconstructions
                                    (models with an encoder)
    metrics.json                    the history, final metrics, wall time and images/s
    history.csv                     per-epoch metrics, one row per epoch
    run.json                        the preset and settings of the run (`keras_crvae.jobs.runs`)
    tensorboard/                    scalars (`keras.callbacks.TensorBoard`) and image grids
    backup/                         `keras.callbacks.BackupAndRestore`: a killed or stopped run
                                    resumes at the epoch it stopped in (`fresh=True` starts
                                    afresh); removed when the run completes

Rerunning on the same `output_dir` follows `keras_crvae.jobs.runs`: a killed run resumes, a finished one
is "already trained" unless more epochs are asked for (then it continues from its model.keras), and
another preset's run or changed settings are refused. `stop_after_minutes=N` stops at the first
epoch end after N minutes (SIGTERM does the same), leaving the run resumable.

The learning rate follows the reference's step decay (halved every `lr_decay_every_epochs` epochs)
through the optimizers' schedules, so a resumed run continues the schedule where it stopped.
"""

import dataclasses
import os

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import presets
from keras_crvae.jobs import base, job_for


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


class GANJob(base.TrainingJob):
    """`train_gan`'s job (see the module docstring). Extra arguments: the image source (`npz`,
    `image_dir`, `tfds_name` + `data_dir`, `arrays`), `steps_per_epoch`, `run_eagerly` and
    `extra_callbacks`."""

    name = "gan"

    def __init__(self, preset, output_dir, source=None, steps_per_epoch=None, run_eagerly=False,
                 extra_callbacks=(), **kwargs):
        super().__init__(preset, output_dir, **kwargs)
        self.source = dict(source or {})
        self.requested_steps = steps_per_epoch
        self.run_eagerly = bool(run_eagerly)
        self.extra_callbacks = list(extra_callbacks)

    def configure(self):
        if job_for(self.preset).name != "gan":
            raise ValueError(f"`preset`={self.preset!r} is not a GAN preset; GAN presets: "
                             f"{[p for p in presets.list_presets() if job_for(p).name == 'gan']}.")
        config, overrides = super().configure()
        multiple, reason = presets.gan_batch_multiple(config)
        if config.training.batch_size < multiple or config.training.batch_size % multiple:
            raise ValueError(f"`batch_size` must be a positive multiple of {multiple} ({reason}); "
                             f"got {config.training.batch_size}.")
        return config, overrides

    def prepare(self):
        from keras_crvae import data

        config, seed, arrays = self.config, self.seed, self.source.get("arrays")
        # Stage2 presets train on images at their output size; Stage1 ones at 64x64.
        source = dict(self.source, image_size=int(config.network.get("output_size", 64)))
        batch_size = config.training.batch_size
        if presets.is_digit_gan(config):
            if arrays is None or any(source.get(k) is not None
                                     for k in ("npz", "image_dir", "tfds_name")):
                raise ValueError(f"{self.preset} trains on MNIST digits: pass them as `arrays`.")
            self.dataset = digit_dataset(arrays, batch_size, seed=seed, repeat=True)
            grid_images = digit_dataset(arrays[:32], 32, shuffle=False, drop_remainder=False)
        else:
            one_pass = data.image_dataset(**source, batch_size=batch_size, seed=seed,
                                          drop_remainder=True)
            self.dataset = data.image_dataset(**source, batch_size=batch_size, seed=seed,
                                              repeat=True, drop_remainder=True)
            grid_images = data.image_dataset(**source, batch_size=32, augment=None, shuffle=False,
                                             drop_remainder=False)
        steps = self.requested_steps
        if steps is None:
            steps = len(arrays) // batch_size if presets.is_digit_gan(config) else \
                _count_batches(one_pass)
        elif int(steps) < 1:
            raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps}.")
        self.steps_per_epoch = int(steps)
        grid_images = next(iter(grid_images))
        self.grid_images = np.asarray(grid_images)[: 8 * (min(32, len(grid_images)) // 8)]

    def build_model(self):
        model = super().build_model()
        model.run_eagerly = self.run_eagerly
        return model

    def callbacks(self):
        log_dir = os.path.join(self.output_dir, "tensorboard")
        callbacks = super().callbacks() + [
            keras.callbacks.TensorBoard(log_dir, update_freq="epoch")]
        if len(self.grid_images):
            callbacks.append(crvae_callbacks.ImageGrids(self.output_dir, self.grid_images,
                                                        seed=self.seed, log_dir=log_dir))
        return callbacks + self.extra_callbacks  # after the job's own: a checkpoint exists

    def fit(self, model, callbacks, initial_epoch):
        model.run_eagerly = self.run_eagerly  # also for a continued (loaded) model
        return model.fit(self.dataset, epochs=self.total_epochs,
                         steps_per_epoch=self.steps_per_epoch, callbacks=callbacks,
                         shuffle=False, verbose=self.verbose, initial_epoch=initial_epoch)

    def report(self, model, history, train_seconds):
        config = self.config
        images_seen = self.steps_per_epoch * config.training.batch_size * len(history.epoch)
        return {
            "preset": self.preset,
            "config": {"network": config.network, "model": config.model,
                       "training": dataclasses.asdict(config.training)},
            "steps_per_epoch": self.steps_per_epoch,
            "epochs_this_run": len(history.epoch),
            "train_seconds": round(train_seconds, 2),
            "train_images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
            "final": {key: float(values[-1]) for key, values in history.history.items()
                      if values},
            "history": base.history_from_csv(self.output_dir, history.history),
            "strategy": type(self.strategy).__name__,
            "num_replicas": int(self.strategy.num_replicas_in_sync),
            "backend": keras.backend.backend(),
        }


def train_gan(preset="celeba_crvae_gan", *, npz=None, image_dir=None, tfds_name=None, data_dir=None,
              arrays=None, output_dir="crvae_gan_run", epochs=None, steps_per_epoch=None,
              batch_size=None, fresh=False, resume=None, strategy="default", seed=0, verbose=1,
              run_eagerly=False, callbacks=(), data_spec=None, stop_after_minutes=None,
              light_state_dtype=None, **overrides):
    """Trains a GAN preset and writes the artifacts listed in the module docstring.

    Exactly one image source: `npz` ("PATH" or "PATH:KEY"), `image_dir`, `tfds_name` (+ `data_dir`)
    or `arrays`; see `keras_crvae.data.image_dataset` (centre crop, resize to 64x64, [-1, 1], the
    dataset's augmentation). The MNIST presets (`mnist_dcgan`, ...) take `arrays` of digits
    (`digit_dataset`).

    Args:
        preset: str, a GAN preset (`celeba_crvae_gan`, `celeba_vae_gan`, `birds_*`, `lsun_*`,
            `mnist_dcgan`, `mnist_wgan`, `mnist_wgan_gp`, `mnist_infogan`, `celeba_dcgan`, the
            StyleGAN2 presets `mnist_stylegan2`, `celeba32_stylegan2`, `celeba_stylegan2`, the
            Stage2 presets).
        npz, image_dir, tfds_name, data_dir, arrays: the image source.
        output_dir: str, default "crvae_gan_run".
        epochs, batch_size: override the preset's values when given.
        steps_per_epoch: int or None. Default: one pass over the data (the dataset then repeats).
        fresh: bool, default False. Start over whatever `output_dir` holds; without it a killed
            or stopped run resumes from `output_dir/backup` (as in every job).
        resume: bool or None, the old spelling: `resume=False` means `fresh=True`.
        strategy: str ("default", "mirrored", "multi_worker"; `keras_crvae.distribute`) or a
            `tf.distribute.Strategy`, default "default".
        seed: int, default 0.
        verbose: int, default 1. Keras progress bars.
        run_eagerly: bool, default False. Run `train_step` eagerly (debugging; slow per step but
            skips tracing, which dominates runs of a few steps).
        callbacks: extra `keras.callbacks.Callback`s, run after the job's own (so a checkpoint
            exists when they run at an epoch's end).
        data_spec: str or None, where the images came from (run.json).
        stop_after_minutes: float or None. Stop at the first epoch end after this many minutes
            and keep the run resumable; SIGTERM stops the same way.
        light_state_dtype: None, "float16" or "float32". A stretch stopped by the time budget or
            SIGTERM also writes the light state (weights in that dtype + resume.json, small
            enough to commit), which a machine without `backup/` resumes from
            (`keras_crvae.jobs.base.TrainingJob`).
        **overrides: preset overrides, e.g. `base_channels=8`, `learning_rate=1e-4`.

    Returns and raises what `keras_crvae.jobs.base.TrainingJob.run` does: the metrics.json dict
    (a `stopped_result` when stopped early); `RunConflictError` for another run in `output_dir`.
    """
    source = dict(npz=npz, image_dir=image_dir, tfds_name=tfds_name, data_dir=data_dir,
                  arrays=arrays)
    return GANJob(preset, output_dir, source=source, steps_per_epoch=steps_per_epoch,
                  run_eagerly=run_eagerly, extra_callbacks=callbacks, epochs=epochs,
                  batch_size=batch_size, seed=seed, fresh=base.fresh_from_resume(fresh, resume),
                  verbose=verbose, strategy=strategy, stop_after_minutes=stop_after_minutes,
                  data_spec=data_spec, light_state_dtype=light_state_dtype,
                  overrides=overrides).run()
