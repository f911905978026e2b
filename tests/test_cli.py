"""The `crvae` command end to end in subprocesses: train -> evaluate -> sample, and its errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
# The subprocess imports the keras_crvae under test (this checkout), not another installed copy.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))
# The console script's entry point (setup.cfg: crvae = crvae_cli:main) of this checkout.
COMMAND = [sys.executable, "-m", "crvae_cli"]


def _crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    np.savez(workdir / "train.npz", x_train=(rng.random((64, 28, 28)) * 255).astype(np.uint8))
    result = _crvae("train", "--data", "train.npz", "--eval_data", "embedded:test",
                    "--output_dir", "run", "--epochs", "1", "--batch_size", "32",
                    "--set", "base_channels=2", "--set", "latent_channels=16",
                    "--nll_samples", "4", "--nll_images", "10", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_train_writes_all_artifacts(trained_run):
    run = trained_run / "run"
    for name in ("model.keras", "samples.png", "reconstructions.png", "metrics.json", "history.csv"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nll"]["num_samples"] == 4 and metrics["nll"]["num_images"] == 10
    assert metrics["nll"]["mean"] > 0 and np.isfinite(metrics["elbo"]["mean"])
    # An importance-sampled NLL can only tighten the single-sample bound on average (same images).
    assert metrics["active_units"]["num_latents"] == 4 * 4 * 16
    assert metrics["config"]["network"]["base_channels"] == 2
    # The per-image NLLs behind the mean: one per scored image, averaging to metrics.json's NLL.
    per_image = np.load(run / "nll_per_image.npy")
    assert per_image.shape == (10,) and per_image.dtype == np.float32
    assert abs(float(np.mean(per_image.astype(np.float64))) - metrics["nll"]["mean"]) < 1e-3


def test_evaluate_and_sample_a_saved_model(trained_run):
    result = _crvae("evaluate", "--model", "run/model.keras", "--num_samples", "3",
                    "--num_images", "8", "--output", "eval.json", cwd=trained_run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NLL" in result.stdout
    assert json.loads((trained_run / "eval.json").read_text())["nll"]["num_images"] == 8
    result = _crvae("sample", "--model", "run/model.keras", "--num_images", "16", "--output",
                    "grid.png", cwd=trained_run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (trained_run / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_name_the_problem(tmp_path):
    result = _crvae("evaluate", "--model", "missing.keras", cwd=tmp_path)
    assert result.returncode == 2 and "missing.keras" in result.stderr
    result = _crvae("train", "--set", "colour=red", "--output_dir", "x", cwd=tmp_path)
    assert result.returncode == 2 and "colour" in result.stderr
    result = _crvae(cwd=tmp_path)
    assert result.returncode == 2 and "usage: crvae" in result.stderr
