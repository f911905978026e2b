"""The training job of the disentangling presets on the procedural sprites (`sprites_*`).

Every batch is a fresh uniform draw from the factor grid (`data.sprites.sprite_batches`), so the
model never sees a fixed subset. After training the job scores the model on new sprites:

    reconstruction   -log p(x|z) at z = the posterior mean, nats per image (Bernoulli)
    kl               KL(q(z|x) || N(0, I)) summed over latents, nats per image; and per latent
    beta_vae, factor_vae, mig    the three metrics of `evaluation.disentanglement`

Outputs in `output_dir`: model.keras, metrics.json, history.csv, samples.png,
reconstructions.png, traversals.png (rows = latents by KL, `LatentTraversal`).

`time_budget_seconds` stops training once that much wall time has passed (at a step's end), so
that models of different cost can be compared at the same budget (docs/disentanglement.md).

Rerunning on the same `output_dir` follows `keras_crvae.runs` without resuming: a finished run is
"already trained", another preset's run or other settings are refused, an unfinished one restarts.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import presets, runs
from keras_crvae.data import sprites
from keras_crvae.evaluation import disentanglement
from keras_crvae.io import save_image_grid, write_json
from keras_crvae.training import EpochHistory, save_model, save_reconstruction_grid


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` at the end of the first step after `seconds` of training (and records it)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = float(seconds)
        self.start = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.time() - self.start >= self.seconds:
            self.model.stop_training = True


def is_sprites_preset(name):
    """True for the presets this job trains (network builder "sprites")."""
    return presets.get_preset(name).network["builder"] == "sprites"


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


def train_sprites(preset="sprites_beta_vae", output_dir=None, epochs=None, batch_size=None,
                  steps_per_epoch=None, time_budget_seconds=None, seed=0, verbose=1,
                  evaluation=None, fresh=False, **overrides):
    """Trains a sprites preset on fresh procedural sprites and writes the artifacts above.

    Args:
        preset: str, one of the `sprites_*` presets.
        output_dir: str, default "PRESET_run".
        epochs, batch_size: override the preset's values when given.
        steps_per_epoch: int or None. Default: 737,280 / batch_size (one grid's worth of images).
        time_budget_seconds: float or None. Stop after this much training time.
        seed: int, default 0.
        verbose: int, default 1.
        evaluation: dict or None, keyword arguments of `evaluate_sprites_model`.
        fresh: bool, default False. Start over whatever `output_dir` holds.
        **overrides: preset overrides (e.g. `channels=[16, 16, 32, 32]`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained).

    Raises:
        keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
            preset's with other settings.
    """
    if not is_sprites_preset(preset):
        raise ValueError(f"`preset`={preset!r} is not a sprites preset.")
    config, overrides = presets.preset_for_run(preset, epochs, batch_size, **overrides)
    batch = config.training.batch_size
    if steps_per_epoch is None:
        steps_per_epoch = max(1, 737280 // batch)
    if int(steps_per_epoch) < 1:
        raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps_per_epoch}.")
    output_dir = output_dir or runs.default_output_dir(preset)
    settings = runs.run_settings(config)
    plan = runs.plan_run(output_dir, preset, settings, config.training.epochs, fresh=fresh,
                         resumable=False)
    if plan.action == "done":
        if verbose:
            print(plan.message, flush=True)
        return runs.finished_run_metrics(output_dir)
    if verbose and plan.message:
        print(plan.message, flush=True)
    runs.clear_run(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    runs.write_run(output_dir, preset, settings, 0, data="procedural sprites")

    keras.utils.set_random_seed(seed)
    model = presets.from_preset(preset, steps_per_epoch=steps_per_epoch, seed=seed, **overrides)
    grid_images = sprites.load_sprites(64, seed=20_000 + seed)["images"]
    callbacks = [crvae_callbacks.NaNGuard(), EpochHistory(os.path.join(output_dir, "history.csv")),
                 crvae_callbacks.LatentTraversal(os.path.join(output_dir, "traversals.png"),
                                                 grid_images)]
    budget = None
    if time_budget_seconds is not None:
        budget = TimeBudget(time_budget_seconds)
        callbacks.append(budget)
    if verbose:
        print(f"Training {preset} on procedural sprites: {config.training.epochs} epochs of "
              f"{steps_per_epoch} steps at batch {batch}"
              + (f", at most {time_budget_seconds:.0f} s" if time_budget_seconds else "")
              + f" -> {output_dir}/", flush=True)
    start = time.time()
    history = model.fit(sprites.sprite_batches(batch, seed=seed), epochs=config.training.epochs,
                        steps_per_epoch=int(steps_per_epoch), callbacks=callbacks,
                        shuffle=False, verbose=verbose)  # each batch is a fresh draw
    train_seconds = time.time() - start
    steps = budget.steps if budget is not None else int(steps_per_epoch) * len(history.epoch)
    save_model(model, os.path.join(output_dir, "model.keras"))
    runs.write_run(output_dir, preset, settings, config.training.epochs, finished=True,
                   data="procedural sprites")
    save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=seed)),
                    os.path.join(output_dir, "samples.png"))
    save_reconstruction_grid(model, grid_images, os.path.join(output_dir, "reconstructions.png"))
    traversal = crvae_callbacks.LatentTraversal(os.path.join(output_dir, "traversals.png"),
                                                grid_images)
    traversal.set_model(model)
    traversal.on_epoch_end(0)
    if verbose:
        print("Scoring: reconstruction, KL, beta-VAE metric, FactorVAE metric, MIG ...",
              flush=True)
    scores = evaluate_sprites_model(model, seed=seed, **(evaluation or {}))
    metrics = {
        "preset": preset,
        "config": {"network": config.network, "model": config.model,
                   "training": dataclasses.asdict(config.training)},
        "overrides": {key: value for key, value in overrides.items()},
        "train_seconds": round(train_seconds, 1),
        "train_steps": int(steps),
        "train_images": int(steps * batch),
        "train_images_per_second": round(steps * batch / max(train_seconds, 1e-9), 1),
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "backend": keras.backend.backend(),
        **scores,
    }
    write_json(metrics, os.path.join(output_dir, "metrics.json"))
    if verbose:
        print(f"reconstruction {scores['reconstruction']:.1f} nats, KL {scores['kl']:.1f} nats, "
              f"beta-VAE metric {scores['beta_vae']['score']:.3f}, FactorVAE metric "
              f"{scores['factor_vae']['score']:.3f}, MIG {scores['mig']['score']:.3f}", flush=True)
    return metrics
