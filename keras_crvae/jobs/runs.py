"""What a training job does when its output folder already holds a run (NumPy and the standard library
only, so `crvae train` decides before TensorFlow loads).

Every job writes `run.json` into its output folder when it starts: the preset, the settings that
define the model and its training (every preset table entry except `epochs`), and, once training
ends, the number of epochs completed. Running a job again on the same folder then means:

    the folder is new or empty            train from epoch 0
    --fresh                               delete this library's files there and train from epoch 0
    another preset's run                  refused: name another --output_dir or pass --fresh
    the same preset, other settings       refused, naming each setting that differs
    a killed run (backup/ present)        "resuming from epoch N": Keras BackupAndRestore reloads the
                                          weights and optimizer state of the last finished epoch
    a finished run of N >= --epochs       "already trained (N epochs)": nothing runs, exit status 0
    a finished run of N < --epochs        "continuing from epoch N to M": model.keras (optimizer
                                          state and LR schedule included) trains on

`history.csv` keeps one row per epoch across all of these (`keras_crvae.callbacks.EpochHistory`).
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
# The files and folders the jobs write; `--fresh` deletes these and nothing else.
ARTIFACTS = ("run.json", "model.keras", "metrics.json", "history.csv", "history_stage1.csv",
             "history_stage2.csv", "samples.png", "samples_stage1.png", "reconstructions.png",
             "backup", "tensorboard")
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
        action: "start", "resume" (a killed run's backup), "continue" (a finished run, more epochs)
            or "done" (a finished run with at least the epochs asked for).
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


def write_run(output_dir, preset, settings, completed_epochs=0, finished=False, data=None):
    """Writes `run.json` atomically."""
    record = {"preset": preset, "settings": settings, "completed_epochs": int(completed_epochs),
              "finished": bool(finished), "data": data}
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


def setting_differences(previous, current, prefix=""):
    """`[(name, previous value, current value)]` for every setting that differs."""
    differences = []
    for key in sorted(set(previous) | set(current)):
        old, new = previous.get(key), current.get(key)
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
    restored = backup_epoch(output_dir) if resumable else None
    if restored is not None:
        if restored >= epochs:
            return RunPlan("resume", restored, f"resuming at epoch {restored} of {epochs}: only "
                                               "the final evaluation is left")
        return RunPlan("resume", restored, f"resuming from epoch {restored} (backup in "
                                           f"{os.path.join(output_dir, BACKUP_DIR)})")
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


def default_output_dir(preset):
    """`crvae_run` for the quick start (the README's), `<preset>_run` for every other preset, so
    that two presets' runs never share a folder by default."""
    return "crvae_run" if preset == "mnist_crvae_quickstart" else f"{preset}_run"


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
# One record per stretch that trained the run (its epochs and their seconds).
SESSIONS = "sessions.json"
# A finished run's weights without the optimizer's state, and its training record.
FINAL_WEIGHTS, TRAIN_INFO, FULL_WEIGHTS = "final_weights.npz", "train_info.json", "model.weights.h5"


def read_json_list(path):
    """The JSON list at `path` (`sessions.json`, `progress.json`), [] when there is none yet."""
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def append_json_list(path, record):
    """Appends `record` (a JSON-ready dict) to the JSON list at `path`; returns the list."""
    records = read_json_list(path) + [record]
    pathlib.Path(path).write_text(json.dumps(records, indent=2) + "\n")
    return records


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
