"""The `vq_vae` job: trains a VQ-VAE, then its PixelCNN prior on the training images' code maps
(van den Oord et al. 2017, section 3.1), on `keras_crvae.jobs.base.TrainingJob`.

    stage 1   `VQVAE.fit` on the images in [0, 1] (the same images every epoch, reshuffled):
              reconstruction nats, MSE, commitment, perplexity and codebook usage every epoch
              (history.csv)
    stage 2   the code maps of the training images (`VQVAE.code_dataset`) -> a categorical Gated
              PixelCNN prior (`presets.vq_vae.build_prior_from_preset`), `prior_epochs` epochs
              (history_prior.csv); attached with `set_prior`, saved inside model.keras

Outputs in `output_dir`: model.keras (VQ-VAE + prior), samples.png (prior -> decoder, 64 images),
reconstructions.png, metrics.json (evaluation images: reconstruction nats and MSE, the codebook's
perplexity and usage over all evaluation images, the prior's NLL of their code maps in nats and
bits per code, the histories), history.csv, history_prior.csv, run.json, sessions.json.

Resumable in both stages (`crvae train --stop_after_minutes=N`, SIGTERM, a queue's deadline): the
VQ-VAE's epochs back up into `backup/` (the skeleton's), the prior's into `backup_prior/`, each with
its optimizer state. A run stopped during the prior resumes with the VQ-VAE restored from
`backup/` (its last epoch: nothing of it is retrained) and the prior from `backup_prior/`.
With `light_state_dtype`, a stopped stretch also writes the light states (weights only, small
enough to commit): the VQ-VAE's (`resume_weights.npz` + `resume.json`, the skeleton's) and, when
the prior stopped, the prior's (`resume_prior_weights.npz` + `resume_prior.json`); a machine
without the backups resumes both stages from them (fresh optimizer moments, schedules continued).
The stretch's record in `sessions.json` counts the epochs and seconds of both stages; every row of
history.csv and history_prior.csv has `train_hours` (both stages' hours so far).
"""

import dataclasses
import math
import os
import shutil

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import data as crvae_data
from keras_crvae import models, presets
from keras_crvae.io import save_image_grid
from keras_crvae.jobs import base, longrun, runs
from keras_crvae.jobs.likelihood import ShuffledBatches, evaluate_log_likelihood
from keras_crvae.presets.vq_vae import build_prior_from_preset

EVALUATION_BATCH_SIZE = 100
PRIOR_BACKUP_DIR = "backup_prior"
PRIOR_HISTORY = "history_prior.csv"
# The prior's light state (`longrun.save_job_light_state` names) beside the VQ-VAE's.
PRIOR_LIGHT_STATE = runs.PRIOR_LIGHT_STATE


def unit_images(images, image_shape, name):
    """Images as float32 `(N, *image_shape)` in [0, 1] (uint8 or [0, 1] input, channel optional)."""
    images = np.asarray(images)
    images = images.astype("float32") / 255.0 if images.dtype == np.uint8 else (
        images.astype("float32"))
    if images.ndim == len(image_shape) and image_shape[-1] == 1:
        images = images[..., None]
    if tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"`{name}` must have shape (N, {', '.join(map(str, image_shape))}); got "
                         f"{images.shape}.")
    return images


class VQVAEJob(base.TrainingJob):
    """`train_vq_vae`'s job (module docstring)."""

    name = "vq_vae"
    takes_strategy = False

    def __init__(self, preset, output_dir, train_images=None, eval_images=None, eval_spec=None,
                 **kwargs):
        super().__init__(preset, output_dir, **kwargs)
        self.train_images, self.eval_images, self.eval_spec = train_images, eval_images, eval_spec
        self.prior_history = None

    def prepare(self):
        image_shape = tuple(self.config.network["image_shape"])
        if self.train_images is None or self.eval_images is None:
            if image_shape != (28, 28, 1):
                raise ValueError(f"Preset {self.preset} trains on {image_shape} images: pass "
                                 "`train_images` and `eval_images` (e.g. the 64x64 faces).")
            embedded = crvae_data.load_embedded_mnist()
            self.train_images = embedded["x_train"] if self.train_images is None else (
                self.train_images)
            self.eval_images = embedded["x_test"] if self.eval_images is None else (
                self.eval_images)
            self.data_spec, self.eval_spec = (self.data_spec or "embedded",
                                              self.eval_spec or "embedded:test")
        self.train_images = unit_images(self.train_images, image_shape, "train_images")
        self.eval_images = unit_images(self.eval_images, image_shape, "eval_images")
        batch = self.config.training.batch_size
        self.dataset = ShuffledBatches(self.train_images, batch, seed=self.seed)
        self.steps_per_epoch = len(self.train_images) // batch

    def fit(self, model, callbacks, initial_epoch):
        history = model.fit(self.dataset, epochs=self.total_epochs, callbacks=callbacks,
                            shuffle=False, verbose=self.verbose, initial_epoch=initial_epoch)
        budget = next(item for item in callbacks if isinstance(item, longrun.TimeBudget))
        if budget.reached:  # stopped during the VQ-VAE: the skeleton keeps backup/
            return history
        codes = model.code_dataset(self.train_images)
        prior = build_prior_from_preset(self.config, model.code_map_shape)
        epochs = int(self.config.model["prior_epochs"])
        prior_backup = os.path.join(self.output_dir, PRIOR_BACKUP_DIR)
        initial_epoch, offsets = self._resume_prior(prior, prior_backup)
        base.say(f"Training the PixelCNN prior on {len(codes):,} code maps "
                 f"{model.code_map_shape}: {epochs} epochs", self.verbose)
        # The same budget (SIGTERM, minutes, a queue's deadline) and machine-hours timer.
        prior_callbacks = [crvae_callbacks.NaNGuard(),
                           crvae_callbacks.AtomicBackupAndRestore(prior_backup,
                                                                  delete_checkpoint=False)]
        if offsets:  # after the restore, before the step is traced
            prior_callbacks.append(crvae_callbacks.ScheduleOffsets(offsets, label="prior: "))
        self.prior_history = prior.fit(
            ShuffledBatches(codes, self.config.training.batch_size, seed=self.seed),
            epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=self.verbose,
            callbacks=prior_callbacks + [
                self.timer,
                crvae_callbacks.EpochHistory(os.path.join(self.output_dir, PRIOR_HISTORY)),
                budget])
        if budget.reached:  # the prior stopped: the VQ-VAE's backup/ holds its last epoch
            if self.light_state_dtype:
                longrun.save_job_light_state(prior, self.output_dir, budget.epochs_done,
                                             self.light_state_dtype, offsets,
                                             names=PRIOR_LIGHT_STATE)
            base.say(f"(The VQ-VAE is trained; its prior stopped after epoch "
                     f"{budget.epochs_done} of {epochs}, kept in {prior_backup}/.)", self.verbose)
            budget.epochs_done = self.total_epochs
            return history
        longrun.remove_light_state(self.output_dir, names=PRIOR_LIGHT_STATE)
        shutil.rmtree(prior_backup, ignore_errors=True)
        # An uncompiled model around the trained network: the saved VQ-VAE carries the prior's
        # weights, not its optimizer state (train it further with `prior.compile(...)`).
        model.set_prior(models.PixelCNN(prior.network, data_kind="categorical", name="prior"))
        return history

    def _resume_prior(self, prior, prior_backup):
        """`(initial_epoch, schedule offsets)` of the prior's stretch, as the skeleton's
        `_resume_schedule_offsets` does for the VQ-VAE (`longrun.resume_light_state`): with
        `backup_prior/` the backup restores the prior (epoch 0 here) under the offsets its light
        state says were in force; without it, the prior's light state (`PRIOR_LIGHT_STATE`, e.g.
        committed from another machine) gives its weights, its epoch and its optimizer's steps;
        else a new prior."""
        has_backup = os.path.isdir(prior_backup)
        epochs_done, offsets = longrun.resume_light_state(prior, self.output_dir, has_backup,
                                                          names=PRIOR_LIGHT_STATE)
        if epochs_done is None or has_backup:
            return 0, offsets
        base.say(f"The prior resumes at epoch {epochs_done} from its light state "
                 f"({PRIOR_LIGHT_STATE[0]}: fresh optimizer moments).", self.verbose)
        return epochs_done, offsets

    def report(self, model, history, train_seconds):
        output_dir, config = self.output_dir, self.config
        save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=self.seed)),
                        os.path.join(output_dir, "samples.png"))
        base.save_reconstruction_grid(model, self.eval_images,
                                      os.path.join(output_dir, "reconstructions.png"))
        images = self.eval_images
        scores = model.evaluate(images, batch_size=EVALUATION_BATCH_SIZE, verbose=0,
                                return_dict=True)
        perplexity, usage = model.code_usage(images)
        codes = model.code_dataset(images)
        prior_scores = evaluate_log_likelihood(model.prior, codes)
        num_codes = int(np.prod(codes.shape[1:]))
        return {
            "preset": self.preset,
            "reconstruction_nats": float(scores["reconstruction"]),
            "mse_per_pixel": float(scores["mse"]),
            "commitment": float(scores["commitment"]),
            "codebook": {"num_codes": model.num_codes, "perplexity": perplexity,
                         "usage": usage, "num_images": int(len(images))},
            "prior_nll": prior_scores["nll"],
            "prior_bits_per_code": prior_scores["nll"]["mean"] / (num_codes * math.log(2.0)),
            "config": {"network": config.network, "model": config.model,
                       "training": dataclasses.asdict(config.training)},
            "num_train_images": int(len(self.train_images)),
            "epochs": self.total_epochs,
            "train_seconds": round(train_seconds, 2),
            # From the CSV files: every epoch of both stages, whichever stretch trained it.
            "history": base.recorded_history(output_dir).history,
            "prior_history": base.recorded_history(output_dir, name=PRIOR_HISTORY).history,
            "backend": keras.backend.backend(),
        }

    def summarize(self, metrics):
        book = metrics["codebook"]
        print(f"Reconstruction {metrics['reconstruction_nats']:.2f} nats/image, MSE "
              f"{metrics['mse_per_pixel']:.5f}; codebook: {book['usage']:.0%} of "
              f"{book['num_codes']} codes used, perplexity {book['perplexity']:.1f}; prior NLL "
              f"{metrics['prior_nll']['mean']:.2f} nats per code map", flush=True)


def train_vq_vae(preset, train_images=None, eval_images=None, output_dir="crvae_run",
                 epochs=None, batch_size=None, seed=0, fresh=False, verbose=1, data_spec=None,
                 eval_spec=None, stop_after_minutes=None, light_state_dtype=None, **overrides):
    """Trains a VQ-VAE preset and its prior; writes the artifacts of the module docstring.

    Args:
        preset: str, a preset registered with `job="vq_vae"`.
        train_images, eval_images: arrays `(N, H, W[, C])`, uint8 or [0, 1]; default (MNIST
            presets only): the embedded subset's training and test images.
        output_dir: str, default "crvae_run".
        epochs, batch_size: override the preset's values (epochs of the VQ-VAE; the prior's are
            `prior_epochs`).
        seed: int, default 0. fresh, verbose, data_spec, eval_spec: as the other jobs.
        stop_after_minutes: float or None. Stop at the first epoch end (of the VQ-VAE or of the
            prior) after this many minutes, resumable (SIGTERM does the same).
        light_state_dtype: None, "float16" or "float32". A stretch stopped by the time budget or
            SIGTERM also writes the light state (weights in that dtype + resume.json, small
            enough to commit), which a machine without `backup/` resumes from
            (`keras_crvae.jobs.base.TrainingJob`).
        **overrides: preset overrides (`num_codes=128`, `prior_epochs=5`, ...).

    Returns:
        dict, the content of metrics.json, or a `base.stopped_result` when stopped early.
    """
    if presets.job_name(preset) != "vq_vae":
        raise ValueError(f"Preset {preset!r} is not a VQ-VAE preset.")
    return VQVAEJob(preset, output_dir, train_images=train_images, eval_images=eval_images,
                    eval_spec=eval_spec, epochs=epochs, batch_size=batch_size, seed=seed,
                    fresh=fresh, verbose=verbose, data_spec=data_spec,
                    stop_after_minutes=stop_after_minutes, light_state_dtype=light_state_dtype,
                    overrides=overrides).run()
