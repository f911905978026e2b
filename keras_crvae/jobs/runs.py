"""What a training job does when its output folder already holds a run (NumPy and the standard library
only, so `crvae train` decides before TensorFlow loads).

Every job writes `run.json` into its output folder when it starts: the preset, the settings that
define the model and its training (every preset table entry except `epochs`), and, once training
ends, the number of epochs completed. Running a job again on the same folder then means:

    the folder is new or empty            train from epoch 0
    --fresh                               move this library's files there into `previous/` and
                                          train from epoch 0; `previous/` is deleted once the new
                                          run has backed up its first epoch (non-resumable jobs:
                                          once it has finished), and put back if the new run
                                          fails or is interrupted before that
    another preset's run                  refused: name another --output_dir or pass --fresh
    the same preset, other settings       refused, naming each setting that differs
    a killed run (backup/ present)        "resuming from epoch N": Keras BackupAndRestore reloads the
                                          weights and optimizer state of the last finished epoch
    a stopped run's light state, no       "resuming from epoch N (light state)": the weights of
    backup/ (another machine)             `resume_weights.npz`, fresh optimizers whose schedules
                                          continue (jobs with `light_state_dtype`, e.g. the face
                                          runs; `keras_crvae.jobs.longrun.save_job_light_state`)
    a finished run of N >= --epochs       "already trained (N epochs)": nothing runs, exit status 0
    a finished run of N < --epochs        "continuing from epoch N to M": model.keras (optimizer
                                          state and LR schedule included) trains on
    a trained run whose final evaluation  "finishing the final evaluation": model.keras is loaded
    was interrupted                       and scored; nothing is retrained (every job, also those
                                          that cannot resume a killed training)

A run is `finished` in run.json only once its metrics.json is written; `trained` says model.keras
holds the weights after `completed_epochs` epochs. `history.csv` keeps one row per epoch across
all of these (`keras_crvae.callbacks.EpochHistory`).

One process at a time: `output_lock` holds `run.lock` (pid, host, start time) in the folder while a
job runs; another process is refused (`RunLockedError`), and a lock left by a process that is
gone (same host, dead pid) is taken over.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil

from keras_crvae.io import atomic_path

RUN_FILE = "run.json"
BACKUP_DIR = "backup"
# Where `--fresh` puts the run it replaces until the new run has a first epoch to resume from.
PREVIOUS_DIR = "previous"
LOCK_FILE = "run.lock"
# The files and folders the jobs write; `--fresh` deletes these and nothing else.
ARTIFACTS = ("run.json", "model.keras", "metrics.json", "history.csv", "history_stage1.csv",
             "history_stage2.csv", "history_prior.csv", "samples.png", "samples_stage1.png",
             "reconstructions.png", "backup", "backup_prior", "vq_vae_stage1.keras",
             "tensorboard", "sessions.json")
ARTIFACT_PREFIXES = ("samples_epoch", "reconstructions_epoch")


def epochs_text(count):
    """'1 epoch', '3 epochs'."""
    return f"{count} epoch" + ("" if count == 1 else "s")


class RunConflictError(ValueError):
    """The output folder holds a run this command cannot continue (another preset or settings)."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a job does with its output folder.

    Attributes:
        action: "start", "resume" (a killed run's backup), "resume_light" (no backup, but the
            light state of a stopped run, e.g. committed from another machine: weights only),
            "continue" (a finished run, more epochs),
            "evaluate" (a trained run whose final evaluation was cut short) or "done" (a
            finished run with at least the epochs asked for).
        initial_epoch: int, the epoch training starts at (0 for "start").
        message: str, one line for the user ("" for a plain start).
    """

    action: str
    initial_epoch: int = 0
    message: str = ""


def run_settings(config):
    """The settings of a `presets.Preset` that a resumed run must share: all but `epochs`."""
    settings = {"network": dict(config.network), "model": dict(config.model),
                "training": dataclasses.asdict(config.training)}
    settings["training"].pop("epochs")
    for table in ("stage2_network", "stage2_training"):
        value = getattr(config, table, None)
        if value is not None:
            value = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
            value.pop("epochs", None)
            settings[table] = value
    # Through JSON, so that tuples and lists compare equal after a round trip.
    return json.loads(json.dumps(settings))


def total_epochs(config):
    """The epochs a run of `config` trains: stage 1 + stage 2 for a Two-Stage preset."""
    stage2 = getattr(config, "stage2_training", None)
    return config.training.epochs + (stage2.epochs if stage2 is not None else 0)


def read_run(output_dir):
    """The `run.json` of `output_dir` as a dict, or None if there is none (or it is unreadable)."""
    try:
        with open(os.path.join(output_dir, RUN_FILE)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_run(output_dir, preset, settings, completed_epochs=0, finished=False, data=None,
              trained=None, **fields):
    """Writes `run.json` atomically.

    Args:
        output_dir, preset, settings: the run's folder, preset name and `run_settings`.
        completed_epochs: int, epochs trained.
        finished: bool, the run is complete: trained and its metrics.json written.
        data: str or None, where the images came from.
        trained: bool or None, model.keras holds the weights after `completed_epochs` epochs
            (True once the model is saved, also while the final evaluation runs); None:
            `finished`.
        **fields: more JSON-ready entries (e.g. `precision`, `train_seconds`).
    """
    record = {"preset": preset, "settings": settings, "completed_epochs": int(completed_epochs),
              "finished": bool(finished), "data": data,
              "trained": bool(finished if trained is None else trained), **fields}
    with atomic_path(os.path.join(output_dir, RUN_FILE)) as temporary:
        with open(temporary, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.write("\n")


def backup_epoch(output_dir):
    """Epochs finished by a killed run according to its Keras backup, or None without a backup."""
    path = os.path.join(output_dir, BACKUP_DIR, "training_metadata.json")
    try:
        with open(path) as handle:
            return int(json.load(handle)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0 if os.path.isdir(os.path.join(output_dir, BACKUP_DIR)) else None


# Settings the presets gained after some runs were trained, with the value those runs had (the
# builders' behaviour when the key is absent): a run folder whose run.json lacks one compares, and
# is rebuilt (tools/reproduce/ship_face_model.py), as if it held this value.
SETTINGS_ADDED_LATER = {"minibatch_average": False, "discriminator_pooling": "max",
                        "decoder_upsampling": "deconv"}


def setting_differences(previous, current, prefix=""):
    """`[(name, previous value, current value)]` for every setting that differs (a key the
    previous settings lack counts as its `SETTINGS_ADDED_LATER` value)."""
    differences = []
    for key in sorted(set(previous) | set(current)):
        old = previous.get(key)
        if key not in previous and key in current:
            old = SETTINGS_ADDED_LATER.get(key)
        new = current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += setting_differences(
                old, new, "stage2" if key.startswith("stage2_") else prefix)
        elif old != new:
            name = f"stage2_{key}" if prefix == "stage2" else key
            differences.append((name, old, new))
    return differences


def _has_artifacts(output_dir):
    return any(os.path.exists(os.path.join(output_dir, name)) for name in ARTIFACTS)


def plan_run(output_dir, preset, settings, epochs, fresh=False, resumable=True):
    """Decides what a job does with `output_dir` (see the module docstring).

    Args:
        output_dir: str.
        preset: str, the preset's name.
        settings: dict, `run_settings(config)` of this command.
        epochs: int, the epochs asked for.
        fresh: bool, start over whatever the folder holds.
        resumable: bool, whether the job can resume a killed run (Two-Stage: no).

    Returns:
        `RunPlan`.

    Raises:
        RunConflictError: another preset's run, or the same preset with other settings.
    """
    if fresh or not os.path.isdir(output_dir):
        return RunPlan("start")
    previous = read_run(output_dir)
    if previous is None:
        if _has_artifacts(output_dir):
            raise RunConflictError(
                f"--output_dir={output_dir} holds files of a run without {RUN_FILE} (an older "
                "version's, or not finished); pass --fresh to replace them, or another --output_dir")
        return RunPlan("start")
    if previous.get("preset") != preset:
        raise RunConflictError(
            f"--output_dir={output_dir} holds a run of preset {previous.get('preset')}, not "
            f"{preset}; pass another --output_dir, or --fresh to replace that run")
    differences = [item for item in setting_differences(previous.get("settings", {}), settings)
                   if item[0] not in ("synchronized_batch_norm",)]
    if differences:
        listed = ", ".join(f"{name}={old!r} there, {new!r} now" for name, old, new in differences)
        raise RunConflictError(
            f"--output_dir={output_dir} holds a run of {preset} with other settings ({listed}); "
            "rerun with the same settings to resume it, --fresh to start over, or use another "
            "--output_dir")
    done = int(previous.get("completed_epochs", 0))
    if previous.get("finished") and os.path.exists(os.path.join(output_dir, "model.keras")):
        if epochs <= done and not resumable:  # Two-Stage: both stages' epochs in `done`
            stages = " over both stages" if "stage2_training" in settings else ""
            return RunPlan("done", done,
                           f"already trained ({epochs_text(done)}{stages}) in "
                           f"{output_dir}; use --fresh to retrain")
        if epochs <= done:
            return RunPlan("done", done,
                           f"already trained ({epochs_text(done)}) in {output_dir}; use --fresh "
                           f"to retrain or --epochs=M (M > {done}) to continue")
        if not resumable:
            return RunPlan("start", 0, f"{output_dir} holds a finished run of {epochs_text(done)}; "
                                       f"this job cannot continue one, so it retrains ({epochs_text(epochs)})")
        return RunPlan("continue", done, f"continuing from epoch {done} to {epochs}")
    if (previous.get("finished") and epochs <= done
            and os.path.exists(os.path.join(output_dir, "metrics.json"))):
        # A finished run whose model.keras is not here: a committed study folder (the model file
        # is git-ignored) on another machine. Its results stand; retraining would replace them.
        return RunPlan("done", done,
                       f"already trained ({epochs_text(done)}) in {output_dir}: its metrics.json "
                       "is here but not its model.keras (not committed?); use --fresh to retrain")
    restored = backup_epoch(output_dir) if resumable else None
    if (previous.get("trained") and done >= 1
            and os.path.exists(os.path.join(output_dir, "model.keras"))
            and (restored is None or restored <= done)):
        if epochs <= done:  # killed or interrupted while model.keras was scored (any job)
            return RunPlan("evaluate", done,
                           f"{output_dir} holds a run trained for {epochs_text(done)} whose final "
                           "evaluation did not finish: finishing it (nothing is retrained)")
        if not resumable:
            return RunPlan("start", 0, f"{output_dir} holds a run of {epochs_text(done)}; this "
                                       "job cannot continue one, so it retrains "
                                       f"({epochs_text(epochs)})")
        return RunPlan("continue", done, f"continuing from epoch {done} to {epochs}")
    if restored is not None:
        if restored >= epochs:
            return RunPlan("resume", restored, f"resuming at epoch {restored} of {epochs}: only "
                                               "the final evaluation is left")
        return RunPlan("resume", restored, f"resuming from epoch {restored} (backup in "
                                           f"{os.path.join(output_dir, BACKUP_DIR)})")
    light = resume_epoch(output_dir) if resumable else (0, None)
    if light[1] == "light" and light[0] >= 1:
        return RunPlan("resume_light", light[0], f"resuming from epoch {light[0]} (light state "
                                                 f"{RESUME_WEIGHTS}: the weights, no backup/ here; "
                                                 "fresh optimizer moments, the learning-rate "
                                                 "schedules continue)")
    return RunPlan("start", 0, f"{output_dir} holds an unfinished run with nothing to resume; "
                               "starting over")


def clear_run(output_dir):
    """Deletes this library's artifacts (`ARTIFACTS`, per-epoch images) from `output_dir`."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name in ARTIFACTS or name.startswith(ARTIFACT_PREFIXES):
            path = os.path.join(output_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _is_artifact(name):
    # A stopped run's light state too: `--fresh` must not resume the new run from the old weights.
    return (name in ARTIFACTS or name in (RESUME_WEIGHTS, RESUME_INFO) + PRIOR_LIGHT_STATE
            or name.startswith(ARTIFACT_PREFIXES))


def _move_contents(source, target, names):
    """Moves `names` from `source` into `target` (renames: the same file system), run.json last."""
    for name in sorted(names, key=lambda item: item == RUN_FILE):
        os.replace(os.path.join(source, name), os.path.join(target, name))


def set_aside(output_dir):
    """Moves the run in `output_dir` (this library's files) into `output_dir/previous/`.

    Used by `--fresh` (and by jobs that cannot resume before they retrain), so that the run being
    replaced survives until the new one can stand on its own (`discard_previous`) and comes back
    if the new one fails first (`restore_previous`). When `previous/` exists already, an earlier
    replacement never got that far: the files in the folder are that unfinished replacement's, and
    are deleted instead (the run in `previous/` is the one worth keeping).

    Returns:
        str, the `previous/` folder, or None when the folder held no run.
    """
    if not os.path.isdir(output_dir):
        return None
    previous = os.path.join(output_dir, PREVIOUS_DIR)
    staging = previous + ".partial"
    if os.path.isdir(staging):  # a move cut short: put those files back first
        _move_contents(staging, output_dir, os.listdir(staging))
        os.rmdir(staging)
    names = [name for name in os.listdir(output_dir) if _is_artifact(name)]
    if os.path.isdir(previous):
        clear_run(output_dir)
        return previous
    if not names:
        return None
    os.makedirs(staging)
    _move_contents(output_dir, staging, names)
    os.replace(staging, previous)
    return previous


def restore_previous(output_dir):
    """Puts the run that `set_aside` moved into `previous/` back in place of what is there now;
    returns whether there was one."""
    previous = os.path.join(output_dir, PREVIOUS_DIR)
    if not os.path.isdir(previous):
        return False
    clear_run(output_dir)
    _move_contents(previous, output_dir, os.listdir(previous))
    os.rmdir(previous)
    return True


def discard_previous(output_dir):
    """Deletes `previous/` (the replaced run) once the new run can be resumed or is trained."""
    shutil.rmtree(os.path.join(output_dir, PREVIOUS_DIR), ignore_errors=True)


def has_previous(output_dir):
    """Whether `output_dir` keeps a run replaced by `--fresh` in `previous/`."""
    return os.path.isdir(os.path.join(output_dir, PREVIOUS_DIR))


def default_output_dir(preset):
    """`crvae_run` for the quick start (the README's), `<preset>_run` for every other preset, so
    that two presets' runs never share a folder by default."""
    return "crvae_run" if preset == "mnist_crvae_quickstart" else f"{preset}_run"


@contextlib.contextmanager
def kept_or_restored(output_dir, created_output_dir):
    """Around training: if the block fails or is interrupted before the new run has anything to
    resume from (no backed-up epoch, model.keras not saved), the folder goes back to what it was:
    removed if this run created it, else the run `--fresh` set aside in `previous/` is put back.
    (A run that has something to resume from is kept as it is.)"""
    try:
        yield
    except BaseException:
        record = read_run(output_dir) or {}
        if not record.get("trained") and backup_epoch(output_dir) in (None, 0):
            if created_output_dir:
                shutil.rmtree(output_dir, ignore_errors=True)
            else:
                restore_previous(output_dir)
        raise


@contextlib.contextmanager
def removed_unless_resumable(output_dir, created_output_dir):
    """Around training: if the block fails or is interrupted before a first epoch was backed up,
    in a folder this run created, the folder is removed (there is nothing to resume: no half-made
    run is left behind)."""
    try:
        yield
    except BaseException:
        if created_output_dir and backup_epoch(output_dir) in (None, 0):
            shutil.rmtree(output_dir, ignore_errors=True)
        raise


def fit_keeping_only_resumable_state(model, output_dir, created_output_dir, **fit_arguments):
    """`model.fit(**fit_arguments)` inside `removed_unless_resumable`. Returns the History."""
    with removed_unless_resumable(output_dir, created_output_dir):
        return model.fit(**fit_arguments)


def finished_run_metrics(output_dir):
    """The metrics.json of a finished run in `output_dir` ({} when it has none)."""
    metrics_path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        return {}
    with open(metrics_path) as handle:
        return json.load(handle)


# The files of a long run's folder (`keras_crvae.jobs.longrun`), kept here, without Keras, so that
# tools can read a run folder before TensorFlow loads.
# Light state of a stopped run: its weights and how far it got.
RESUME_WEIGHTS, RESUME_INFO, PROGRESS = "resume_weights.npz", "resume.json", "progress.json"
# The VQ-VAE job's second light state, its prior's (`keras_crvae.jobs.vq_vae`).
PRIOR_LIGHT_STATE = ("resume_prior_weights.npz", "resume_prior.json")
# One record per stretch that trained the run (its epochs and their seconds).
SESSIONS = "sessions.json"
# A finished run's weights without the optimizer's state, and its training record.
FINAL_WEIGHTS, TRAIN_INFO, FULL_WEIGHTS = "final_weights.npz", "train_info.json", "model.weights.h5"


def read_json_list(path):
    """The JSON list at `path` (`sessions.json`, `progress.json`), [] when there is none yet."""
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def write_json_list(path, records):
    """Writes the list `records` (JSON-ready dicts) to `path` atomically: a process killed while
    writing leaves the previous list, never a truncated file."""
    with atomic_path(path) as temporary:
        pathlib.Path(temporary).write_text(json.dumps(records, indent=2) + "\n")
    return records


def append_json_list(path, record):
    """Appends `record` (a JSON-ready dict) to the JSON list at `path` (atomically,
    `write_json_list`); returns the list."""
    return write_json_list(path, read_json_list(path) + [record])


def resume_epoch(folder):
    """`(epochs finished, where that state is)` of a run folder: the full `backup/` of a stopped or
    killed run on this machine first ("backup"), else the light state `resume.json` ("light");
    `(0, None)` for a new run."""
    folder = pathlib.Path(folder)
    metadata = folder / BACKUP_DIR / "training_metadata.json"
    if metadata.exists():
        return int(json.loads(metadata.read_text())["epoch"]), "backup"  # epochs finished
    if (folder / RESUME_INFO).exists():
        return int(json.loads((folder / RESUME_INFO).read_text())["epochs_done"]), "light"
    return 0, None


# One process per output folder (keras_crvae.jobs.locks), re-exported: the CLI and the jobs
# call them as runs.output_lock etc.
from keras_crvae.jobs.locks import (  # noqa: E402,F401
    RunLockedError, _process_start, _alive, OutputLock, output_lock, release_locks, _HELD)
