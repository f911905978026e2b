"""`crvae train --preset=sprites_*` and `crvae sample --traversals` end to end, and their errors."""

import json

import pytest

from test_cli import _crvae  # noqa: F401  (the subprocess runner of the CLI tests)

TINY = ["--set", "channels=2,2,4,4", "--set", "dense_units=8", "--set", "latent_dim=3"]


@pytest.fixture(scope="module")
def sprites_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli_sprites")
    result = _crvae("train", "--preset", "sprites_beta_vae", "--epochs", "1",
                    "--steps_per_epoch", "2", "--batch_size", "8", "--output_dir", "run", *TINY,
                    cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_train_writes_scores_and_grids(sprites_run):
    run = sprites_run / "run"
    for name in ("model.keras", "samples.png", "reconstructions.png", "traversals.png",
                 "metrics.json", "history.csv", "run.json"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and metrics["config"]["model"]["kl_weight"] == 4.0
    assert {"beta_vae", "factor_vae", "mig"} <= set(metrics)


def test_rerun_is_already_trained_and_traversals_sample(sprites_run):
    result = _crvae("train", "--preset", "sprites_beta_vae", "--epochs", "1", "--steps_per_epoch",
                    "2", "--batch_size", "8", "--output_dir", "run", *TINY, cwd=sprites_run)
    assert result.returncode == 0 and "already trained" in result.stdout
    result = _crvae("sample", "--model", "run/model.keras", "--traversals", "--output", "t.png",
                    cwd=sprites_run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "largest mean KL first" in result.stdout and (sprites_run / "t.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--data", "x.npz"], "--data=x.npz: --preset=sprites_vae trains on procedural sprites"),
    (["--nll_samples", "3"], "--nll_samples is for the MNIST VAE-family presets"),
    (["--eval_data", "embedded"], "--eval_data is for the MNIST and Two-Stage presets"),
])
def test_usage_errors(tmp_path, args, message):
    result = _crvae("train", "--preset", "sprites_vae", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
