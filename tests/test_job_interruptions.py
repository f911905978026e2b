"""Interrupted jobs, in-process (issue 31). `--fresh` interrupted between setting the old run aside
and training puts it back. Every job finishes an interrupted final evaluation on the next call instead of retraining
(`keras_crvae.jobs.base.TrainingJob`, `runs.plan_run`'s "evaluate"; issue 31), also the two jobs
that cannot resume a killed training: the Two-Stage VAE and the sprites (disentangling) job.

Each tiny run is interrupted as its scoring starts (the job's `report` raises KeyboardInterrupt,
as Ctrl-C or the `crvae` command's SIGTERM handler would), then run again with `fit` made to fail:
the second call must score the saved model, write metrics.json from what the first call's `fit`
returned (kept in run.json), and mark the run finished. (The VAE job's case runs through the
console script in tests/test_cli_run_folder.py and tests/test_cli_sigterm.py.)
"""

import json

import numpy as np
import pytest

from keras_crvae.jobs import base, disentangling, two_stage, vae


def files(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_fresh_interrupted_before_training_puts_the_old_run_back(tmp_path, monkeypatch):
    """The window between `runs.set_aside` (the old run moved into previous/) and `fit`: an
    interrupt there (here: while the callbacks are made) must restore the old run, as one during
    the first epoch does (a drill once found the old run left in previous/)."""
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    for name, content in [("run.json", b'{"preset": "mnist_crvae_quickstart", "finished": true}'),
                          ("model.keras", b"weights"), ("metrics.json", b"{}"),
                          ("notes.txt", b"mine")]:
        (output_dir / name).write_bytes(content)
    before = files(output_dir)

    def interrupt(self):
        assert (output_dir / "previous" / "model.keras").exists()  # set aside by now
        raise KeyboardInterrupt

    monkeypatch.setattr(vae.VAEJob, "callbacks", interrupt)
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28)).astype(np.uint8)
    with pytest.raises(KeyboardInterrupt):
        vae.train("mnist_crvae_quickstart", images, images[:8], str(output_dir), epochs=1,
                  batch_size=32, fresh=True, verbose=0, base_channels=2, latent_channels=8)
    assert files(output_dir) == before
    assert base.runs.has_previous(str(output_dir)) is False


def interrupted_then_finished(monkeypatch, job_class, train, output_dir):
    """Runs `train()` with the scoring interrupted, then again with training forbidden; returns
    (run.json after the interruption, the second call's metrics)."""
    report = job_class.report

    def interrupt(self, model, history, train_seconds):
        raise KeyboardInterrupt

    def no_training(self, model, callbacks, initial_epoch):
        raise AssertionError("retrained a trained run")

    monkeypatch.setattr(job_class, "report", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train()
    interrupted = json.loads((output_dir / "run.json").read_text())
    assert not (output_dir / "metrics.json").exists() and not (output_dir / "run.lock").exists()
    monkeypatch.setattr(job_class, "report", report)
    monkeypatch.setattr(job_class, "fit", no_training)
    metrics = train()
    assert json.loads((output_dir / "metrics.json").read_text()) == json.loads(
        json.dumps(metrics))
    assert json.loads((output_dir / "run.json").read_text())["finished"] is True
    return interrupted, metrics


def test_two_stage_finishes_an_interrupted_evaluation(tmp_path, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28)).astype(np.uint8)
    output_dir = tmp_path / "two_stage"

    def train():
        return two_stage.train_two_stage(
            "mnist_two_stage", images, images[:8], str(output_dir), epochs=1, stage2_epochs=2,
            batch_size=16, num_fid_samples=0, verbose=0, latent_dim=4, stage2_width=8,
            stage2_depth=1)

    interrupted, metrics = interrupted_then_finished(monkeypatch, two_stage.TwoStageJob, train,
                                                     output_dir)
    assert interrupted["trained"] and not interrupted["finished"]
    assert interrupted["completed_epochs"] == 3  # both stages: 1 + 2
    # The first call's fit result, through run.json: one gamma per epoch of each stage.
    assert [epoch for epoch, _ in metrics["gamma_x"]] == [1]
    assert [epoch for epoch, _ in metrics["gamma_z"]] == [1, 2]
    assert metrics["gamma_z"] == interrupted["fit_record"]["gamma_z"]
    assert len(metrics["stage2_history"]["loss"]) == 2
    assert len(metrics["spectra"]["values"]["stage2"]) == 4


def test_sprites_job_finishes_an_interrupted_evaluation(tmp_path, monkeypatch):
    output_dir = tmp_path / "sprites"

    def train():
        return disentangling.train_sprites(
            "sprites_beta_vae", output_dir=str(output_dir), epochs=1, steps_per_epoch=3,
            batch_size=4, verbose=0, evaluation=dict(num_images=20, num_train=10, num_eval=10,
                                                     num_mig_samples=100),
            channels=[2, 2, 4, 4], dense_units=[8], latent_dim=3)

    interrupted, metrics = interrupted_then_finished(monkeypatch, disentangling.DisentanglingJob,
                                                     train, output_dir)
    assert interrupted["trained"] and interrupted["fit_record"] == {"train_steps": 3}
    assert metrics["train_steps"] == 3 and metrics["train_images"] == 12
    assert len(metrics["history"]["loss"]) == 1  # from history.csv
    assert 0 <= metrics["mig"]["score"] <= 1
