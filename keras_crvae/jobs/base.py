"""The one skeleton of the training jobs, and what they share.

Every job (`vae`, `two_stage`, `gan`, `disentangling`) runs the same steps (`TrainingJob.run`):

    resolve      the strategy (first: multi-worker collectives precede any TensorFlow op), the
                 preset with its overrides, the worker's output folder
    lock         `runs.output_lock`: one process per output folder (pid, host, start time)
    plan         `runs.plan_run`: start, resume a killed/stopped run, continue a finished one,
                 finish an interrupted final evaluation, say "already trained" (and return its
                 metrics), or refuse another preset's run
    seed, data   `keras.utils.set_random_seed(seed)`, then the job's data (`prepare`)
    model        build it (or load the saved one to continue or evaluate) in the strategy's
                 scope: every setting has now passed the builders' checks
    folder       only now: for `fresh` (or always, for a job that cannot resume) set the old run
                 aside in `previous/` (`runs.set_aside`; deleted after the first backed-up epoch,
                 put back if training stops before), create the folder, write `run.json`
    fit          the job's callbacks + NaN guard + `BackupAndRestore` (resumable jobs) + the time
                 budget and SIGTERM stop at an epoch end (`longrun.TimeBudget`, `stop_on_sigterm`;
                 also a queue's deadline) + `longrun.EpochTimer`: every epoch's row of history.csv
                 gets `train_hours`, the run's training hours over all its stretches
    save         `model.keras` atomically, `run.json` trained, then the backup goes; or, when
                 stopped, `run.json` with the epochs done and the backup kept, so the next call
                 resumes (`longrun.report_stop` tells a queue); either way the stretch's record
                 (epochs, seconds, backend, load) is appended to `sessions.json`. A SIGTERM during
                 the last epoch or the save stops here: trained and saved, the final evaluation
                 left to the next call
    report       the job's images and metrics, `metrics.json`, then `run.json` finished (a run
                 interrupted before that is evaluated again by the next call, from model.keras
                 and what `fit_record` kept in run.json: every job, resumable or not), a few
                 summary lines

SIGTERM outside `fit`'s epochs (while scoring, or in a job that cannot resume) is the caller's
to handle: `crvae` turns it into one line and exit status 143 (`keras_crvae.cli.main`), and the
folder is what an interrupted call leaves (`runs.kept_or_restored`), which the same command
resumes.

Test-only hook, not a flag: with the environment variable `CRVAE_TEST_SIGTERM_AT=PHASE` (PHASE
"training", "saving" or "evaluation"; `keras_crvae.io.enter_phase`) the job sends itself SIGTERM
as it enters that phase, so that the drills (`tests/test_cli_sigterm.py`, `tools/drills.py`) hit
each phase reliably instead of racing a timer.

A job subclasses `TrainingJob` and fills in the hooks (`configure`, `prepare`, `build_model`,
`callbacks`, `describe`, `fit`, `report`, `summarize`).

Arguments every job takes with one meaning: `preset`, `output_dir`, `epochs`, `batch_size`, `seed`,
`fresh` (the old `resume=` of `train_gan` is `fresh = not resume`), `verbose`, `strategy`,
`stop_after_minutes`, `data_spec`, `**overrides`.
"""

import contextlib
import os
import shutil
import threading
import time
import types

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import distribute, presets
from keras_crvae import precision as crvae_precision
from keras_crvae.io import enter_phase, load_model, save_image_grid, save_model, write_json
from keras_crvae.jobs import longrun, runs


def say(message, verbose):
    """One status line between the progress bars (flushed, so it shows before the next bar)."""
    if verbose:
        print(message, flush=True)


def worker_output_dir(output_dir, strategy):
    """`output_dir` for the chief (and without multi-worker), `output_dir/workers/worker_<i>` else,
    so that workers sharing a file system do not overwrite each other."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(strategy.extended, "should_checkpoint", True):
        return output_dir
    return os.path.join(output_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def save_reconstruction_grid(model, images, path, columns=8):
    """Up to 32 `images` `(N, H, W, C)` in rows of `columns`, each row followed by its
    reconstructions `model.reconstruct(images)` (fewer rows when there are fewer images; at least
    one image)."""
    count = min(32, len(images))
    count = count - count % columns if count >= columns else count
    columns = min(columns, count)
    originals = np.asarray(images[:count])
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(originals))
    shape = originals.shape[1:]
    rows = np.concatenate([originals.reshape((-1, columns) + shape),
                           reconstructions.reshape((-1, columns) + shape)], axis=1)
    save_image_grid(rows.reshape((-1,) + shape), path, columns=columns)


def history_from_csv(output_dir, keys, name="history.csv"):
    """`{key: [value per epoch]}` of `output_dir/history.csv` for `keys`: every epoch of the run,
    also those of earlier (resumed or continued) calls."""
    rows = crvae_callbacks.read_history(os.path.join(output_dir, name))
    return {key: [float(row[key]) for row in rows if row.get(key, "") != ""] for key in keys}


def stopped_result(preset, output_dir, reason, epochs_done, epochs):
    """What a job returns when the time budget or SIGTERM stopped it (no metrics.json yet)."""
    return {"preset": preset, "stopped": reason, "completed_epochs": int(epochs_done),
            "epochs": int(epochs), "output_dir": output_dir}


class TrainingJob:
    """The skeleton of a training job (see the module docstring); subclasses fill in the hooks.

    Class attributes:
        name: str, the job's name in `keras_crvae.jobs.JOBS`.
        resumable: bool, the job resumes a killed or stopped run (`BackupAndRestore`) and so takes
            `stop_after_minutes`; a job that cannot restarts an unfinished run.
        takes_strategy: bool, the job runs under a `tf.distribute` strategy.

    Args:
        preset: str, a preset of this job (`keras_crvae.jobs.job_for(preset).name == name`).
        output_dir: str.
        epochs, batch_size: int or None, override the preset's values.
        seed: int.
        fresh: bool, start over whatever `output_dir` holds (`runs.plan_run`).
        verbose: int, Keras progress bars and status lines.
        strategy: str ("default", "mirrored", "multi_worker") or a `tf.distribute.Strategy`.
        stop_after_minutes: float or None. Stop at the first epoch end after this many minutes
            (counted from the call), leaving the run resumable; None or 0: no budget. SIGTERM
            stops the same way whatever this is (resumable jobs, main thread, one worker).
        data_spec: str or None, where the images came from (run.json).
        overrides: dict, preset overrides (`keras_crvae.from_preset`).
        light_state_dtype: None, "float16" or "float32". With a dtype, a stretch that the time
            budget or SIGTERM stops also writes the light state (`longrun.save_job_light_state`:
            the weights in that dtype and `resume.json`, small enough to commit), and a call that
            finds no `backup/` resumes from it (`runs.plan_run`'s "resume_light": fresh optimizer
            moments, each optimizer's learning-rate schedule continued at its own step count), so
            a run survives a replaced machine. Removed once the run is trained. Resumable jobs
            only.
    """

    name = None
    resumable = True
    takes_strategy = True

    def __init__(self, preset, output_dir, epochs=None, batch_size=None, seed=0, fresh=False,
                 verbose=1, strategy="default", stop_after_minutes=None, data_spec=None,
                 overrides=None, light_state_dtype=None):
        self.preset = preset
        self.output_dir = output_dir
        self.epochs, self.batch_size = epochs, batch_size
        self.seed, self.fresh, self.verbose = seed, bool(fresh), verbose
        self.strategy = strategy
        self.stop_after_minutes = stop_after_minutes
        self.data_spec = data_spec
        self.overrides = dict(overrides or {})
        self.started = time.time()
        self.config = self.settings = self.total_epochs = None
        self.steps_per_epoch = None
        self.precision = None  # "float32" or "bfloat16": what the model computes in
        self.timer = None  # the stretch's `longrun.EpochTimer`
        if light_state_dtype not in (None,) + longrun.LIGHT_STATE_DTYPES:
            raise ValueError(f"`light_state_dtype` must be None or one of "
                             f"{longrun.LIGHT_STATE_DTYPES}, got {light_state_dtype!r}.")
        if light_state_dtype and not self.resumable:
            raise ValueError(f"`light_state_dtype`: the {self.name} job cannot resume a run.")
        self.light_state_dtype = light_state_dtype
        # Per optimizer, the steps its counter does not count (after a light-state resume).
        self.schedule_offsets = {}

    # --- hooks ---

    def configure(self):
        """`(config, overrides)`: the preset with the run's epochs, batch size and overrides, after
        the job's checks (raise ValueError on a bad argument)."""
        return presets.preset_for_run(self.preset, self.epochs, self.batch_size, **self.overrides)

    def prepare(self):
        """Loads the data (after the seed is set); sets `self.steps_per_epoch`."""

    def build_model(self):
        """A new model of the preset (inside the strategy's scope)."""
        return presets.from_preset(self.preset, steps_per_epoch=self.steps_per_epoch,
                                   seed=self.seed, **self.overrides)

    def callbacks(self):
        """The job's callbacks after the NaN guard and the backup (default: `history.csv`)."""
        return [crvae_callbacks.EpochHistory(os.path.join(self.output_dir, "history.csv"))]

    def describe(self):
        """The "Training ..." line."""
        return (f"Training {self.preset} on {self.data_spec or 'the given images'}: "
                f"{runs.epochs_text(self.total_epochs)} of {self.steps_per_epoch} steps at batch "
                f"{self.config.training.batch_size} -> {self.output_dir}/")

    def fit(self, model, callbacks, initial_epoch):
        """Trains `model`; returns the Keras History (or what `report` expects)."""
        raise NotImplementedError

    def report(self, model, history, train_seconds):
        """After the model is saved: the job's images and the metrics dict (metrics.json)."""
        raise NotImplementedError

    def summarize(self, metrics):
        """A few lines of `metrics` (printed when `verbose`)."""

    def fit_record(self, history):
        """What `report` needs of `fit`'s result beyond history.csv, JSON-ready, or None (the
        default: history.csv holds it all). Kept in run.json once the model is saved, so that an
        interrupted final evaluation is finished without retraining (`recorded_fit`)."""
        return None

    def recorded_fit(self, record):
        """What `report` gets for `fit`'s result when the next call finishes an interrupted final
        evaluation: `record` is run.json. Default: `recorded_history` (history.csv), carrying the
        `fit_record` entries as attributes."""
        history = recorded_history(self.output_dir, record.get("epochs_this_run", 0))
        for key, value in (record.get("fit_record") or {}).items():
            setattr(history, key, value)
        return history

    # --- the skeleton ---

    def _budget(self):
        minutes = self.stop_after_minutes
        if minutes is None or minutes == 0:
            return longrun.TimeBudget(None)
        if not minutes > 0:
            raise ValueError(f"`stop_after_minutes` must be a number of minutes > 0, got {minutes!r}.")
        if not self.resumable:
            raise ValueError(f"`stop_after_minutes`: the {self.name} job cannot resume a stopped "
                             f"run (preset {self.preset}); train it without a time budget.")
        if getattr(self.strategy, "cluster_resolver", None) is not None:
            raise ValueError("`stop_after_minutes` with a multi-worker strategy: the workers would "
                             "stop at different epochs; train without a time budget.")
        return longrun.TimeBudget(minutes * 60.0, start=self.started,
                                  label=f"stop_after_minutes={minutes:g}")

    def _stop_on_sigterm(self, budget):
        if (self.resumable and getattr(self.strategy, "cluster_resolver", None) is None
                and threading.current_thread() is threading.main_thread()):
            return longrun.stop_on_sigterm(budget)
        return contextlib.nullcontext()

    def epoch_timer(self, offset_seconds):
        """The stretch's timer (hook), a `longrun.EpochTimer`: placed before the job's callbacks,
        it gives every epoch's logs the run's `train_hours` (`offset_seconds`: the earlier
        stretches' training seconds, 0.0 for a new run). A job whose timer keeps `sessions.json`
        itself (`records_sessions`, e.g. the scored GAN runs' `TrainingStretches`) returns it
        here, and the job's own end-of-stretch record is skipped."""
        return longrun.EpochTimer(offset_seconds=offset_seconds)

    @contextlib.contextmanager
    def _recorded_stretch(self, first_epoch):
        """Appends this stretch's record to `sessions.json` when training ends (finished, stopped
        or failed after some epochs): the machine hours of NLL/FID-vs-hours curves."""
        try:
            yield
        finally:
            if self.timer.epochs_run and not self.timer.records_sessions:
                longrun.record_session(self.output_dir, first_epoch, self.timer)

    def run(self):
        """Runs the job; returns the metrics dict (of the earlier run when it is already trained;
        a `stopped_result` when the time budget or SIGTERM stopped it).

        The output folder is held under `runs.output_lock` throughout, and nothing in it changes
        until the data are loaded and the model is built (every setting has then passed the
        builders' checks).

        Raises:
            keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
                preset's with other settings; `runs.RunLockedError`: another process holds it.
            ValueError: a bad argument.
        """
        if isinstance(self.strategy, str):  # first: multi-worker collectives precede any TF op
            if not self.takes_strategy and self.strategy != "default":
                raise ValueError(f"`strategy`={self.strategy!r}: the {self.name} job runs on one "
                                 "device; expected 'default'.")
            self.strategy = distribute.make_strategy(self.strategy)
        budget = self._budget()
        self.config, self.overrides = self.configure()
        self.output_dir = worker_output_dir(self.output_dir, self.strategy)
        self.settings = runs.run_settings(self.config)
        self.total_epochs = runs.total_epochs(self.config)
        with runs.output_lock(self.output_dir) as lock:
            return self._run_locked(budget, lock.created)

    def _run_locked(self, budget, created_output_dir):
        """`run` once the folder's lock is held."""
        plan = runs.plan_run(self.output_dir, self.preset, self.settings, self.total_epochs,
                             fresh=self.fresh, resumable=self.resumable)
        if plan.action == "done":
            say(plan.message, self.verbose)
            return runs.finished_run_metrics(self.output_dir)

        keras.utils.set_random_seed(self.seed)
        self.prepare()
        model_path = os.path.join(self.output_dir, "model.keras")
        with self.strategy.scope():  # variables and optimizer slots are created per replica
            if plan.action in ("continue", "evaluate"):  # weights, optimizer state, schedule
                model = load_model(model_path)
            else:
                model = self.build_model()
        self.schedule_offsets = self._resume_schedule_offsets(model, plan)
        self.precision = crvae_precision.of_model(model)
        if plan.action == "evaluate":  # trained; the final evaluation was cut short
            say(plan.message, self.verbose)
            record = runs.read_run(self.output_dir) or {}
            return self._finish(model, self.recorded_fit(record),
                                float(record.get("train_seconds", 0.0)))

        # Every setting has passed the builders' checks: only now does the folder change. From
        # the first change until training has something to resume from, an error or an interrupt
        # (Ctrl-C, SIGTERM) puts the folder back as it was (`runs.kept_or_restored`).
        backup_dir = os.path.join(self.output_dir, runs.BACKUP_DIR)
        with runs.kept_or_restored(self.output_dir, created_output_dir):
            callbacks = self._open_run(plan, budget, backup_dir)
            start = time.time()
            with self._stop_on_sigterm(budget), self._recorded_stretch(plan.initial_epoch):
                enter_phase("training")
                history = self.fit(model, callbacks, plan.initial_epoch if plan.action in (
                    "continue", "resume_light") else 0)
                train_seconds = time.time() - start
                if not budget.reached:  # model.keras first, then the backup goes
                    enter_phase("saving")
                    save_model(model, model_path)
                    fit_record = self.fit_record(history)
                    runs.write_run(self.output_dir, self.preset, self.settings, self.total_epochs,
                                   data=self.data_spec, trained=True, precision=self.precision,
                                   train_seconds=round(train_seconds, 2),
                                   epochs_this_run=len(getattr(history, "epoch", ())),
                                   **({} if fit_record is None else {"fit_record": fit_record}))
        if budget.reached:
            if self.light_state_dtype:
                longrun.save_job_light_state(model, self.output_dir, budget.epochs_done,
                                             self.light_state_dtype, self.schedule_offsets)
            runs.write_run(self.output_dir, self.preset, self.settings, budget.epochs_done,
                           data=self.data_spec, trained=False, precision=self.precision)
            longrun.report_stop(self.output_dir, budget.reason)
            say(f"Stopped by {budget.reason} after epoch {budget.epochs_done} of "
                f"{self.total_epochs}; the run is kept in {self.output_dir} (backup/): rerun the "
                "same command to resume.", self.verbose)
            return stopped_result(self.preset, self.output_dir, budget.reason,
                                  budget.epochs_done, self.total_epochs)
        runs.discard_previous(self.output_dir)
        shutil.rmtree(backup_dir, ignore_errors=True)
        longrun.remove_light_state(self.output_dir)
        if budget.stop_requested:  # SIGTERM in the last epoch or while saving: stop before scoring
            longrun.report_stop(self.output_dir, "SIGTERM")
            say(f"Stopped by SIGTERM after training ({runs.epochs_text(self.total_epochs)}); "
                f"{model_path} is saved: rerun the same command to finish the final evaluation.",
                self.verbose)
            return stopped_result(self.preset, self.output_dir, "SIGTERM", self.total_epochs,
                                  self.total_epochs)
        return self._finish(model, history, train_seconds)

    def _resume_schedule_offsets(self, model, plan):
        """The schedule offsets of this stretch (`ScheduleOffsets`, from
        `longrun.resume_light_state`): from a light state, its steps, after its weights are loaded
        into `model`; from a backup, the offsets the light state says were in force when it was
        written; none otherwise."""
        if plan.action not in ("resume", "resume_light"):
            return {}
        return longrun.resume_light_state(model, self.output_dir,
                                          has_backup=plan.action == "resume")[1]

    def _open_run(self, plan, budget, backup_dir):
        """The folder's first changes (`previous/` for a fresh start, run.json) and the
        callbacks of `fit`; says what is about to run."""
        if self.fresh or not self.resumable:  # a job that cannot resume restarts from epoch 0
            if runs.set_aside(self.output_dir):
                say(f"The run that was in {self.output_dir} is kept in "
                    f"{os.path.join(self.output_dir, runs.PREVIOUS_DIR)}/ until this one "
                    + ("has backed up its first epoch" if self.resumable else "is trained")
                    + " (and put back if this one stops before)", self.verbose)
        os.makedirs(self.output_dir, exist_ok=True)
        runs.write_run(self.output_dir, self.preset, self.settings, plan.initial_epoch,
                       data=self.data_spec, trained=plan.action == "continue",
                       precision=self.precision)
        callbacks = [crvae_callbacks.NaNGuard()]
        if self.resumable:  # kept when fit returns: a stopped run resumes from it
            callbacks.append(crvae_callbacks.AtomicBackupAndRestore(backup_dir,
                                                                    delete_checkpoint=False))
            callbacks.append(DiscardPreviousRun(self.output_dir))  # after the first backup
            if self.schedule_offsets:  # after the restore, before the step is traced
                callbacks.append(crvae_callbacks.ScheduleOffsets(self.schedule_offsets))
        # The run's machine hours: earlier stretches' (sessions.json) + this one's, in every
        # epoch's logs before the job's history callbacks write them.
        self.timer = self.epoch_timer(longrun.training_seconds_so_far(self.output_dir)
                                      if plan.action in ("resume", "resume_light", "continue")
                                      else 0.0)
        callbacks += [self.timer] + self.callbacks() + [budget]
        if plan.message:
            say(plan.message, self.verbose)
        say(self.describe(), self.verbose)
        requested = self.config.training.precision
        say(f"Precision: {crvae_precision.describe(requested, self.precision)}", self.verbose)
        return callbacks

    def _finish(self, model, history, train_seconds):
        """The final evaluation of a trained (saved) model: metrics.json, then run.json
        `finished`. Interrupted, the next `run` does it again from model.keras."""
        enter_phase("evaluation")
        metrics = self.report(model, history, train_seconds)
        metrics.setdefault("precision", self.precision)
        write_json(metrics, os.path.join(self.output_dir, "metrics.json"))
        record = runs.read_run(self.output_dir) or {}
        fields = {key: record[key] for key in ("train_seconds", "epochs_this_run") if key in record}
        runs.write_run(self.output_dir, self.preset, self.settings, self.total_epochs,
                       finished=True, data=self.data_spec, precision=self.precision, **fields)
        if self.verbose:
            self.summarize(metrics)
        return metrics


class DiscardPreviousRun(keras.callbacks.Callback):
    """Deletes the run `--fresh` set aside in `previous/` at the end of the first epoch, once the
    `BackupAndRestore` callback before it has saved that epoch (the new run can then resume)."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def on_epoch_end(self, epoch, logs=None):
        if runs.has_previous(self.output_dir):
            runs.discard_previous(self.output_dir)


def recorded_history(output_dir, epochs_this_run=0, name="history.csv"):
    """A stand-in for the Keras History of a run whose training ended in an earlier call:
    `.history` from history.csv (or `name`), `.epoch` of length `epochs_this_run` (that call's
    epochs)."""
    rows = crvae_callbacks.read_history(os.path.join(output_dir, name))
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    values = {key: [float(row[key]) for row in rows if row.get(key, "") != ""] for key in keys}
    return types.SimpleNamespace(history=values, epoch=list(range(int(epochs_this_run))))


def fresh_from_resume(fresh, resume):
    """`fresh` from the two spellings: `resume=False` (the old `train_gan` argument) means
    `fresh=True`; `resume=None` leaves `fresh`."""
    return bool(fresh) if resume is None else (bool(fresh) or not resume)
