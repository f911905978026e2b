"""The Two-Stage VAE job (Dai & Wipf 2019): `crvae train --preset=mnist_two_stage`.

Stage 1 (the image VAE) trains on the images, then stage 2 (a VAE on the latents) on latents of the
frozen stage-1 posterior (`fit_two_stage`). The job cannot resume mid-way: an unfinished run
restarts, a finished one with at least the epochs asked for is "already trained"
(`keras_crvae.jobs.runs`), so it takes no `stop_after_minutes`. A trained run whose final
evaluation was cut short is scored by the next call without retraining (`fit_two_stage`'s result
is kept in run.json).

Outputs in `output_dir`: `model.keras`, `samples.png` (stage-2 samples), `samples_stage1.png`,
`reconstructions.png`, `history_stage1.csv`, `history_stage2.csv`, `run.json`, `metrics.json` (gamma
per epoch of both stages, active latent dimensions, singular-value spectra, and, for 28x28x1 images,
the MNIST-classifier FID of stage-1 and stage-2 samples against the evaluation images).
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import data as crvae_data
from keras_crvae import presets
from keras_crvae.io import save_image_grid
from keras_crvae.jobs import base, runs


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
    base.say(f"Stage 1 of 2: the image VAE, {runs.epochs_text(stage1_epochs)} on "
             f"{len(train_images):,} images", verbose)
    stage1 = model.stage1.fit(train_images, batch_size=batch_size, epochs=stage1_epochs,
                              shuffle=True, callbacks=[gamma_x, *stage1_callbacks],
                              verbose=verbose)
    if recalibrate_batch_norm:
        model.stage1.recalibrate_batch_norm(train_images, batch_size=batch_size)
    stage1_seconds = time.time() - start
    start = time.time()
    base.say("Stage 2 of 2: encoding the images with the frozen stage 1, then the latent VAE, "
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


class TwoStageJob(base.TrainingJob):
    """`train_two_stage`'s job (see the module docstring). Extra arguments: `train_images`,
    `eval_images`, `stage2_epochs`, `num_fid_samples`, `eval_spec`."""

    name = "two_stage"
    resumable = False
    takes_strategy = False

    def __init__(self, preset, output_dir, train_images=None, eval_images=None,
                 stage2_epochs=None, num_fid_samples=1000, eval_spec=None, **kwargs):
        super().__init__(preset, output_dir, **kwargs)
        if train_images is None or eval_images is None:
            embedded = crvae_data.load_embedded_mnist()
            train_images = embedded["x_train"] if train_images is None else train_images
            eval_images = embedded["x_test"] if eval_images is None else eval_images
        self.train_images = _unit_images(train_images, "train_images")
        self.eval_images = _unit_images(eval_images, "eval_images")
        self.stage2_epochs, self.num_fid_samples = stage2_epochs, num_fid_samples
        self.eval_spec = eval_spec

    def configure(self):
        overrides = dict(self.overrides)
        if self.epochs is not None:
            overrides["epochs"] = int(self.epochs)
        if self.stage2_epochs is not None:
            overrides["stage2_epochs"] = int(self.stage2_epochs)
        if self.batch_size is not None:
            overrides["batch_size"] = overrides["stage2_batch_size"] = int(self.batch_size)
        config = presets.get_preset(self.preset, **overrides)
        if not isinstance(config, presets.TwoStagePreset):
            raise ValueError(f"`preset` {self.preset!r} is not a Two-Stage VAE preset.")
        if config.training.epochs < 1 or config.stage2_training.epochs < 1:
            raise ValueError("`epochs` and `stage2_epochs` must be >= 1.")
        if tuple(self.train_images.shape[1:]) != tuple(config.network["image_shape"]):
            raise ValueError(f"`train_images` have shape {self.train_images.shape[1:]} but preset "
                             f"{self.preset!r} expects {tuple(config.network['image_shape'])}.")
        return config, overrides

    def prepare(self):
        self.steps_per_epoch = len(self.train_images) // self.config.training.batch_size

    def callbacks(self):
        return []  # each stage has its own history (`fit`)

    def describe(self):
        return (f"Training {self.preset} on {len(self.train_images):,} images "
                f"({self.data_spec or 'arrays'}) -> {self.output_dir}/")

    def fit(self, model, callbacks, initial_epoch):
        return fit_two_stage(
            model, self.train_images, self.config.training.epochs,
            self.config.stage2_training.epochs, batch_size=self.config.training.batch_size,
            seed=self.seed, verbose=self.verbose,
            stage1_callbacks=[crvae_callbacks.EpochHistory(
                os.path.join(self.output_dir, "history_stage1.csv"))],
            stage2_callbacks=[crvae_callbacks.EpochHistory(
                os.path.join(self.output_dir, "history_stage2.csv"))])

    def fit_record(self, history):
        return history  # `fit_two_stage`'s dict: both histories, gamma per epoch, seconds

    def recorded_fit(self, record):
        return record["fit_record"]

    def report(self, model, run, train_seconds):
        from keras_crvae.evaluation import two_stage_diagnostics as diagnostics

        output_dir, config, seed = self.output_dir, self.config, self.seed
        base.say(f"Saved {os.path.join(output_dir, 'model.keras')}; writing samples.png (stage "
                 "2), samples_stage1.png and reconstructions.png", self.verbose)
        save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=2, seed=seed)),
                        os.path.join(output_dir, "samples.png"))
        save_image_grid(keras.ops.convert_to_numpy(model.sample(64, stage=1, seed=seed)),
                        os.path.join(output_dir, "samples_stage1.png"))
        base.save_reconstruction_grid(model, self.eval_images,
                                      os.path.join(output_dir, "reconstructions.png"))
        metrics = {
            "preset": self.preset,
            "config": {"network": config.network, "model": config.model,
                       "training": dataclasses.asdict(config.training),
                       "stage2_network": config.stage2_network,
                       "stage2_training": dataclasses.asdict(config.stage2_training)},
            "num_train_images": int(len(self.train_images)),
            "backend": keras.backend.backend(),
            "paper_fid": config.paper_fid,
            **run,
        }
        fid = self.num_fid_samples
        base.say(f"Evaluating on {len(self.eval_images)} images of "
                 f"{self.eval_spec or 'eval_images'}: encoder variances, singular-value spectra"
                 + (f", MNIST-classifier FID of {fid} samples per stage" if fid else ""),
                 self.verbose)
        metrics.update(diagnostics.two_stage_report(model, self.eval_images,
                                                    num_fid_samples=fid, seed=seed))
        return metrics

    def summarize(self, metrics):
        _print_two_stage_summary(metrics)


def train_two_stage(preset="mnist_two_stage", train_images=None, eval_images=None,
                    output_dir="crvae_run", epochs=None, stage2_epochs=None, batch_size=None,
                    num_fid_samples=1000, seed=0, verbose=1, fresh=False, data_spec=None,
                    eval_spec=None, strategy="default", stop_after_minutes=None, **overrides):
    """Trains both stages of a Two-Stage VAE preset and writes the artifacts of the module docstring.

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
            other settings are refused; a Two-Stage run does not resume mid-way (`jobs.runs`).
        data_spec, eval_spec: str or None, where the images came from (run.json).
        strategy: "default" only (the job runs on one device); accepted for a common signature.
        stop_after_minutes: None only: the job cannot resume a stopped run (ValueError else).
        **overrides: preset overrides (stage-2 keys prefixed `stage2_`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).
    """
    return TwoStageJob(preset, output_dir, train_images=train_images, eval_images=eval_images,
                       stage2_epochs=stage2_epochs, num_fid_samples=num_fid_samples,
                       eval_spec=eval_spec, epochs=epochs, batch_size=batch_size, seed=seed,
                       fresh=fresh, verbose=verbose, strategy=strategy,
                       stop_after_minutes=stop_after_minutes, data_spec=data_spec,
                       overrides=overrides).run()


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
