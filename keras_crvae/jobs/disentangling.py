"""The disentangling job (`keras_crvae.jobs.base.TrainingJob`) of the presets on the procedural sprites (`sprites_*`).

Every batch is a fresh uniform draw from the factor grid (`data.sprites.sprite_batches`), so the
model never sees a fixed subset. After training the job scores the model on new sprites:

    reconstruction   -log p(x|z) at z = the posterior mean, nats per image (Bernoulli)
    kl               KL(q(z|x) || N(0, I)) summed over latents, nats per image; and per latent
    beta_vae, factor_vae, mig    the three metrics of `evaluation.disentanglement`

Outputs in `output_dir`: model.keras, metrics.json, history.csv, samples.png,
reconstructions.png, traversals.png (rows = latents by KL, `LatentTraversal`).

`time_budget_seconds` stops training once that much wall time has passed (at a step's end,
`jobs.longrun.TimeBudget(per_step=True)`), so that models of different cost can be compared at the
same budget (docs/disentanglement.md); the run then finishes and is scored.

Rerunning on the same `output_dir` follows `keras_crvae.jobs.runs` without resuming: a finished run is
"already trained", another preset's run or other settings are refused, an unfinished one restarts,
and a trained one whose scoring was cut short is scored (the steps it trained are kept in run.json).
"""

import dataclasses
import os

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import presets
from keras_crvae.data import sprites
from keras_crvae.evaluation import disentanglement
from keras_crvae.io import save_image_grid
from keras_crvae.jobs import base, job_for, longrun, runs

SPRITES_DATA = "procedural sprites"


def is_sprites_preset(name):
    """True for the presets this job trains (`keras_crvae.jobs.job_for(name).name ==
    "disentangling"`)."""
    return job_for(name).name == "disentangling"


def evaluate_sprites_model(model, num_images=1000, num_train=500, num_eval=300,
                           num_mig_samples=5000, pairs=64, seed=0):
    """Reconstruction, KL and the three disentanglement metrics of a sprites model (JSON-ready).

    Args:
        model: a trained VAE-family model on 64x64x1 sprites.
        num_images: int, default 1000. Fresh sprites for reconstruction and KL.
        num_train, num_eval: int, default 500 / 300. Points / votes of the two vote metrics.
        num_mig_samples: int, default 5000.
        pairs: int, default 64. `L`: pairs per beta-VAE-metric point and samples per FactorVAE
            vote.
        seed: int, default 0 (the evaluation sprites do not depend on the training seed).
    """
    from keras import ops

    images = sprites.load_sprites(num_images, seed=10_000 + seed)["images"]
    encode = disentanglement.mean_encoder(model)
    means = encode(images)
    log_px = []
    for start in range(0, len(images), 250):
        chunk = images[start:start + 250]
        log_px.append(ops.convert_to_numpy(model.log_likelihood(chunk, means[start:start + 250])))
    kl_per_latent = crvae_callbacks.mean_kl_per_latent(model, images)
    source = sprites.ProceduralSprites()
    return {
        "reconstruction": float(-np.mean(np.concatenate(log_px))),
        "kl": float(kl_per_latent.sum()),
        "kl_per_latent": kl_per_latent.tolist(),
        "num_images": int(num_images),
        "beta_vae": disentanglement.beta_vae_metric(encode, source, num_train=num_train,
                                                    num_eval=num_eval, pairs_per_point=pairs,
                                                    seed=seed),
        "factor_vae": disentanglement.factor_vae_metric(encode, source, num_train=num_train,
                                                        num_eval=num_eval, samples_per_vote=pairs,
                                                        seed=seed),
        "mig": disentanglement.mutual_information_gap(encode, source,
                                                      num_samples=num_mig_samples, seed=seed),
    }


class DisentanglingJob(base.TrainingJob):
    """`train_sprites`'s job (see the module docstring). Extra arguments: `steps_per_epoch`,
    `time_budget_seconds`, `evaluation`."""

    name = "disentangling"
    resumable = False
    takes_strategy = False

    def __init__(self, preset, output_dir, steps_per_epoch=None, time_budget_seconds=None,
                 evaluation=None, **kwargs):
        super().__init__(preset, output_dir or runs.default_output_dir(preset), **kwargs)
        self.requested_steps = steps_per_epoch
        self.time_budget_seconds = time_budget_seconds
        self.evaluation = evaluation
        self.data_spec = SPRITES_DATA
        self.training_budget = None

    def configure(self):
        if not is_sprites_preset(self.preset):
            raise ValueError(f"`preset`={self.preset!r} is not a sprites preset.")
        config, overrides = super().configure()
        steps = self.requested_steps
        if steps is None:
            steps = max(1, 737280 // config.training.batch_size)
        if int(steps) < 1:
            raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps}.")
        self.steps_per_epoch = int(steps)
        return config, overrides

    def prepare(self):
        self.grid_images = sprites.load_sprites(64, seed=20_000 + self.seed)["images"]

    def callbacks(self):
        callbacks = super().callbacks() + [crvae_callbacks.LatentTraversal(
            os.path.join(self.output_dir, "traversals.png"), self.grid_images)]
        if self.time_budget_seconds is not None:
            self.training_budget = longrun.TimeBudget(self.time_budget_seconds, per_step=True)
            callbacks.append(self.training_budget)
        return callbacks

    def describe(self):
        return (f"Training {self.preset} on {SPRITES_DATA}: "
                f"{runs.epochs_text(self.config.training.epochs)} of {self.steps_per_epoch} steps "
                f"at batch {self.config.training.batch_size}"
                + (f", at most {self.time_budget_seconds:.0f} s" if self.time_budget_seconds
                   else "") + f" -> {self.output_dir}/")

    def fit(self, model, callbacks, initial_epoch):
        return model.fit(sprites.sprite_batches(self.config.training.batch_size, seed=self.seed),
                         epochs=self.config.training.epochs, steps_per_epoch=self.steps_per_epoch,
                         callbacks=callbacks, shuffle=False,  # each batch is a fresh draw
                         verbose=self.verbose)

    def train_steps(self, history):
        """The training steps `fit` ran (the step-end budget may stop mid-epoch)."""
        if self.training_budget is not None:
            return int(self.training_budget.steps)
        return int(getattr(history, "train_steps", self.steps_per_epoch * len(history.epoch)))

    def fit_record(self, history):
        return {"train_steps": self.train_steps(history)}

    def report(self, model, history, train_seconds):
        output_dir, config, seed = self.output_dir, self.config, self.seed
        batch = config.training.batch_size
        steps = self.train_steps(history)
        save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=seed)),
                        os.path.join(output_dir, "samples.png"))
        base.save_reconstruction_grid(model, self.grid_images,
                                      os.path.join(output_dir, "reconstructions.png"))
        traversal = crvae_callbacks.LatentTraversal(os.path.join(output_dir, "traversals.png"),
                                                    self.grid_images)
        traversal.set_model(model)
        traversal.on_epoch_end(0)
        base.say("Scoring: reconstruction, KL, beta-VAE metric, FactorVAE metric, MIG ...",
                 self.verbose)
        scores = evaluate_sprites_model(model, seed=seed, **(self.evaluation or {}))
        return {
            "preset": self.preset,
            "config": {"network": config.network, "model": config.model,
                       "training": dataclasses.asdict(config.training)},
            "overrides": dict(self.overrides),
            "train_seconds": round(train_seconds, 1),
            "train_steps": int(steps),
            "train_images": int(steps * batch),
            "train_images_per_second": round(steps * batch / max(train_seconds, 1e-9), 1),
            "history": {key: [float(v) for v in values]
                        for key, values in history.history.items()},
            "backend": keras.backend.backend(),
            **scores,
        }

    def summarize(self, metrics):
        print(f"reconstruction {metrics['reconstruction']:.1f} nats, KL {metrics['kl']:.1f} nats, "
              f"beta-VAE metric {metrics['beta_vae']['score']:.3f}, FactorVAE metric "
              f"{metrics['factor_vae']['score']:.3f}, MIG {metrics['mig']['score']:.3f}",
              flush=True)


def train_sprites(preset="sprites_beta_vae", output_dir=None, epochs=None, batch_size=None,
                  steps_per_epoch=None, time_budget_seconds=None, seed=0, verbose=1,
                  evaluation=None, fresh=False, strategy="default", stop_after_minutes=None,
                  data_spec=None, **overrides):
    """Trains a sprites preset on fresh procedural sprites and writes the artifacts above.

    Args:
        preset: str, one of the `sprites_*` presets.
        output_dir: str, default "PRESET_run".
        epochs, batch_size: override the preset's values when given.
        steps_per_epoch: int or None. Default: 737,280 / batch_size (one grid's worth of images).
        time_budget_seconds: float or None. Stop after this much training time (at a step's end)
            and score the model: a fixed training budget, not a stop to resume from.
        seed: int, default 0.
        verbose: int, default 1.
        evaluation: dict or None, keyword arguments of `evaluate_sprites_model`.
        fresh: bool, default False. Start over whatever `output_dir` holds.
        strategy: "default" only (one device); accepted for a common signature.
        stop_after_minutes: None only: the job cannot resume a stopped run (ValueError else).
        data_spec: ignored ("procedural sprites" is recorded); accepted for a common signature.
        **overrides: preset overrides (e.g. `channels=[16, 16, 32, 32]`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).

    Raises:
        keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
            preset's with other settings.
    """
    del data_spec  # the sprites are drawn by the job
    return DisentanglingJob(preset, output_dir, steps_per_epoch=steps_per_epoch,
                            time_budget_seconds=time_budget_seconds, evaluation=evaluation,
                            epochs=epochs, batch_size=batch_size, seed=seed, fresh=fresh,
                            verbose=verbose, strategy=strategy,
                            stop_after_minutes=stop_after_minutes, overrides=overrides).run()
