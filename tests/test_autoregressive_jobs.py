"""The autoregressive families' presets and the vq_vae job: presets build with their job's model,
and the vq_vae job trains a VQ-VAE and its prior end to end on a few images.

Not marked portable: this is the job and CLI glue; the models' backend-dependent parts are tested
on JAX too (tests/models/test_pixelcnn.py, test_vq_vae.py, test_vlae.py), and this file would add
about 2.5 minutes to the JAX run."""

import json
import os
import pathlib
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_crvae import jobs, models, presets
from keras_crvae.jobs import longrun


FAMILIES = {"mnist_pixelcnn": ("likelihood", models.PixelCNN),
            "mnist_gated_pixelcnn_grey": ("likelihood", models.PixelCNN),
            "mnist_vlae_quickstart": ("vae", models.VLAE),
            "faces_vq_vae": ("vq_vae", models.VQVAE)}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_presets_build_the_model_of_their_job(name):
    job, model_class = FAMILIES[name]
    assert jobs.job_for(name).name == job
    model = presets.from_preset(name, steps_per_epoch=10, seed=0)
    assert isinstance(model, model_class)
    if job == "likelihood":
        assert model.data_kind == presets.get_preset(name).model["data_kind"]


def test_pixelcnn_preset_overrides_reach_the_network():
    model = presets.from_preset("mnist_gated_pixelcnn", compile=False, num_layers=2, filters=4)
    assert len([layer for layer in model.network.layers if layer.name.startswith("gated")]) == 2


def test_vq_vae_job_end_to_end_resuming_a_prior_stopped_at_an_epoch_end(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train_images = (rng.random((64, 28, 28)) * 255).astype("uint8")
    eval_images = (rng.random((16, 28, 28)) * 255).astype("uint8")
    arguments = dict(train_images=train_images, eval_images=eval_images,
                     output_dir=str(tmp_path / "run"), batch_size=32, verbose=0, prior_epochs=2)
    # A queue's deadline that has passed (tools/reproduce/run_queue.py): the VQ-VAE's only epoch
    # is its last (never stopped); the prior stops after its epoch 1 and tells the queue so.
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time()))
    monkeypatch.setenv(longrun.STOP_FILE_ENV, str(tmp_path / "stops.txt"))
    stopped = jobs.JOBS["vq_vae"].train("mnist_vq_vae_quickstart", **arguments)
    assert longrun.DEADLINE_ENV in stopped["stopped"]
    assert (tmp_path / "stops.txt").read_text().startswith(f"{tmp_path / 'run'}: stopped by")
    run = tmp_path / "run"
    assert (run / "backup").is_dir() and (run / "backup_prior").is_dir()
    assert not (run / "model.keras").exists()
    monkeypatch.delenv(longrun.DEADLINE_ENV)
    metrics = jobs.JOBS["vq_vae"].train("mnist_vq_vae_quickstart", **arguments)
    tmp_path = run
    assert 0.0 < metrics["codebook"]["usage"] <= 1.0
    assert 1.0 <= metrics["codebook"]["perplexity"] <= 16.0
    assert metrics["prior_nll"]["num_images"] == 16
    # One VQ-VAE epoch in all (not retrained), the prior's two across the two stretches.
    assert len(metrics["history"]["loss"]) == 1 and len(metrics["prior_history"]["nll"]) == 2
    assert {"perplexity", "codebook_usage", "train_hours"} <= set(metrics["history"])
    sessions = json.loads((tmp_path / "sessions.json").read_text())
    assert [record["epochs_run"] for record in sessions] == [2, 1]  # VQ-VAE + prior 1; prior 2
    # Machine hours per epoch, over both stretches: the prior's rows continue the VQ-VAE's.
    hours = metrics["history"]["train_hours"] + metrics["prior_history"]["train_hours"]
    assert all(0 < a < b for a, b in zip(hours, hours[1:]))
    assert hours[-1] == pytest.approx(sum(s["train_seconds"] for s in sessions) / 3600, abs=1e-4)
    assert not (tmp_path / "backup").exists() and not (tmp_path / "backup_prior").exists()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["reconstruction_nats"] == pytest.approx(metrics["reconstruction_nats"])
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.prior is not None and (tmp_path / "samples.png").exists()


def test_vq_vae_job_resumes_both_stages_from_their_light_states_without_backups(tmp_path,
                                                                              monkeypatch):
    """A replaced machine mid-prior: the VQ-VAE's light state (its last epoch) and the prior's
    (epoch, weights, optimizer steps) resume the run without `backup/` and `backup_prior/`."""
    import shutil

    from keras_crvae.io import read_weights_npz
    from keras_crvae.jobs import runs, vq_vae

    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    arguments = dict(train_images=(rng.random((64, 28, 28)) * 255).astype("uint8"),
                     eval_images=(rng.random((16, 28, 28)) * 255).astype("uint8"),
                     output_dir=str(run), batch_size=32, verbose=0, prior_epochs=3,
                     light_state_dtype="float32")
    train = jobs.JOBS["vq_vae"].train
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time()))  # stop at every epoch end
    assert train("mnist_vq_vae_quickstart", **arguments)["stopped"]
    vq_light = json.loads((run / runs.RESUME_INFO).read_text())
    prior_light = json.loads((run / runs.PRIOR_LIGHT_STATE[1]).read_text())
    assert vq_light["epochs_done"] == 1  # the VQ-VAE's only epoch
    assert prior_light["epochs_done"] == 1 and prior_light["optimizer_steps"] == {"optimizer": 2}
    stretch1_prior = read_weights_npz(run / runs.PRIOR_LIGHT_STATE[0])

    loaded = []
    real_load = longrun.load_weights_npz

    def recording_load(model, path):
        real_load(model, path)
        loaded.append((pathlib.Path(path).name, model.get_weights()))

    monkeypatch.setattr(vq_vae.longrun, "load_weights_npz", recording_load)
    shutil.rmtree(run / runs.BACKUP_DIR)  # another machine: only the committed files
    shutil.rmtree(run / vq_vae.PRIOR_BACKUP_DIR)
    assert train("mnist_vq_vae_quickstart", **arguments)["stopped"]  # the prior's epoch 2
    assert [name for name, _ in loaded] == [runs.RESUME_WEIGHTS, runs.PRIOR_LIGHT_STATE[0]]
    for got, stored in zip(loaded[1][1], stretch1_prior, strict=True):
        np.testing.assert_array_equal(got, stored)
    prior_light = json.loads((run / runs.PRIOR_LIGHT_STATE[1]).read_text())
    assert prior_light["epochs_done"] == 2
    assert prior_light["optimizer_steps"] == {"optimizer": 4}  # 2 before + 2 in this stretch
    assert prior_light["optimizer_offsets"] == {"optimizer": 2}

    monkeypatch.delenv(longrun.DEADLINE_ENV)  # this machine again: the backups go on
    metrics = train("mnist_vq_vae_quickstart", **arguments)
    assert len(metrics["history"]["loss"]) == 1 and len(metrics["prior_history"]["nll"]) == 3
    sessions = json.loads((run / "sessions.json").read_text())
    assert [record["epochs_run"] for record in sessions] == [2, 1, 1]
    assert not any((run / name).exists() for name in
                   (runs.RESUME_WEIGHTS, runs.RESUME_INFO) + runs.PRIOR_LIGHT_STATE)


def _crvae_cli(tmp_path, *flags):
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "crvae_cli", "train", "--preset=faces_vq_vae",
                           f"--output_dir={tmp_path / 'run'}", *flags], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)


def test_cli_asks_for_the_faces_of_the_faces_vq_vae_in_one_line(tmp_path):
    """`crvae train --preset=faces_vq_vae` takes --data=faces.npz; without it (or with too few
    faces to hold the last 500 out) a usage error names the flag (status 2, before TensorFlow)."""
    result = _crvae_cli(tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--preset=faces_vq_vae" in result.stderr and "--data=PATH.npz" in result.stderr
    np.savez(tmp_path / "faces.npz", x=np.zeros((600, 64, 64, 3), np.uint8))
    result = _crvae_cli(tmp_path, "--data=faces.npz")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--data=faces.npz: expected more than 1000 images" in result.stderr
    assert not (tmp_path / "run").exists()
