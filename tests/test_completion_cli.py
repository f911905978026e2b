"""`crvae complete` end to end in subprocesses: the grid and summary, and one-line errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))
ENV.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command itself must keep TensorFlow quiet
COMMAND = [sys.executable, "-m", "crvae_cli"]


def _crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    import keras

    from keras_crvae import networks
    from keras_crvae.models import VAE

    directory = tmp_path_factory.mktemp("complete")
    keras.utils.set_random_seed(0)
    model = VAE(networks.build_mlp_gaussian((8, 8, 1), 4, hidden_units=(16,), name="encoder"),
                networks.build_mlp_bernoulli_decoder(4, hidden_units=(16,), image_shape=(8, 8, 1)))
    model.save(directory / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(directory / "digits.npz", x=(rng.random((5, 8, 8)) * 255).astype(np.uint8))
    np.savez(directory / "big.npz", x=(rng.random((2, 9, 9)) * 255).astype(np.uint8))
    mask = np.ones((8, 8), np.float32)
    mask[2:5, 2:5] = 0
    np.savez(directory / "mask.npz", mask=mask)
    np.savez(directory / "badmask.npz", mask=np.ones((7, 7)))
    return directory


def test_complete_writes_the_grid_and_the_summary(workdir):
    (workdir / "out").mkdir(exist_ok=True)
    result = _crvae("complete", "--model=model.keras", "--images=digits.npz", "--mask=mask.npz",
                    "--num_images=3", "--steps=5", "--output=out/grid.png", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Masked-region MSE" in result.stdout
    assert (workdir / "out" / "grid.png").stat().st_size > 0
    summary = json.loads((workdir / "out" / "grid.json").read_text())
    assert summary["num_images"] == 3 and len(summary["loss_curve"]) == 5
    # 3 images, 3 tiles each, 2-pixel padding, scaled x2: (1 row, 9 columns of 8x8 tiles).
    from PIL import Image

    assert Image.open(workdir / "out" / "grid.png").size == (2 * (9 * 10 + 2), 2 * (10 + 2))


@pytest.mark.parametrize("args, message", [
    (["--images=digits.npz", "--mask=middle"], "--mask=middle: expected one of centre"),
    (["--images=digits.npz", "--mask=badmask.npz"], "--mask=badmask.npz: `mask` has shape (7, 7)"),
    (["--mask=centre"], "--images is required"),
    (["--images=digits.npz", "--steps=0"], "--steps=0: expected an integer >= 1"),
    (["--images=digits.npz", "--prior_weight=-1"], "--prior_weight=-1.0: expected a finite"),
    (["--images=digits.npz", "--output=out"], "--output=out"),
    (["--images=big.npz"], "--images=big.npz: images of shape (9, 9, 1); the model takes (8, 8, 1)"),
])
def test_errors_are_one_line_with_status_2(workdir, args, message):
    (workdir / "out").mkdir(exist_ok=True)
    result = _crvae("complete", "--model=model.keras", *args, cwd=workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
