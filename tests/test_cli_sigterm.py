"""SIGTERM at every phase of `crvae train` leaves a folder that the same command resumes (issue 31),
through the real console script.

One tiny run (width 2, 256 images, 2 epochs of 8 steps) is terminated in each phase in turn, by
the test-only variable `CRVAE_TEST_SIGTERM_AT` (`keras_crvae.io.enter_phase`: the job sends
itself SIGTERM as it enters the phase, so no timer races the run), and the same command is rerun
after each:

    phase        what the signal does                          exit   the folder afterwards
    training     stops at the end of epoch 1 of 2              0      backup/ at epoch 1, no model
    saving       (the rerun resumed epoch 2) model.keras is    0      model.keras, run.json trained,
                 written whole, then the run stops before             no metrics.json, no backup/
                 scoring
    evaluation   the final evaluation is cut short             143    the same as before it
    (none)       the rerun finishes the evaluation only        0      metrics.json, finished: true

Four TensorFlow subprocesses in all.
"""

import json
import os
import subprocess

import pytest

from test_cli_drills import COMMAND, ENV, write_mnist_npz
from test_cli_run_folder import snapshot

ARGS = ["train", "--data=train.npz", "--output_dir=run", "--epochs=2", "--set", "base_channels=2",
        "--set", "latent_channels=8", "--batch_size=32", "--nll_samples=2", "--nll_images=8",
        "--eval_data=eval.npz"]


def terminated_at(phase, directory):
    """The same command, sending itself SIGTERM as it enters `phase` (None: no signal)."""
    env = dict(ENV)
    env.pop("CRVAE_TEST_SIGTERM_AT", None)
    if phase is not None:
        env["CRVAE_TEST_SIGTERM_AT"] = phase
    return subprocess.run([*COMMAND, *ARGS], cwd=directory, env=env, capture_output=True,
                          text=True, timeout=600)


def run_record(directory):
    return json.loads((directory / "run" / "run.json").read_text())


@pytest.fixture(scope="module")
def phases(tmp_path_factory):
    """{phase: (result, files afterwards, run.json afterwards)} for the chain of the docstring."""
    directory = tmp_path_factory.mktemp("sigterm")
    write_mnist_npz(directory / "train.npz", 256)
    write_mnist_npz(directory / "eval.npz", 16, key="x")
    outcomes = {}
    for phase in ("training", "saving", "evaluation", None):
        before = snapshot(directory / "run") if (directory / "run").exists() else {}
        result = terminated_at(phase, directory)
        outcomes[phase] = (result, sorted(os.listdir(directory / "run")), run_record(directory),
                           before, snapshot(directory / "run"))
    outcomes["directory"] = directory
    return outcomes


def test_sigterm_during_training_stops_at_the_epoch_end(phases):
    result, files, record, _, _ = phases["training"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Stopped by SIGTERM after epoch 1 of 2" in result.stdout
    assert "backup" in files and "history.csv" in files
    assert "model.keras" not in files and "metrics.json" not in files and "run.lock" not in files
    assert record["completed_epochs"] == 1 and not record["trained"] and not record["finished"]


def test_sigterm_while_saving_keeps_the_saved_model_and_leaves_the_evaluation(phases):
    result, files, record, _, _ = phases["saving"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from epoch 1" in result.stdout
    assert "Stopped by SIGTERM after training (2 epochs)" in result.stdout
    assert "Evaluating" not in result.stdout
    assert "model.keras" in files and "metrics.json" not in files
    assert "backup" not in files and "run.lock" not in files
    assert not any(name.startswith(".tmp") for name in files)  # nothing half-written
    assert record["trained"] and not record["finished"] and record["completed_epochs"] == 2


def test_sigterm_during_the_final_evaluation_changes_nothing(phases):
    result, files, record, before, after = phases["evaluation"]
    assert result.returncode == 143, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "crvae train: terminated (SIGTERM); rerun the same command to resume")
    assert "Traceback" not in result.stderr
    assert "finishing it (nothing is retrained)" in result.stdout
    assert after == before  # no metrics.json, run.json as it was, the lock released
    assert record["trained"] and not record["finished"]


def test_the_same_command_then_finishes_the_run(phases):
    result, files, record, before, after = phases[None]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finishing it (nothing is retrained)" in result.stdout and "Training" not in result.stdout
    assert "metrics.json" in files and "run.lock" not in files and record["finished"] is True
    assert after["model.keras"] == before["model.keras"]  # scored, not retrained
    directory = phases["directory"]
    metrics = json.loads((directory / "run" / "metrics.json").read_text())
    assert metrics["nll"]["num_images"] == 8
    epochs = [row.split(",")[0] for row in
              (directory / "run" / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]  # one row per epoch across the four calls
