"""A GAN run scored against held-out images as it trains, within a machine-hours budget: the long
face runs (crVAE-GAN vs VAE-GAN, issue 26) and the budget study's pilots.

`train_scored_gan(preset, images, num_held_out=..., output_dir=..., score_every=...)` trains a GAN
preset with an encoder (`celeba_crvae_gan`, `celeba_vae_gan`, ...) through the GAN job
(`keras_crvae.jobs.gan.GANJob`: `backup/` with both optimizers' states, resume on rerun,
`stop_after_minutes`, SIGTERM stop at an epoch end) on all images but the last `num_held_out`,
and every `score_every` epochs measures on those held-out images:

    sample FID           `num_samples` prior samples vs the held-out images
    reconstruction FID   the held-out images' reconstructions (posterior means) vs the images
    reconstruction MSE   per pixel, in the models' [-1, 1] range
    machine-hours        the training time so far, wall x threads summed over every stretch

Scores use the BatchNorm moving statistics as trained (each entry's `batch_norm`: "as trained").
`recalibrate_batch_norm=True` re-estimates the encoder's and generator's over 50 training batches
first (`VAEGAN.recalibrate_batch_norm`): measured on two face checkpoints it made both scores worse
(docs/faces.md, "BatchNorm statistics at scoring time"), so it is off by default.

Files in `output_dir` besides the GAN job's (`keras_crvae.jobs.gan`):

    scores.json              a list, one entry per scored epoch, in epoch order, rewritten
                             atomically (a kill leaves the previous list); a resumed run
                             continues it, and an epoch is never listed twice
    sessions.json            one record per training stretch (`longrun.session_record` plus
                             `machine_seconds`), rewritten at every epoch end
    held_out_statistics.npz  the held-out images' feature mean and covariance, computed once
                             (recomputed only for other images or another feature network)
    scored.weights.h5        the weights at the last scored epoch (e.g. for completion, Stage2)
    grids/samples_epoch{N}.png          64 prior samples of fixed latents (`seed`)
    grids/reconstructions_epoch{N}.png  32 held-out images, each row of 8 above its
                                        reconstructions

The run ends when the preset's epochs are done or its training time reaches `budget_hours`
machine-hours (at that epoch's end, which is always scored); a rerun of a spent budget trains
nothing, a rerun with a larger budget continues. A stretch killed with SIGKILL loses the time
and the score of at most its last epoch: a missing score of a due epoch is taken when the run
resumes from that epoch (its weights are then exactly that epoch's).

Features: `keras_crvae.evaluation.FIDInceptionV3` (the standard Inception, docs/fid.md) unless
`feature_extractor` is given (tests use a toy network; such numbers are not FIDs).
"""

import hashlib
import os
import time

import keras
import numpy as np

from keras_crvae import evaluation, presets
from keras_crvae.io import atomic_path, save_image_grid
from keras_crvae.jobs import base, gan, longrun, runs

SCORES = "scores.json"
HELD_OUT_STATISTICS = "held_out_statistics.npz"
SCORED_WEIGHTS = "scored.weights.h5"
GRIDS_DIR = "grids"
# Batches of training images (and of prior samples) over which a score's BatchNorm statistics are
# averaged: 1,600 images at batch 32, a few seconds of one core at the face runs' width.
RECALIBRATION_BATCHES = 50


def effective_threads(threads=0):
    """The threads a stretch computes on: `threads`, or the CPUs this process may use when 0
    (TensorFlow's and XLA's default is one thread per available core)."""
    if threads:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_hours(records):
    """Training machine-hours of `sessions.json` records: the sum of their `machine_seconds`
    (wall x threads; records without it count `train_seconds` x `threads`, 1 thread for 0)."""
    seconds = sum(float(r.get("machine_seconds", r["train_seconds"] * max(int(r["threads"]), 1)))
                  for r in records)
    return seconds / 3600.0


def as_signed_images(images):
    """uint8 images 0..255 (or floats already in [-1, 1]) -> float32 in [-1, 1], the GANs' range."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype("float32") / 127.5 - 1.0
    return images.astype("float32")


def _fingerprint(images, extractor):
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()
    network = (f"{type(extractor).__name__}:{getattr(extractor, 'name', '')}:"
               f"{getattr(extractor, 'weights_path', '')}:{getattr(extractor, 'precision', '')}")
    return f"{len(images)} images sha1 {digest}; features {network}"


def held_out_statistics(folder, images, extractor, batch_size=50):
    """Feature mean `(d,)` and covariance `(d, d)` of the held-out `images` (float64), cached in
    `folder/held_out_statistics.npz`: computed once per run folder, again only when the images or
    the feature network differ from the cached ones (a fingerprint of both is stored).

    Args:
        folder: str, the run folder.
        images: array `(N, H, W, C)` in [-1, 1], N >= 2.
        extractor: the feature network (`FIDInceptionV3(input_range=(-1, 1))` or a toy).
        batch_size: int, images per feature batch.
    """
    path = os.path.join(folder, HELD_OUT_STATISTICS)
    fingerprint = _fingerprint(images, extractor)
    if os.path.exists(path):
        with np.load(path) as cached:
            if str(cached["fingerprint"]) == fingerprint:
                return cached["mean"], cached["covariance"]
    mean, covariance = evaluation.feature_statistics(images, extractor, batch_size)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, mean=mean, covariance=covariance, fingerprint=np.array(fingerprint))
    return mean, covariance


def measure(model, held_out, reference, extractor, num_samples=1000, seed=0, batch_size=50,
            reconstructions=True):
    """The scores of a checkpoint (module docstring): the sample FID of `num_samples` prior samples
    (`evaluation.sample_batches` with `seed`: the same latents for any weights of one model), the
    reconstruction FID of the held-out images' reconstructions, and their MSE per pixel.

    Args:
        model: a GAN with an encoder (`sample`, `reconstruct`), e.g. a VAE-GAN / crVAE-GAN.
        held_out: float32 array `(N, H, W, C)` in [-1, 1].
        reference: `(mean, covariance)` of the held-out images' features (`held_out_statistics`).
        extractor: the feature network that made `reference`.
        num_samples, seed, batch_size: int.
        reconstructions: bool. False: the sample FID only (e.g. more sample seeds of one model,
            whose reconstructions do not change); the result then has no reconstruction scores
            and `None` for the reconstructions.

    Returns:
        `(scores, samples, reconstructions)`: the dict `{"sample_fid", "reconstruction_fid",
        "reconstruction_mse"}` (floats), the samples `(num_samples, H, W, C)` and the
        reconstructions `(N, H, W, C)` (float32 in [-1, 1]).
    """
    samples = np.concatenate([batch.astype("float32") for batch in evaluation.sample_batches(
        model, num_samples, batch_size=batch_size, seed=seed)])

    def distance(images):
        return float(evaluation.frechet_distance(
            *evaluation.feature_statistics(images, extractor, batch_size), *reference))

    scores = {"sample_fid": distance(samples)}
    if not reconstructions:
        return scores, samples, None
    decoded = np.concatenate([np.asarray(keras.ops.convert_to_numpy(model.reconstruct(
        held_out[i:i + batch_size])), dtype="float32") for i in range(0, len(held_out), batch_size)])
    scores.update(reconstruction_fid=distance(decoded),
                  reconstruction_mse=float(np.mean((decoded - held_out) ** 2)))
    return scores, samples, decoded


def record_score(folder, entry):
    """Puts `entry` (a dict with `epoch`) into `folder/scores.json` atomically, replacing an entry
    of the same epoch (a rescore never duplicates a point of the curve); returns the list."""
    path = os.path.join(folder, SCORES)
    entries = [e for e in runs.read_json_list(path) if e["epoch"] != entry["epoch"]] + [entry]
    return runs.write_json_list(path, sorted(entries, key=lambda e: e["epoch"]))


class TrainingStretches(longrun.EpochTimer):
    """Records this stretch's training time in `folder/sessions.json` at every epoch end (the
    record of `longrun.session_record` plus `machine_seconds` = epoch seconds x
    `effective_threads(threads)`, the budget's measure, and `cpu_seconds`, the process's CPU time
    in those epochs: on a shared machine it shows how much of the wall x threads it really got),
    so a killed stretch keeps the time of its finished epochs (`records_sessions`). The epochs'
    own time only: callbacks after this one (checkpoints, scores, grids) are not counted.

    Args:
        folder: str, the run folder.
        threads: int, the stretch's thread setting (0: one per available core).
    """

    records_sessions = True

    def __init__(self, folder, threads=0):
        super().__init__()
        self.path = os.path.join(folder, longrun.SESSIONS)
        self.threads = int(threads)
        self.first_epoch = None
        self.earlier = []
        self.cpu_seconds, self._cpu_start = 0.0, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:  # a resumed stretch starts after the backup's epoch
            self.first_epoch = int(epoch)
            self.earlier = runs.read_json_list(self.path)
        self._cpu_start = time.process_time()
        super().on_epoch_begin(epoch, logs)

    def current_record(self):
        record = longrun.session_record(self.first_epoch or 0, self, self.threads)
        record["machine_seconds"] = round(self.seconds * effective_threads(self.threads), 1)
        record["cpu_seconds"] = round(self.cpu_seconds, 1)
        return record

    def machine_hours(self):
        """Machine-hours of every stretch so far, this one's finished epochs included."""
        current = [self.current_record()] if self.epochs_run else []
        return machine_hours((self.earlier if self.first_epoch is not None
                              else runs.read_json_list(self.path)) + current)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.cpu_seconds += time.process_time() - self._cpu_start
        runs.write_json_list(self.path, self.earlier + [self.current_record()])


class MachineHoursBudget(longrun.TimeBudget):
    """`longrun.TimeBudget` (a stretch's wall-clock budget and SIGTERM) that also stops at the first
    epoch end where the run's training machine-hours (`TrainingStretches`) reach `budget_hours`.

    Attributes (besides TimeBudget's):
        spent: bool, the machine-hours budget stopped the run.
    """

    def __init__(self, stretches, budget_hours, seconds=None, start=None, label=None):
        super().__init__(seconds, start=start, label=label)
        self.stretches, self.budget_hours = stretches, budget_hours
        self.spent = False

    def budget_spent(self):
        return bool(self.budget_hours) and self.stretches.machine_hours() >= self.budget_hours

    def on_epoch_end(self, epoch, logs=None):
        if self.budget_spent() and epoch + 1 < self.params["epochs"]:
            self.epochs_done, self.spent = epoch + 1, True
            self.reached = self.model.stop_training = True
            self.reason = f"the budget of {self.budget_hours:g} machine-hours"
            return
        super().on_epoch_end(epoch, logs)


class CheckpointScores(keras.callbacks.Callback):
    """Scores the model on held-out images every `score_every` epochs and at the epoch that ends
    the run (its last epoch, or the one that spends `budget_hours`); see the module docstring for
    what is measured and written.

    Args:
        folder: str, the run folder.
        held_out: float array `(N, 64, 64, 3)` in [-1, 1], N >= 2: images never trained on.
        reference: `(mean, covariance)` of their features (`held_out_statistics`).
        extractor: the feature network that made `reference`.
        stretches: the run's `TrainingStretches` (machine-hours so far).
        score_every: int >= 1, epochs between scores.
        num_samples: int >= 2, prior samples per sample FID.
        budget_hours: float or None, the run's machine-hours budget.
        seed: int, the seed of the samples (the same latents at every checkpoint).
        batch_size: int, images per sampling / reconstruction / feature batch.
        recalibration_images: None, or training images `(M, 64, 64, 3)`, floats in [-1, 1]:
            before each score the model's `recalibrate_batch_norm` re-estimates its BatchNorm
            statistics on up to `RECALIBRATION_BATCHES` batches of them (the same images and prior
            draws at every checkpoint). None: the statistics as trained.
        recalibration_batch_size: int, the training batch size (statistics of batches that size).
    """

    def __init__(self, folder, held_out, reference, extractor, stretches, score_every=1,
                 num_samples=1000, budget_hours=None, seed=0, batch_size=50,
                 recalibration_images=None, recalibration_batch_size=32):
        super().__init__()
        self.folder, self.held_out, self.reference = folder, held_out, reference
        self.extractor, self.stretches = extractor, stretches
        self.score_every, self.num_samples = int(score_every), int(num_samples)
        self.budget_hours, self.seed, self.batch_size = budget_hours, int(seed), int(batch_size)
        self.recalibration_images = recalibration_images
        self.recalibration_batch_size = int(recalibration_batch_size)
        self.first_epoch_seen = False

    def scored_epochs(self):
        return {e["epoch"] for e in runs.read_json_list(os.path.join(self.folder, SCORES))}

    def on_epoch_begin(self, epoch, logs=None):
        # A stretch killed between its backup and its score: the restored weights are those of
        # epoch `epoch`, so its missing score is taken now.
        if not self.first_epoch_seen:
            self.first_epoch_seen = True
            if epoch > 0 and epoch % self.score_every == 0 and epoch not in self.scored_epochs():
                self.score(epoch)

    def on_epoch_end(self, epoch, logs=None):
        epochs_done = epoch + 1
        hours = self.stretches.machine_hours()
        if (epochs_done % self.score_every == 0 or epochs_done == self.params["epochs"]
                or (self.budget_hours and hours >= self.budget_hours)):
            self.score(epochs_done)

    def score(self, epochs_done):
        """Scores the current weights as those after `epochs_done` epochs; returns the entry."""
        started = time.time()
        model = self.model
        batch_norm = "as trained"
        if self.recalibration_images is not None and hasattr(model, "recalibrate_batch_norm"):
            model.recalibrate_batch_norm(self.recalibration_images,
                                         batch_size=self.recalibration_batch_size,
                                         num_batches=RECALIBRATION_BATCHES, seed=self.seed)
            batch_norm = "recalibrated"
        measured, samples, _ = measure(model, self.held_out, self.reference, self.extractor,
                                       num_samples=self.num_samples, seed=self.seed,
                                       batch_size=self.batch_size)
        grids = os.path.join(self.folder, GRIDS_DIR)
        os.makedirs(grids, exist_ok=True)
        samples_png = os.path.join(GRIDS_DIR, f"samples_epoch{epochs_done}.png")
        reconstructions_png = os.path.join(GRIDS_DIR, f"reconstructions_epoch{epochs_done}.png")
        save_image_grid(samples[:64], os.path.join(self.folder, samples_png))
        base.save_reconstruction_grid(model, self.held_out[:32],
                                      os.path.join(self.folder, reconstructions_png))
        with atomic_path(os.path.join(self.folder, SCORED_WEIGHTS)) as temporary:
            model.save_weights(temporary)
        entry = {
            "epoch": int(epochs_done),
            "machine_hours": round(self.stretches.machine_hours(), 5),
            "train_hours": round(sum(float(r["train_seconds"]) for r in runs.read_json_list(
                os.path.join(self.folder, longrun.SESSIONS))) / 3600, 5),
            **measured,
            "batch_norm": batch_norm,
            "num_samples": self.num_samples, "num_held_out": int(len(self.held_out)),
            "samples_png": samples_png, "reconstructions_png": reconstructions_png,
            "score_seconds": round(time.time() - started, 1),
            "scored": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        record_score(self.folder, entry)
        base.say(f"epoch {epochs_done}: {entry['machine_hours']:.3f} machine-hours, sample FID "
                 f"{entry['sample_fid']:.2f}, reconstruction FID "
                 f"{entry['reconstruction_fid']:.2f}, MSE {entry['reconstruction_mse']:.4f} "
                 f"({entry['score_seconds']:.0f} s)", True)
        return entry


class ScoredGANJob(gan.GANJob):
    """The GAN job whose stretch budget also stops at `budget_hours` machine-hours
    (`MachineHoursBudget` over the run's `TrainingStretches`)."""

    def __init__(self, preset, output_dir, stretches, budget_hours, **kwargs):
        super().__init__(preset, output_dir, **kwargs)
        self.stretches, self.budget_hours = stretches, budget_hours

    def _budget(self):
        stretch = super()._budget()  # the checks of `stop_after_minutes`
        budget = MachineHoursBudget(self.stretches, self.budget_hours, stretch.seconds,
                                    start=stretch.start, label=stretch.label)
        self.last_budget = budget
        return budget

    def epoch_timer(self, offset_seconds):
        # The run's `TrainingStretches` is the stretch's timer: it keeps sessions.json up to date
        # at every epoch end (with machine and CPU seconds), before the scores read it.
        self.stretches.offset_seconds = offset_seconds
        return self.stretches


def train_scored_gan(preset, images, *, num_held_out=1000, output_dir, score_every=5,
                     num_samples=1000, budget_hours=None, stop_after_minutes=None, threads=0,
                     feature_extractor=None, fid_weights="default", fid_precision="bfloat16",
                     seed=0, data_spec=None, batch_size=None, epochs=None, verbose=2,
                     light_state_dtype=None, recalibrate_batch_norm=False, **job_kwargs):
    """Trains `preset` on `images[:-num_held_out]`, scored on the last `num_held_out` (module
    docstring), until its epochs are done, `budget_hours` machine-hours are spent, this call's
    `stop_after_minutes` pass or a SIGTERM comes; a rerun of the same call resumes.

    Args:
        preset: str, a GAN preset with an encoder (`celeba_crvae_gan`, `celeba_vae_gan`, ...).
        images: uint8 array `(N, 64, 64, 3)` (or floats in [-1, 1]); the last `num_held_out` are
            held out (for celeba64_train.npz and 1000: faces 8500..9499, as in
            tools/studies/fq_gan.py).
        num_held_out: int, 2 <= num_held_out < N.
        output_dir: str, the run folder.
        score_every: int >= 1, epochs between scores.
        num_samples: int >= 2, prior samples per sample FID.
        budget_hours: float or None, the run's machine-hours of training in all (wall x threads).
        stop_after_minutes: float or None, this call's wall-clock budget (the GAN job's).
        threads: int, the thread setting this process runs with (0: one per available core; set
            it with `longrun.limit_threads` before anything computes); counts machine-hours.
        feature_extractor: a feature network for images in [-1, 1], or None for
            `FIDInceptionV3(weights=fid_weights, input_range=(-1, 1), precision=fid_precision)`.
        seed: int, the training and the sampling seed.
        data_spec: str, where the images came from (run.json).
        batch_size, epochs: override the preset's.
        verbose: int, Keras `fit` verbosity (2: a line per epoch).
        light_state_dtype: None, "float16" or "float32": a stopped stretch also writes the light
            state (weights only, to commit) from which a machine without `backup/` resumes
            (`base.TrainingJob`).
        recalibrate_batch_norm: bool, default False (the statistics as trained). True: each
            score re-estimates the BatchNorm statistics first, on `RECALIBRATION_BATCHES` batches
            of training images (fixed by `seed`; `CheckpointScores`).
        **job_kwargs: more `gan.GANJob` arguments (`run_eagerly`, `steps_per_epoch`) and preset
            overrides (`base_channels=16`, `precision="bfloat16"`, ...). No `fresh`: a new run
            goes into a new `output_dir`.

    Returns:
        dict: `status` ("trained": the preset's epochs are done; "budget spent"; "stopped": this
        call's time or a SIGTERM, resumable), `epochs_done`, `machine_hours`, `scores` (the curve).
    """
    images = np.asarray(images)
    if not 2 <= int(num_held_out) < len(images):
        raise ValueError(f"`num_held_out` must be 2 to {len(images) - 1} ({len(images)} images), "
                         f"got {num_held_out}.")
    if int(score_every) < 1:
        raise ValueError(f"`score_every` must be >= 1, got {score_every}.")
    if int(num_samples) < 2:
        raise ValueError(f"`num_samples` must be >= 2 (a covariance), got {num_samples}.")
    if budget_hours is not None and not budget_hours > 0:
        raise ValueError(f"`budget_hours` must be > 0 or None, got {budget_hours}.")
    if job_kwargs.get("fresh"):
        # The GAN job's `fresh` sets its own files aside, not scores.json and sessions.json: the
        # old curve and hours would run on into the new run.
        raise ValueError("`fresh`: a scored run starts afresh in a new `output_dir`.")
    os.makedirs(output_dir, exist_ok=True)
    sessions_path = os.path.join(output_dir, longrun.SESSIONS)
    scores_path = os.path.join(output_dir, SCORES)
    spent = machine_hours(runs.read_json_list(sessions_path))
    if budget_hours and spent >= budget_hours:
        base.say(f"{output_dir}: its budget of {budget_hours:g} machine-hours is spent "
                 f"({spent:.3f}); nothing to train.", verbose)
        return {"status": "budget spent", "epochs_done": runs.resume_epoch(output_dir)[0],
                "machine_hours": spent, "scores": runs.read_json_list(scores_path)}
    held_out = as_signed_images(images[-int(num_held_out):])
    extractor = feature_extractor if feature_extractor is not None else evaluation.FIDInceptionV3(
        weights=fid_weights, input_range=(-1, 1), precision=fid_precision)
    reference = held_out_statistics(output_dir, held_out, extractor)
    stretches = TrainingStretches(output_dir, threads)
    recalibration = {}
    if recalibrate_batch_norm:  # the training batch size: statistics of batches that size
        size = int(batch_size or presets.get_preset(preset).training.batch_size)
        chosen = np.random.default_rng(seed).permutation(len(images) - int(num_held_out))
        recalibration = {"recalibration_images": as_signed_images(
            images[np.sort(chosen[:RECALIBRATION_BATCHES * size])]),
            "recalibration_batch_size": size}
    scores = CheckpointScores(output_dir, held_out, reference, extractor, stretches,
                              score_every=score_every, num_samples=num_samples,
                              budget_hours=budget_hours, seed=seed, **recalibration)
    job = ScoredGANJob(preset, output_dir, stretches, budget_hours,
                       source={"arrays": images[:-int(num_held_out)]},
                       steps_per_epoch=job_kwargs.pop("steps_per_epoch", None),
                       run_eagerly=job_kwargs.pop("run_eagerly", False),
                       extra_callbacks=[scores], epochs=epochs, batch_size=batch_size,
                       seed=seed, verbose=verbose,
                       stop_after_minutes=stop_after_minutes, data_spec=data_spec,
                       light_state_dtype=light_state_dtype, overrides=job_kwargs)
    metrics = job.run()
    budget = getattr(job, "last_budget", None)
    if "stopped" not in metrics:
        status = "trained"
    elif budget is not None and budget.spent:
        status = "budget spent"
        base.say(f"{output_dir}: its budget of {budget_hours:g} machine-hours is spent; the same "
                 "call trains nothing more, a larger `budget_hours` continues the run.", verbose)
    else:
        status = "stopped"
    return {"status": status,
            "epochs_done": int(metrics.get("completed_epochs", job.total_epochs or 0)),
            "machine_hours": machine_hours(runs.read_json_list(sessions_path)),
            "scores": runs.read_json_list(scores_path)}


CURVE_METRICS = ("sample_fid", "reconstruction_fid", "reconstruction_mse")


def score_entries(folder):
    """The scored checkpoints of a run folder (`scores.json`, which `record_score` keeps in epoch
    order): a list of dicts, [] before the first score."""
    return runs.read_json_list(os.path.join(folder, SCORES))


def score_curves(folders, metric="sample_fid"):
    """The curves of scored runs: `{name: (machine_hours, values, epochs)}` (NumPy arrays in
    epoch order) from each run folder's `scores.json` (a run without scores yet has empty arrays).

    Args:
        folders: dict, name -> run folder (e.g. {"crVAE-GAN": "reproductions/faces/celeba_crvae_gan"}).
        metric: one of `CURVE_METRICS`.
    """
    if metric not in CURVE_METRICS:
        raise ValueError(f"`metric` must be one of {CURVE_METRICS}, got {metric!r}.")
    curves = {}
    for name, folder in folders.items():
        entries = score_entries(folder)
        curves[name] = tuple(np.array([e[key] for e in entries], dtype=dtype) for key, dtype in (
            ("machine_hours", "float64"), (metric, "float64"), ("epoch", "int64")))
    return curves


def plot_score_curves(folders, path, metric="sample_fid", floor=None):
    """Plots `metric` against training machine-hours for each run of `folders` on one axis (the
    comparison run's figure: crVAE-GAN and VAE-GAN at the same budget); writes `path` (PNG).

    Needs matplotlib (`pip install keras_crvae[plots]`).

    Args:
        folders: dict, name -> run folder holding `scores.json`.
        path: str, the PNG.
        metric: one of `CURVE_METRICS`.
        floor: float or None, a horizontal reference line (e.g. the real-vs-real FID).
    """
    from keras_crvae.evaluation.two_stage_diagnostics import _new_figure, save_figure

    plt, figure, axis = _new_figure()
    for name, (hours, values, _) in score_curves(folders, metric).items():
        axis.plot(hours, values, marker="o", markersize=3, label=name)
    if floor is not None:
        axis.axhline(floor, color="grey", linestyle="--", linewidth=1, label="real vs real")
    label = metric.replace("_", " ").replace("fid", "FID").replace("mse", "MSE")
    axis.set_xlabel("training machine-hours (wall x threads)")
    axis.set_ylabel(label)
    axis.set_title(f"{label} on the held-out images", fontsize=9)
    axis.legend()
    return save_figure(plt, figure, path)


def late_scores(folders, metric="sample_fid", last_hours=1.0):
    """Each run's scores in the last `last_hours` machine-hours of its curve (the checkpoints a
    comparison of "where the runs ended up" uses: a GAN's FID swings by tens between neighbouring
    checkpoints, so one last checkpoint says little): `{name: float64 array}` in epoch order.

    Args:
        folders: dict, name -> run folder holding `scores.json`.
        metric: one of `CURVE_METRICS`.
        last_hours: float, the window: checkpoints at `machine_hours >= last - last_hours`.
    """
    return {name: late_window(hours, values, last_hours)
            for name, (hours, values, _) in score_curves(folders, metric).items()}


def late_window(hours, values, last_hours):
    """The `values` of a curve whose `hours` lie within `last_hours` of its last point (`hours` in
    curve order, the last the latest); float64 array (empty for an empty curve)."""
    hours, values = np.asarray(hours, dtype=np.float64), np.asarray(values, dtype=np.float64)
    return values[hours >= hours[-1] - last_hours] if len(hours) else values


def median_difference(earlier, later, num_resamples=10000, confidence=0.95, seed=0):
    """`median(later) - median(earlier)` with a bootstrap interval: the checkpoints of each run are
    resampled with replacement, independently, `num_resamples` times (percentile interval).

    The checkpoints are treated as draws from each run's late-training distribution of scores;
    neighbouring checkpoints that are correlated make the interval too narrow, so it is a floor on
    the uncertainty, and one seed per model leaves the seed-to-seed spread out of it.

    Args:
        earlier, later: 1-D arrays of scores (e.g. `late_scores(...)[name]`), at least one each.
        num_resamples: int. confidence: float in (0, 1). seed: int.

    Returns:
        dict: `difference`, `low`, `high`, `num_earlier`, `num_later`.
    """
    earlier, later = (np.asarray(a, dtype=np.float64).ravel() for a in (earlier, later))
    if not len(earlier) or not len(later):
        raise ValueError("`earlier` and `later` need at least one score each.")
    rng = np.random.default_rng(seed)
    resampled = [np.median(rng.choice(a, size=(num_resamples, len(a)), replace=True), axis=1)
                 for a in (earlier, later)]
    differences = resampled[1] - resampled[0]
    tail = (1.0 - confidence) / 2.0
    return {"difference": float(np.median(later) - np.median(earlier)),
            "low": float(np.quantile(differences, tail)),
            "high": float(np.quantile(differences, 1.0 - tail)),
            "num_earlier": len(earlier), "num_later": len(later)}
