"""The `likelihood` job end to end on the tiny flow preset, in process and through `crvae
train` / `evaluate` / `sample` (subprocesses), and its usage errors."""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from keras_crvae import data, jobs
from keras_crvae.jobs.likelihood import grey_levels, train_likelihood

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))
COMMAND = [sys.executable, "-m", "crvae_cli"]
PRESET = "mnist_flow_quickstart"
D = 784


def _crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


def test_grey_levels_round_unit_images_to_integers():
    images = np.array([[0, 1, 128, 255]], np.uint8).repeat(196, axis=0).reshape(1, 28, 28)
    levels = grey_levels(images)
    assert levels.shape == (1, 28, 28, 1) and levels.dtype == np.float32
    np.testing.assert_array_equal(np.unique(levels), [0, 1, 128, 255])


def test_job_trains_scores_and_says_already_trained(tmp_path):
    assert jobs.job_for(PRESET).name == "likelihood"
    mnist = data.load_embedded_mnist()
    arguments = dict(train_images=mnist["x_train"][:128], eval_images=mnist["x_test"][:20],
                     output_dir=str(tmp_path), epochs=1, verbose=0)
    metrics = train_likelihood(PRESET, **arguments)
    for name in ("model.keras", "samples.png", "samples_t0.7.png", "metrics.json",
                 "history.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    nll = metrics["nll"]
    assert nll["num_images"] == 20 and np.isfinite(nll["mean"]) and nll["standard_error"] > 0
    assert metrics["bits_per_dim"]["mean"] == pytest.approx(nll["mean"] / (D * math.log(2)))
    assert metrics["log_likelihood_unit_scale"] == pytest.approx(-nll["mean"]
                                                                 + D * math.log(256))
    assert metrics["history"]["nll"] and metrics["history"]["bits_per_dim"]
    assert metrics["data_kind"] == "grey256" and metrics["train_images_per_second"] > 0
    # A second call on the finished run trains nothing and returns the same metrics.
    assert train_likelihood(PRESET, **arguments)["nll"] == nll


def _crvae_here(*args, cwd):
    """`crvae ARGS` in this process (TensorFlow is loaded already): `(status, stdout, stderr)`."""
    import contextlib
    import io

    from keras_crvae.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["crvae", *args])
    finally:
        os.chdir(previous)
    return status, out.getvalue(), err.getvalue()


def test_crvae_train_evaluate_and_sample_a_flow(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x_train=(rng.random((64, 28, 28)) * 255).astype(np.uint8))
    result = _crvae("train", "--preset", PRESET, "--data", "train.npz", "--output_dir", "run",
                    "--epochs", "1", "--batch_size", "32", "--nll_images", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bits/dim" in result.stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["nll"]["num_images"] == 10
    # evaluate and sample in this process (a subprocess would load TensorFlow again).
    status, out, err = _crvae_here("evaluate", "--model", "run/model.keras", "--num_images", "8",
                                   "--output", "eval.json", cwd=tmp_path)
    assert status == 0, err[-3000:]
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert evaluation["nll"]["num_images"] == 8 and evaluation["data_kind"] == "grey256"
    assert evaluation["bits_per_dim"]["mean"] == pytest.approx(
        evaluation["nll"]["mean"] / (D * math.log(2)))
    status, out, err = _crvae_here("sample", "--model", "run/model.keras", "--num_images", "16",
                                   "--temperature", "0.7", "--output", "grid.png", cwd=tmp_path)
    assert status == 0, err[-3000:]
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A flag a flow does not take: one line naming it, status 2, no traceback.
    status, out, err = _crvae_here("evaluate", "--model", "run/model.keras", "--num_samples",
                                   "3", cwd=tmp_path)
    assert status == 2 and "--num_samples" in err and len(err.strip().splitlines()) == 1
    status, out, err = _crvae_here("sample", "--model", "run/model.keras", "--temperature", "-1",
                                   cwd=tmp_path)
    assert status == 2 and "--temperature=-1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, named", [(["--strategy", "mirrored"], "--strategy"),
                                          (["--nll_samples", "5"], "--nll_samples"),
                                          (["--set", "scales=3"], "`scales`=3")])
def test_crvae_train_refuses_flags_the_likelihood_job_does_not_take(tmp_path, flags, named):
    status, out, err = _crvae_here("train", "--preset", PRESET, *flags, cwd=tmp_path)
    assert status == 2 and named in err, err
    assert len(err.strip().splitlines()) == 1
