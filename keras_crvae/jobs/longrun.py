"""The long-run engine: train for days on a CPU, resumably, within a time budget.

A long training run is cut into stretches (sessions). Each stretch trains until its time budget or a
SIGTERM, always stopping at an epoch end, and leaves a state the next stretch resumes from:

    backup/                 `keras.callbacks.BackupAndRestore`: weights, optimizer state and epoch
                            (the full state, on the machine that trained)
    resume_weights.npz      the light state: `model.get_weights()` (no optimizer moments), float32
                            or float16 (`save_weights_npz`); small enough to commit, so a run moves
                            between machines
    resume.json             `{"epochs_done": N, "steps_per_epoch": S, "weights_dtype": "float32"}`
                            (`save_light_state`); a job's (`save_job_light_state`) has per-optimizer
                            `optimizer_steps` and `optimizer_offsets` instead of steps per epoch
    sessions.json           one record per stretch: first epoch, epochs run, seconds, backend,
                            threads, CPU, load average, end time (`record_session`)
    progress.json           scores written between stretches (a list of dicts, `append_json_list`)
    history.csv             one row per epoch (`keras.callbacks.CSVLogger(append=True)`)
    model.weights.h5, final_weights.npz, train_info.json   a finished run (`train_resumably`)

The pieces, usable one by one:
    `TimeBudget`        callback: stop at the first epoch (or step) end after N seconds, at the
                        queue's deadline (`CRVAE_DEADLINE`, below), or when a stop is requested
    `stop_on_sigterm`   context manager: SIGTERM requests that stop
    `EpochTimer`        callback: wall time of the epochs actually run; with `offset_seconds` it
                        also logs `train_hours`, the run's training hours summed over all its
                        stretches, into every epoch's logs (history.csv: NLL/FID-vs-hours curves)
    `report_stop`       a stopped stretch says so to the queue that started it (below)
    `StudyBudget`       one budget over a study's runs, each trained by a job in turn
    `save_weights_npz` / `load_weights_npz`, `save_light_state`, `resume_epoch`, `record_session`
    `train_resumably`   all of them around one `fit` (the engine of `tools/reproduce/reproduce_table1.py` and
                        `tools/reproduce/reproduce_iwae_table.py`)
and the jobs of `keras_crvae.jobs` (`crvae train --stop_after_minutes=N`) use `TimeBudget` and
`stop_on_sigterm` with their own `backup/`, and `save_job_light_state` / `resume_light_state` for
`--light_state_dtype`.

A queue of long commands (`tools/reproduce/run_queue.py`) talks to every stretch through two
environment variables, so that any command built on this engine (`crvae train`, the reproduction
and study tools) can be queued without knowing its flags:

    CRVAE_DEADLINE      a `time.time()`: every `TimeBudget` also stops at the first epoch end after it
    CRVAE_STOP_FILE     a file: a stretch stopped by its budget, the deadline or SIGTERM appends one
                        line (`report_stop`), so the queue tells "stopped, resume later" from
                        "finished" (both exit with status 0)

The file formats are those of `tools/reproduce/reproduction.py` before it moved here, byte for byte where
they are JSON: runs trained by either resume and rescore with the other.
"""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import threading
import time

import keras
import numpy as np

from keras_crvae import precision as crvae_precision

# The weights-only npz (light states, final weights) is a file format of the library's
# (`keras_crvae.io`, which shipped models load too); its names stay importable from here.
from keras_crvae.io import (  # noqa: F401
    WEIGHTS_NPZ_DTYPES as LIGHT_STATE_DTYPES, atomic_path, float16_if_representable,
    load_weights_npz, save_weights_npz, write_json)
# The run folder's file names and the keras-free readers live with the run-folder rules; they are
# importable from here too.
from keras_crvae.jobs.runs import (  # noqa: F401
    BACKUP_DIR, FINAL_WEIGHTS, FULL_WEIGHTS, PROGRESS, RESUME_INFO, RESUME_WEIGHTS, SESSIONS,
    TRAIN_INFO, append_json_list, read_json_list, resume_epoch)

DEADLINE_ENV = "CRVAE_DEADLINE"
STOP_FILE_ENV = "CRVAE_STOP_FILE"


def queue_deadline():
    """The `time.time()` of `CRVAE_DEADLINE`, or None when it is unset or not a number."""
    try:
        return float(os.environ[DEADLINE_ENV])
    except (KeyError, ValueError):
        return None


def report_stop(where, reason):
    """Appends `where: stopped by reason` to the file `CRVAE_STOP_FILE` names (if it is set): the
    stretch stopped before its run finished and resumes when the same command runs again."""
    path = os.environ.get(STOP_FILE_ENV)
    if path:
        with open(path, "a") as handle:
            handle.write(f"{where}: stopped by {reason} at "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n")


class TimeLimitReached(Exception):
    """Training stopped at an epoch end (time budget or SIGTERM); the run resumes on the next call."""


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` at the first epoch end (or step end) after `seconds`, or when a stop is requested.

    A stop is requested by setting `stop_requested = True` (`stop_on_sigterm` does so on SIGTERM).
    A queue's deadline (`CRVAE_DEADLINE`, read when `fit` begins) stops it like the budget.
    At an epoch end the budget never stops the last epoch of `fit` (there is nothing left to stop:
    the run finishes). Follows `tools/reproduce/reproduction.py`'s `--stop_after_minutes` (epoch ends) and
    `sprites_training.TimeBudget` (step ends, a fixed training budget).

    Args:
        seconds: float or None. The budget; None or 0: no budget (only a requested stop).
        start: float or None, a `time.time()` the budget counts from; default: when `fit` begins.
        per_step: bool, default False. Check at every step's end (and count `steps`) instead of at
            epoch ends; a step-end stop leaves its epoch unfinished, so use it for a fixed training
            budget, not for a run that resumes.
        label: str, how the budget is named in `reason` (default "a time budget of N s").

    Attributes:
        reached: bool, the callback stopped training.
        reason: str or None, "SIGTERM" or `label`.
        epochs_done: int, the epochs the run has finished in all (`epoch + 1` of the last epoch end).
        steps: int, steps counted (with `per_step`).
    """

    def __init__(self, seconds=None, start=None, per_step=False, label=None):
        super().__init__()
        self.seconds = float(seconds) if seconds else None
        self.start = start
        self.per_step = bool(per_step)
        self.label = label or (f"a time budget of {self.seconds:g} s" if self.seconds else None)
        self.reached = False
        self.stop_requested = False
        self.reason = None
        self.epochs_done = 0
        self.steps = 0
        self.deadline = queue_deadline()  # read again when `fit` begins

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = time.time()
        self.deadline = queue_deadline()

    def over_budget(self):
        """True once `seconds` have passed since `start`."""
        return bool(self.seconds) and time.time() - self.start >= self.seconds

    def past_deadline(self):
        """True once the queue's deadline (`CRVAE_DEADLINE`) has passed."""
        return self.deadline is not None and time.time() >= self.deadline

    def stop_reason(self):
        """Why a stretch should stop now: "SIGTERM", the budget's label or the queue's deadline;
        None while it may go on. (Loops outside `fit`, such as scoring in parts, ask this.)"""
        if self.stop_requested:
            return "SIGTERM"
        if self.over_budget():
            return self.label
        if self.past_deadline():
            return f"the queue's deadline ({DEADLINE_ENV})"
        return None

    def _stop(self):
        self.reached = self.model.stop_training = True
        self.reason = self.stop_reason()

    def on_train_batch_end(self, batch, logs=None):
        if self.per_step:
            self.steps += 1
            if self.stop_reason():
                self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if not self.per_step and self.stop_reason() and epoch + 1 < self.params["epochs"]:
            self._stop()


@contextlib.contextmanager
def stop_on_sigterm(budget):
    """While the block runs (`fit`), SIGTERM (`kill PID`) sets `budget.stop_requested` (a `TimeBudget`),
    which stops training at the end of the current epoch, as the time budget does.

    During the last epoch there is no epoch end to stop at: `fit` finishes, and the caller reads
    `budget.stop_requested` (`jobs.base.TrainingJob` then saves the model and stops before its
    final evaluation). A second SIGTERM gets the handler that was there before (the process ends,
    or the `crvae` command's one line and exit status 143; a per-epoch `backup/` keeps the state
    of the last finished epoch). Python
    installs signal handlers in the main thread only; elsewhere the block runs without one. The
    previous handler is restored when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # a handler installed outside Python: restore the default
        previous = signal.SIG_DFL

    def request_stop(signum, frame):
        # No printing here (a handler may interrupt a print); the caller says it stopped.
        budget.stop_requested = True
        signal.signal(signal.SIGTERM, previous)

    signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class EpochTimer(keras.callbacks.Callback):
    """Sums the wall time of the epochs actually run.

    Args:
        offset_seconds: float or None, default None. The run's training seconds before this
            stretch (`training_seconds_so_far`). When given, every epoch's logs get `train_hours`:
            `(offset_seconds + seconds) / 3600`, the run's training hours at that epoch's end, which
            the history callbacks placed AFTER this one write beside the epoch's metrics.

    Attributes:
        seconds: float, the epochs' wall time.
        epochs_run: int.
        records_sessions: bool (class attribute), False: the stretch's `sessions.json` record is
            its owner's to write (`record_session` at the stretch's end); a subclass that writes
            it itself at every epoch end says True.
    """

    records_sessions = False

    def __init__(self, offset_seconds=None):
        super().__init__()
        self.seconds, self.epochs_run, self._start = 0.0, 0, None
        self.offset_seconds = offset_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.time() - self._start
        self.epochs_run += 1
        if self.offset_seconds is not None and logs is not None:
            logs["train_hours"] = round((self.offset_seconds + self.seconds) / 3600.0, 5)


def csv_has_column_or_is_new(path, column):
    """True when the CSV file at `path` does not exist (or is empty) or its header has `column`."""
    path = pathlib.Path(path)
    if not path.exists():
        return True
    with open(path) as handle:
        header = handle.readline().strip()
    return not header or column in header.split(",")


def training_seconds_so_far(folder):
    """The training seconds of a run's earlier stretches: the sum of `sessions.json`'s records
    (0 without one)."""
    return float(sum(record.get("train_seconds", 0.0)
                     for record in read_json_list(pathlib.Path(folder) / SESSIONS)))


def session_record(first_epoch, timer, threads=0):
    """One training stretch's record (a `sessions.json` entry): first epoch, epochs run, the
    epochs' seconds, backend, threads, the CPU (`precision.cpu_description`), load average and end
    time.

    Args:
        first_epoch: int, the epoch the stretch started at.
        timer: an `EpochTimer` (its `epochs_run` and `seconds`).
        threads: int, the TensorFlow thread setting of the stretch (0: TensorFlow's default).
    """
    return {
        "first_epoch": int(first_epoch), "epochs_run": int(timer.epochs_run),
        "train_seconds": round(timer.seconds, 1),
        "epoch_seconds": round(timer.seconds / max(timer.epochs_run, 1), 2),
        "backend": keras.backend.backend(), "threads": int(threads),
        "cpu": crvae_precision.cpu_description(),  # machines differ between sessions
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "ended": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def record_session(folder, first_epoch, timer, threads=0):
    """Appends one stretch's record (`session_record`) to `folder/sessions.json`; returns the list.

    Args:
        folder: str or path, the run folder.
        first_epoch, timer, threads: as in `session_record`.
    """
    return append_json_list(pathlib.Path(folder) / SESSIONS,
                            session_record(first_epoch, timer, threads))


class StudyBudget:
    """The time budget of a study: several runs trained in turn (each by a job, which stops at an
    epoch end on its share of the budget and resumes when the study runs again).

    Every stretch trains at least one epoch, however small its budget: `minutes_left()` is never
    below a microsecond, and `spent()` is False until a run that was not finished before has been
    handed to its job (`ran(...)`).

    Args:
        minutes: float or None; None or 0: no budget (only SIGTERM or a queue's deadline stop).
        label: str, how the budget is named when it stops the study (`report_stop`).
    """

    def __init__(self, minutes, label):
        self.minutes = float(minutes or 0.0)
        self.label = label
        self.started = time.time()
        self.trained = False

    def minutes_left(self):
        """The `stop_after_minutes` to give the next run's job (None: no budget)."""
        if not self.minutes:
            return None
        return max(self.minutes - (time.time() - self.started) / 60.0, 1e-6)

    def ran(self, finished_before):
        """Notes that a run was handed to its job (`finished_before`: it only read its results)."""
        self.trained = self.trained or not finished_before

    def spent(self):
        """True when a run has trained in this stretch and the budget or the queue's deadline has
        passed: the study stops before its next run."""
        now = time.time()
        deadline = queue_deadline()
        return self.trained and (bool(self.minutes) and now - self.started >= self.minutes * 60
                                 or deadline is not None and now >= deadline)

    def stop(self, folder, next_run):
        """Reports the stop (`report_stop`) and says so."""
        report_stop(str(folder), self.label)
        print(f"Stopped by {self.label} before {next_run}; rerun the same command to resume.",
              flush=True)


def limit_threads(threads):
    """One knob for a shared CPU (two long runs side by side, one thread each): TensorFlow's
    intra- and inter-op thread counts, or XLA's CPU threads on JAX (0 leaves them). Call it before
    the first computation: TensorFlow fixes its thread pools then, JAX reads `XLA_FLAGS` when its
    CPU backend starts."""
    if threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif threads and keras.backend.backend() == "jax" and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={str(threads > 1).lower()} "
                                   f"intra_op_parallelism_threads={threads}")


def save_light_state(model, folder, epochs_done, steps_per_epoch, dtype="float32"):
    """Writes the light state of a stopped run: `resume_weights.npz` (`save_weights_npz`, without
    Adam's moments: a third of the size) and `resume.json` (epochs done, steps per epoch, dtype)."""
    folder = pathlib.Path(folder)
    save_weights_npz(model, folder / RESUME_WEIGHTS, dtype=dtype)
    (folder / RESUME_INFO).write_text(json.dumps(
        {"epochs_done": int(epochs_done), "steps_per_epoch": int(steps_per_epoch),
         "weights_dtype": dtype}, indent=2) + "\n")


def save_job_light_state(model, folder, epochs_done, dtype, offsets, names=None):
    """The light state of a stopped training job (`keras_crvae.jobs.base.TrainingJob` with
    `light_state_dtype`): `resume_weights.npz` (`save_weights_npz` in `dtype`) and `resume.json`
    with the epochs done, the dtype and, per optimizer (`callbacks.model_optimizers`), the steps
    taken in all (`optimizer_steps`: the schedule offsets of a resume from this state) and the
    offsets in force while this stretch ran (`optimizer_offsets`: those of a resume from the
    backup written with it). Both files are written atomically, the weights first. `names`:
    `(weights file, info file)` for a second model of the job (the VQ-VAE's prior), default
    `(RESUME_WEIGHTS, RESUME_INFO)`."""
    from keras_crvae import callbacks

    weights_name, info_name = names or (RESUME_WEIGHTS, RESUME_INFO)
    folder = pathlib.Path(folder)
    with atomic_path(folder / weights_name) as temporary:
        save_weights_npz(model, temporary, dtype=dtype)
    counters = callbacks.optimizer_steps(model)
    offsets = {name: int(offsets.get(name, 0)) for name in counters}
    write_json({"epochs_done": int(epochs_done), "weights_dtype": dtype,
                "optimizer_steps": {name: offsets[name] + counters[name] for name in counters},
                "optimizer_offsets": offsets}, folder / info_name)


def read_light_state(folder, names=None):
    """`resume.json` of a run folder as a dict, or None when there is no light state (both files
    are needed). `names`: as in `save_job_light_state`."""
    weights_name, info_name = names or (RESUME_WEIGHTS, RESUME_INFO)
    folder = pathlib.Path(folder)
    if not ((folder / info_name).is_file() and (folder / weights_name).is_file()):
        return None
    return json.loads((folder / info_name).read_text())


def resume_light_state(model, folder, has_backup, names=None):
    """`(epochs_done, offsets)` of a stretch that resumes a job run from `folder`, or `(None, {})`
    when there is no light state there.

    With `has_backup` (this machine's full state, which restores `model` and its optimizer),
    `offsets` are the schedule offsets the light state says were in force when it was written.
    Without, the light state's weights are loaded into `model` (fresh optimizer moments) and
    `offsets` are its optimizer steps, written back into its info file as the offsets in force
    (a backup this stretch writes then counts from here). `names`: as in `save_job_light_state`.
    """
    weights_name, info_name = names or (RESUME_WEIGHTS, RESUME_INFO)
    light = read_light_state(folder, names=names)
    if light is None:
        return None, {}
    if has_backup:
        return int(light["epochs_done"]), dict(light.get("optimizer_offsets", {}))
    load_weights_npz(model, os.path.join(folder, weights_name))
    offsets = dict(light.get("optimizer_steps", {}))
    write_json({**light, "optimizer_offsets": offsets}, os.path.join(folder, info_name))
    return int(light["epochs_done"]), offsets


def remove_light_state(folder, names=None):
    """Deletes a run folder's light state (once the run is trained). `names`: as in
    `save_job_light_state`."""
    for name in names or (RESUME_WEIGHTS, RESUME_INFO):
        pathlib.Path(folder, name).unlink(missing_ok=True)


def save_final_weights(model, path, dtype="float32"):
    """Writes a trained run's `final_weights.npz` (`save_weights_npz` in `dtype`) and loads it back
    into `model`: the run is then scored with exactly the weights it commits (with float16, the
    rounded ones), so a machine that has only the committed file scores the same model."""
    save_weights_npz(model, path, dtype=dtype)
    if dtype != "float32":
        load_weights_npz(model, path)


def train_resumably(model, folder, train_images, batch_size, epochs, compile_model, *, seed=0,
                    verbose=2, stop_after_seconds=None, start=None, stop_label=None,
                    light_state_dtype="float32", threads=0, scored_only=False, on_stop=None,
                    **fit_kwargs):
    """Trains `model` into `folder` in stretches, or loads its weights when it is trained already.

    A run resumes from the first state it finds: the full `backup/` (weights, optimizer and epoch;
    a killed or stopped run on this machine), else the light state `resume_weights.npz` +
    `resume.json` (weights and epoch; a fresh optimizer continues the schedule), else epoch 0.
    A run trained already (`train_info.json` with `model.weights.h5` or `final_weights.npz`) is only
    loaded (from `final_weights.npz` when it exists: the weights it is scored with).

    The data: `keras_crvae.data.training_data(train_images, batch_size, seed=seed + initial_epoch)`
    (dynamically binarized MNIST-like images `(N, 28, 28[, 1])` in [0, 1]; another shuffle and
    binarization stream after each resume).

    Args:
        model: an uncompiled Keras model of the run's architecture (built by the caller).
        folder: str or path, the run folder (created by the caller).
        train_images: float array `(N, ...)`.
        batch_size, epochs: int; `epochs` is the run's total.
        compile_model: function `(start_step) -> None` compiling `model` with an optimizer whose
            learning-rate schedule starts at optimizer step `start_step`.
        seed: int, default 0.
        verbose: int, default 2. Keras `fit` verbosity (the status lines print whatever it is).
        stop_after_seconds: float or None. `TimeBudget`: stop at the first epoch end after this.
        start: float or None, the `time.time()` the budget counts from (default: now).
        stop_label: str, how the budget is named in the stop message.
        light_state_dtype: "float32" or "float16", the dtype of `resume_weights.npz` and of
            `final_weights.npz` (`save_final_weights`).
        threads: int, recorded in `sessions.json`.
        scored_only: bool, default False. Never train: the run must be trained already (its
            `final_weights.npz` is what is loaded); a rescore.
        on_stop: function `(model, epochs_done) -> None` called after the light state is written
            when the budget or SIGTERM stopped training (e.g. a progress score for `progress.json`).
        **fit_kwargs: more `model.fit` arguments (`steps_per_execution` is not one: compile).

    Writes `model.weights.h5`, `final_weights.npz` (`save_final_weights`), `train_info.json`
    (wall time, seconds per epoch, images/s of this stretch; all stretches' seconds) and
    `history.csv`, records the stretch in `sessions.json` and removes `backup/` and the light state
    once the run is trained.

    Returns:
        dict, the content of `train_info.json`.

    Raises:
        TimeLimitReached: the budget passed, or a SIGTERM came (`stop_on_sigterm`), at an epoch end
            before the last epoch; that epoch's state is in `backup/` and in the light state.
        ValueError: `scored_only` for an untrained run; a light state of another steps per epoch.
    """
    from keras_crvae import callbacks, data

    folder = pathlib.Path(folder)
    weights_path, info_path = folder / FULL_WEIGHTS, folder / TRAIN_INFO
    final_path = folder / FINAL_WEIGHTS
    if info_path.exists() and (weights_path.exists() or final_path.exists()):
        # Trained already (an earlier stretch stopped during evaluation, or a rescore): the
        # committed weights, which the run is scored with on every machine.
        compile_model(0)
        if final_path.exists():
            load_weights_npz(model, final_path)
        else:
            model.load_weights(str(weights_path))
            save_final_weights(model, final_path, light_state_dtype)
        return json.loads(info_path.read_text())
    if scored_only:
        raise ValueError(f"{folder}: a rescore needs {TRAIN_INFO} and {FINAL_WEIGHTS}.")
    steps_per_epoch = len(train_images) // batch_size
    initial_epoch, state = resume_epoch(folder)
    if state == "light":
        info = json.loads((folder / RESUME_INFO).read_text())
        if info["steps_per_epoch"] != steps_per_epoch:
            raise ValueError(f"{folder}: the light state was trained with {info['steps_per_epoch']} "
                             f"steps per epoch, this run has {steps_per_epoch} (other data or batch "
                             "size); start the row in a new --output_dir.")
        print(f"{folder.name}: resuming at epoch {initial_epoch} from its weights "
              f"({RESUME_WEIGHTS}; fresh Adam moments, the schedule continues)", flush=True)
        compile_model(initial_epoch * steps_per_epoch)
        load_weights_npz(model, folder / RESUME_WEIGHTS)
    else:
        compile_model(0)  # a backup restores the optimizer's step along with its moments
        if state == "backup":
            print(f"{folder.name}: resuming at epoch {initial_epoch} from this machine's backup/ "
                  "(weights and Adam's state)", flush=True)
    history_path = folder / "history.csv"
    # CSVLogger(append=True) writes no second header: a history begun without the `train_hours`
    # column (a row trained before it existed) keeps its columns.
    timer = EpochTimer(offset_seconds=training_seconds_so_far(folder)
                       if csv_has_column_or_is_new(history_path, "train_hours") else None)
    budget = TimeBudget(stop_after_seconds, start=start, label=stop_label)
    started = time.time()
    fit_callbacks = [
        callbacks.NaNGuard(),
        # Kept when fit returns: a stopped run resumes from it (removed below once trained).
        callbacks.AtomicBackupAndRestore(str(folder / BACKUP_DIR), delete_checkpoint=False),
        # After the restore: the schedule reads the run's global step whatever the optimizer's
        # counter says (a backup written after a light-state resume counts from that resume).
        callbacks.ContinueLearningRateSchedule(initial_epoch * steps_per_epoch,
                                               label=f"{folder.name}: "),
        timer,  # before the CSV logger: each row gets the run's `train_hours`
        keras.callbacks.CSVLogger(str(history_path), append=True), budget]
    batches = data.training_data(train_images, batch_size=batch_size, seed=seed + initial_epoch)
    try:
        with stop_on_sigterm(budget):
            model.fit(batches, epochs=epochs, initial_epoch=initial_epoch, verbose=verbose,
                      shuffle=False,  # the pipeline shuffles itself
                      callbacks=fit_callbacks, **fit_kwargs)
    except BaseException:
        # Ctrl-C, a NaN, a crash: the epochs that did run still count in the run's training time
        # (they are in backup/ and history.csv, and the next stretch resumes after them).
        if timer.epochs_run:
            record_session(folder, initial_epoch, timer, threads)
        raise
    sessions = record_session(folder, initial_epoch, timer, threads)
    if budget.reached:
        save_light_state(model, folder, budget.epochs_done, steps_per_epoch, light_state_dtype)
        if on_stop is not None:
            on_stop(model, budget.epochs_done)
        report_stop(str(folder), budget.reason)
        raise TimeLimitReached(f"{folder.name}: stopped by {budget.reason} after epoch "
                               f"{budget.epochs_done}; run the same command again to resume.")
    trained_images = steps_per_epoch * batch_size * max(timer.epochs_run, 1)
    train_info = {
        "wall_seconds_this_session": round(time.time() - started, 1),
        "epoch_seconds": round(timer.seconds / max(timer.epochs_run, 1), 2),
        "images_per_second": round(trained_images / max(timer.seconds, 1e-9), 1),
        # Every stretch that trained the run (several sessions for a long run).
        "train_seconds_all_sessions": round(sum(x["train_seconds"] for x in sessions), 1),
        "training_sessions": len(sessions),
    }
    model.save_weights(str(weights_path))
    save_final_weights(model, final_path, light_state_dtype)
    info_path.write_text(json.dumps(train_info, indent=2))
    shutil.rmtree(folder / BACKUP_DIR, ignore_errors=True)
    for name in (RESUME_WEIGHTS, RESUME_INFO):
        (folder / name).unlink(missing_ok=True)
    return train_info
