"""The IWAE-table reproduction script runs its smoke mode end to end and resumes finished rows."""

import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SCRIPT = ROOT / "tools" / "reproduce" / "reproduce_iwae_table.py"

pytestmark = pytest.mark.skipif(
    not (SHARED / "mnist.npz").exists() or not (SHARED / "binarized_mnist.npz").exists(),
    reason="shared/data/mnist.npz and binarized_mnist.npz are needed (real MNIST, not shipped)")


def _run(output_dir, *extra, presets="mnist_mlp_vae,mnist_mlp_iwae_2layer"):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", f"--output_dir={output_dir}",
         f"--presets={presets}", "--num_train=200", "--num_valid=20",
         "--num_samples=4", "--threads=1", *extra],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=900)


def test_smoke_mode_writes_both_kinds_of_rows_and_skips_finished_ones(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    rows = {row["preset"]: row for row in summary["results"]}
    assert set(rows) == {"mnist_mlp_vae", "mnist_mlp_iwae_2layer"}
    assert rows["mnist_mlp_vae"]["paper_nll"] == 86.76
    assert rows["mnist_mlp_iwae_2layer"]["paper_nll"] == 83.89
    for name, row in rows.items():
        assert row["nll"]["num_samples"] == 4 and row["nll"]["num_images"] == 20
        # Finite and below 784 ln 2 nats (every pixel a coin flip): the output bias starts at the
        # training pixels' mean logit, so even one smoke epoch beats that.
        assert 0 < row["nll"]["mean"] < 784 * math.log(2)
        assert (tmp_path / name / "model.weights.h5").stat().st_size > 0
    # Active units: one count for one stochastic layer, "a+b" for two.
    assert "+" in str(rows["mnist_mlp_iwae_2layer"]["active_units"])
    assert "+" not in str(rows["mnist_mlp_vae"]["active_units"])
    assert "| mnist_mlp_iwae_2layer |" in (tmp_path / "results.md").read_text()
    # The goal and the orderings (no ordering pairs these two rows) are written with the table.
    assert [c["preset"] for c in summary["checks"]["rows"]] == ["mnist_mlp_vae",
                                                                 "mnist_mlp_iwae_2layer"]
    assert summary["checks"]["orderings"] == []
    assert "no pair of rows finished yet" in (tmp_path / "results.md").read_text()
    again = _run(tmp_path)
    assert again.returncode == 0 and again.stdout.count("already finished") == 2

    # A clean checkout has the committed weights (no optimizer state) but not this machine's
    # model.weights.h5: --rescore scores the row again from them, to the same number.
    row = tmp_path / "mnist_mlp_vae"
    assert (row / "final_weights.npz").stat().st_size > 0
    assert (tmp_path / "mnist_mlp_iwae_2layer" / "final_weights.npz").exists()
    (row / "model.weights.h5").unlink()
    committed = (row / "result.json").read_text()
    rescored = _run(tmp_path, "--rescore", presets="mnist_mlp_vae,mnist_mlp_iwae")
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert "mnist_mlp_iwae: not finished" in rescored.stdout
    new = json.loads((row / "rescore.json").read_text())
    assert new["nll"]["num_images"] == 20 and new["nll"]["num_samples"] == 4
    assert abs(new["nll"]["mean"] - json.loads(committed)["nll"]["mean"]) < 1e-4
    assert (row / "result.json").read_text() == committed  # the result itself is left alone
    assert "NLL committed" in rescored.stdout and "rescored" in rescored.stdout
    # A finished row without its committed weights is reported, not trained again.
    (tmp_path / "mnist_mlp_iwae_2layer" / "final_weights.npz").unlink()
    history = (tmp_path / "mnist_mlp_iwae_2layer" / "history.csv").read_text()
    skipped = _run(tmp_path, "--rescore", presets="mnist_mlp_iwae_2layer")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "finished, but final_weights.npz not in" in skipped.stdout
    assert (tmp_path / "mnist_mlp_iwae_2layer" / "history.csv").read_text() == history
    assert not (tmp_path / "mnist_mlp_iwae_2layer" / "rescore.json").exists()
    wrong_epochs = _run(tmp_path, "--rescore", "--epochs=2", presets="mnist_mlp_vae")
    assert wrong_epochs.returncode != 0
    assert "--epochs=2: mnist_mlp_vae was trained with 1 epochs; pass --epochs=1." in (
        wrong_epochs.stderr)


def test_a_time_limit_stops_at_an_epoch_end_and_a_later_session_resumes_from_the_light_state(
        tmp_path):
    def run(*extra):
        return subprocess.run(
            [sys.executable, str(SCRIPT), f"--output_dir={tmp_path}", "--presets=mnist_mlp_vae",
             "--epochs=3", "--num_train=100", "--num_valid=10", "--num_samples=2", "--threads=1",
             *extra],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
            timeout=900)

    stopped = run("--stop_after_minutes=0.0001", "--progress_images=5")  # before epoch 1 ends
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped by --stop_after_minutes=0.0001 after epoch 1; run the same command again" in (
        stopped.stdout)
    # The whole validation split's grey sources are not trained on, whatever --num_valid scores
    # (the first 100 of the rest are).
    assert "Held out the 9991 training images that the 10000 validation images" in stopped.stdout
    assert "50009 training images" in stopped.stdout
    row = tmp_path / "mnist_mlp_vae"
    assert (row / "backup").is_dir() and not (row / "result.json").exists()
    assert len((row / "history.csv").read_text().strip().splitlines()) == 1 + 1  # header + epoch 1
    # The light state a later session resumes from: weights without Adam's moments, and progress.
    assert json.loads((row / "resume.json").read_text()) == {"epochs_done": 1, "steps_per_epoch": 5,
                                                           "weights_dtype": "float32"}
    progress = json.loads((row / "progress.json").read_text())
    assert [(p["epoch"], p["num_images"]) for p in progress] == [(1, 5)]
    assert 0 < progress[0]["nll"] < 784 * math.log(2)
    report = subprocess.run([sys.executable, str(SCRIPT), "--report_progress",
                             f"--output_dir={tmp_path}"], capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "| mnist_mlp_vae | 1 / 3 | " in report.stdout and "1: " in report.stdout
    # Another machine: no backup, only what is committed.
    shutil.rmtree(row / "backup")
    resumed = run()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at epoch 1 from its weights" in resumed.stdout
    epochs = [line.split(",")[0] for line in (row / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]  # epochs 2 and 3 continue the first run's epoch 1
    assert (row / "result.json").exists() and not (row / "backup").exists()
    assert not (row / "resume.json").exists() and not (row / "resume_weights.npz").exists()
    sessions = json.loads((row / "sessions.json").read_text())
    assert [(x["first_epoch"], x["epochs_run"]) for x in sessions] == [(0, 1), (1, 2)]
    result = json.loads((row / "result.json").read_text())
    assert result["training_sessions"] == 2 and result["train_seconds_all_sessions"] == round(
        sum(x["train_seconds"] for x in sessions), 1)


def test_sigterm_stops_training_at_an_epoch_end_and_leaves_the_light_state(tmp_path):
    epochs = 3000  # far more than run before the signal; bounded should the signal be ignored
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), f"--output_dir={tmp_path}", "--presets=mnist_mlp_vae",
         f"--epochs={epochs}", "--num_train=100", "--num_valid=10", "--num_samples=2",
         "--threads=1", "--progress_images=0"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    row = tmp_path / "mnist_mlp_vae"
    history, deadline = row / "history.csv", time.time() + 600
    try:
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):  # epoch 1
            assert process.poll() is None and time.time() < deadline, "no epoch finished"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-3000:]
    done = json.loads((row / "resume.json").read_text())["epochs_done"]
    assert 1 <= done < epochs
    assert f"stopped by SIGTERM after epoch {done}; run the same command again" in stdout
    assert len(history.read_text().strip().splitlines()) == 1 + done  # every epoch run is logged
    assert (row / "resume_weights.npz").exists() and not (row / "result.json").exists()
    assert json.loads((row / "sessions.json").read_text())[0]["epochs_run"] == done


def test_validation_images_that_are_not_binarized_training_images_are_refused(tmp_path):
    import numpy as np

    from keras_crvae import data

    grey_test = np.load(SHARED / "mnist.npz")["x_test"][:50]
    np.savez(tmp_path / "test_binarized.npz", x=data.static_binarize(grey_test, seed=0)[..., 0])
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), f"--output_dir={tmp_path / 'out'}", "--presets=mnist_mlp_vae",
         f"--valid_data={tmp_path / 'test_binarized.npz'}:x", "--epochs=1", "--num_train=100"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
        timeout=900)
    assert refused.returncode != 0
    assert "does not look like binarizations of --train_data images" in refused.stderr
    assert not (tmp_path / "out" / "mnist_mlp_vae" / "history.csv").exists()
