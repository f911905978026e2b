"""keras_crvae.jobs.scored_gan: a GAN run scored on held-out images at checkpoints, within a
machine-hours budget, resumable (the long face runs of issue 26)."""

import csv
import json
import os
import pathlib

import keras
import numpy as np
import pytest

from keras_crvae import evaluation
from keras_crvae.jobs import runs, scored_gan

TINY = {"base_channels": 4, "discriminator_channels": 8, "minibatch_kernels": 4}


def pooled_colours():
    """A toy feature network: the mean colour of each 32x32 quarter (12 features; not a FID)."""
    return keras.Sequential([keras.Input((64, 64, 3)), keras.layers.AveragePooling2D(32),
                             keras.layers.Flatten()], name="pooled_colours")


class CountingExtractor:
    def __init__(self, network):
        self.network, self.images = network, 0

    def __call__(self, batch):
        self.images += len(batch)
        return self.network(batch)


@pytest.mark.portable
def test_machine_hours_sum_wall_times_threads_over_stretches():
    records = [{"train_seconds": 1800.0, "threads": 2, "machine_seconds": 3600.0},
               {"train_seconds": 900.0, "threads": 0},        # an old record: 1 thread counted
               {"train_seconds": 360.0, "threads": 3}]
    assert scored_gan.machine_hours(records) == pytest.approx(1.0 + 0.25 + 0.3)
    assert scored_gan.effective_threads(3) == 3 and scored_gan.effective_threads(0) >= 1


@pytest.mark.portable
def test_held_out_statistics_are_computed_once_per_images_and_network(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (6, 64, 64, 3)).astype("float32")
    extractor = CountingExtractor(pooled_colours())
    mean, covariance = scored_gan.held_out_statistics(str(tmp_path), images, extractor)
    features = keras.ops.convert_to_numpy(extractor.network(images)).astype("float64")
    np.testing.assert_allclose(mean, features.mean(0), rtol=1e-6)
    np.testing.assert_allclose(covariance, np.cov(features, rowvar=False), rtol=1e-5, atol=1e-9)
    assert extractor.images == 6
    cached = scored_gan.held_out_statistics(str(tmp_path), images, extractor)
    assert extractor.images == 6  # read from held_out_statistics.npz
    np.testing.assert_array_equal(cached[0], mean)
    scored_gan.held_out_statistics(str(tmp_path), images[:5], extractor)  # other images
    assert extractor.images == 11


@pytest.mark.portable
def test_scores_json_stays_valid_when_a_write_is_interrupted(tmp_path, monkeypatch):
    scored_gan.record_score(str(tmp_path), {"epoch": 2, "sample_fid": 5.0})
    scored_gan.record_score(str(tmp_path), {"epoch": 1, "sample_fid": 7.0})

    def half_then_crash(self, text, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        scored_gan.record_score(str(tmp_path), {"epoch": 3, "sample_fid": 4.0})
    monkeypatch.undo()
    path = tmp_path / scored_gan.SCORES
    assert [e["epoch"] for e in json.loads(path.read_text())] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [scored_gan.SCORES]  # no temporary left
    # A rescore of an epoch replaces its point instead of adding one.
    scored_gan.record_score(str(tmp_path), {"epoch": 2, "sample_fid": 6.0})
    assert [(e["epoch"], e["sample_fid"]) for e in json.loads(path.read_text())] == [
        (1, 7.0), (2, 6.0)]


def test_a_budget_stopped_run_resumes_and_continues_the_scores_curve(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    output_dir = str(tmp_path / "run")
    extractor = CountingExtractor(pooled_colours())
    # 8 training faces in 1 step of 8 per epoch, eager steps (tracing would dominate).
    arguments = dict(num_held_out=4, output_dir=output_dir, score_every=1, num_samples=4,
                     feature_extractor=extractor, epochs=2, batch_size=8, run_eagerly=True,
                     verbose=0, threads=2, **TINY)
    first = scored_gan.train_scored_gan("celeba_crvae_gan", faces, budget_hours=1e-9, **arguments)
    assert (first["status"], first["epochs_done"]) == ("budget spent", 1)
    assert [e["epoch"] for e in first["scores"]] == [1]
    sessions_path = os.path.join(output_dir, "sessions.json")
    sessions = runs.read_json_list(sessions_path)
    assert len(sessions) == 1 and sessions[0]["epochs_run"] == 1 and sessions[0]["cpu_seconds"] > 0
    assert sessions[0]["machine_seconds"] == pytest.approx(2 * sessions[0]["train_seconds"],
                                                           abs=0.2)
    assert first["scores"][0]["machine_hours"] == pytest.approx(
        sessions[0]["machine_seconds"] / 3600, abs=1e-4)
    # A spent budget trains nothing.
    again = scored_gan.train_scored_gan("celeba_crvae_gan", faces, budget_hours=1e-9, **arguments)
    assert again["status"] == "budget spent" and runs.read_json_list(sessions_path) == sessions

    # A kill between the epoch's backup and its score: the resumed run scores the restored
    # weights, which are exactly epoch 1's (same samples, same FID).
    scores_path = os.path.join(output_dir, scored_gan.SCORES)
    runs.write_json_list(scores_path, [])
    rest = scored_gan.train_scored_gan("celeba_crvae_gan", faces, **arguments)
    assert (rest["status"], rest["epochs_done"]) == ("trained", 2)
    curve = rest["scores"]
    assert [e["epoch"] for e in curve] == [1, 2]
    assert [e["batch_norm"] for e in curve] == ["as trained"] * 2
    for key in ("sample_fid", "reconstruction_fid", "reconstruction_mse"):
        assert curve[0][key] == pytest.approx(first["scores"][0][key], rel=1e-4, abs=1e-6), key
        assert all(np.isfinite(e[key]) and e[key] >= 0 for e in curve)
    hours = [e["machine_hours"] for e in curve]
    assert hours[0] == pytest.approx(first["scores"][0]["machine_hours"], abs=1e-6)
    assert hours[0] < hours[1]
    sessions = runs.read_json_list(sessions_path)
    assert [(s["first_epoch"], s["epochs_run"]) for s in sessions] == [(0, 1), (1, 1)]
    assert hours[1] == pytest.approx(scored_gan.machine_hours(sessions), abs=1e-5)
    # One timer per stretch: history.csv's `train_hours` are the sessions' training seconds.
    with open(os.path.join(output_dir, "history.csv")) as handle:
        train_hours = [float(row["train_hours"]) for row in csv.DictReader(handle)]
    assert train_hours == pytest.approx(
        np.cumsum([s["train_seconds"] for s in sessions]) / 3600, abs=1e-4)
    for entry in curve:
        for name in ("samples_png", "reconstructions_png"):
            assert os.path.getsize(os.path.join(output_dir, entry[name])) > 0
    # The reconstruction MSE is that of the held-out faces (the last 4), the sample FID that of
    # the seeded samples against the held-out statistics (computed once for the three calls).
    # The trained run's model.keras holds the weights scored last (epoch 2).
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    held_out = scored_gan.as_signed_images(faces[-4:])
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(held_out))
    assert curve[-1]["reconstruction_mse"] == pytest.approx(
        float(np.mean((reconstructions - held_out) ** 2)), rel=1e-5)
    reference = scored_gan.held_out_statistics(output_dir, held_out, extractor)
    samples = np.concatenate(list(evaluation.sample_batches(model, 4, batch_size=50, seed=0)))
    assert curve[-1]["sample_fid"] == pytest.approx(evaluation.frechet_distance(
        *evaluation.feature_statistics(samples, extractor), *reference), rel=1e-4)


def _write_curve(folder, points):
    os.makedirs(folder, exist_ok=True)
    for epoch, hours, fid in points:
        scored_gan.record_score(str(folder), {
            "epoch": epoch, "machine_hours": hours, "sample_fid": fid,
            "reconstruction_fid": fid / 2, "reconstruction_mse": fid / 1000})


@pytest.mark.portable
def test_score_curves_read_each_run_in_epoch_order(tmp_path):
    _write_curve(tmp_path / "a", [(4, 0.4, 150.0), (2, 0.2, 200.0)])
    os.makedirs(tmp_path / "b")  # not scored yet
    curves = scored_gan.score_curves({"A": str(tmp_path / "a"), "B": str(tmp_path / "b")},
                                     "reconstruction_fid")
    hours, values, epochs = curves["A"]
    assert hours.tolist() == [0.2, 0.4] and values.tolist() == [100.0, 75.0]
    assert epochs.tolist() == [2, 4] and all(len(x) == 0 for x in curves["B"])
    with pytest.raises(ValueError, match="metric"):
        scored_gan.score_curves({"A": str(tmp_path / "a")}, "loss")


@pytest.mark.portable
def test_late_scores_keep_the_last_machine_hours_of_each_curve(tmp_path):
    _write_curve(tmp_path / "a", [(2, 0.2, 300.0), (4, 0.4, 150.0), (6, 0.6, 170.0),
                                  (8, 0.8, 120.0)])
    _write_curve(tmp_path / "b", [(2, 0.5, 250.0)])
    late = scored_gan.late_scores({"A": str(tmp_path / "a"), "B": str(tmp_path / "b")},
                                  last_hours=0.25)
    assert late["A"].tolist() == [170.0, 120.0]  # hours 0.6 and 0.8 are within 0.25 of 0.8
    assert late["B"].tolist() == [250.0]
    # The same window on bare lists (the FQ-GAN study's curves): 0.5 and 0.9 are within 0.4 of 0.9.
    assert scored_gan.late_window([0.1, 0.5, 0.9], [3.0, 2.0, 1.0], 0.4).tolist() == [2.0, 1.0]
    assert scored_gan.late_window([], [], 1.0).tolist() == []


@pytest.mark.portable
def test_median_difference_and_its_bootstrap_interval():
    # Constant runs: every resample has the same medians, so the interval is the point.
    exact = scored_gan.median_difference([100.0, 100.0, 100.0], [80.0, 80.0])
    assert exact == {"difference": -20.0, "low": -20.0, "high": -20.0, "num_earlier": 3,
                     "num_later": 2}
    # Medians 110 and 95 (by hand); the interval holds the point and lies within the
    # extreme medians a resample can reach (min - max, max - min of the two sets).
    earlier, later = [100.0, 110.0, 130.0], [90.0, 95.0, 140.0]
    spread = scored_gan.median_difference(earlier, later, num_resamples=4000)
    assert spread["difference"] == -15.0
    assert -40.0 <= spread["low"] < -15.0 < spread["high"] <= 40.0
    with pytest.raises(ValueError, match="at least one"):
        scored_gan.median_difference([], [1.0])


@pytest.mark.portable
def test_plot_score_curves_draws_both_runs_on_one_axis(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    _write_curve(tmp_path / "a", [(2, 0.2, 200.0), (4, 0.4, 150.0)])
    _write_curve(tmp_path / "b", [(2, 0.25, 220.0)])
    path = scored_gan.plot_score_curves({"crVAE-GAN": str(tmp_path / "a"),
                                         "VAE-GAN": str(tmp_path / "b")},
                                        str(tmp_path / "fid.png"), floor=36.0)
    from PIL import Image

    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (500, 350)
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(int)
    # Both runs are drawn: matplotlib's first two line colours (C0, C1) are in the picture.
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        assert np.any(np.abs(pixels - colour).sum(axis=1) < 30), colour


@pytest.mark.portable
@pytest.mark.parametrize("arguments,message", [
    ({"num_held_out": 12}, "num_held_out"), ({"num_held_out": 1}, "num_held_out"),
    ({"score_every": 0}, "score_every"), ({"num_samples": 1}, "num_samples"),
    ({"budget_hours": 0.0}, "budget_hours"), ({"fresh": True}, "new `output_dir`"),
])
def test_train_scored_gan_rejects_bad_arguments_before_training(tmp_path, arguments, message):
    faces = np.zeros((12, 64, 64, 3), np.uint8)
    settings = {"num_held_out": 4, "output_dir": str(tmp_path / "run"), **arguments}
    with pytest.raises(ValueError, match=message):
        scored_gan.train_scored_gan("celeba_crvae_gan", faces, **settings)
    assert not os.path.exists(tmp_path / "run")


def test_a_run_resumes_from_its_light_state_where_its_backup_is_gone(tmp_path):
    """A replaced machine: the committed light state (weights, step counts) resumes the run with
    the epoch's exact weights, and each optimizer's schedule continues at its own step count."""
    import shutil

    from keras_crvae.jobs import longrun
    from keras_crvae.optimizers import StepOffsetSchedule

    faces = np.random.default_rng(1).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    output_dir = tmp_path / "run"
    arguments = dict(num_held_out=4, output_dir=str(output_dir), score_every=1, num_samples=4,
                     feature_extractor=CountingExtractor(pooled_colours()), epochs=3,
                     batch_size=8, run_eagerly=True, verbose=0, light_state_dtype="float32",
                     **TINY)
    first = scored_gan.train_scored_gan("celeba_crvae_gan", faces, budget_hours=1e-9, **arguments)
    assert (first["status"], first["epochs_done"]) == ("budget spent", 1)
    light = json.loads((output_dir / longrun.RESUME_INFO).read_text())
    assert light["epochs_done"] == 1 and light["weights_dtype"] == "float32"
    # One step of 8 faces: the generator stepped once; the thresholded discriminator at most once.
    steps = light["optimizer_steps"]
    assert set(steps) == {"optimizer", "discriminator_optimizer"} and steps["optimizer"] == 1
    assert steps["discriminator_optimizer"] in (0, 1)
    assert light["optimizer_offsets"] == {"optimizer": 0, "discriminator_optimizer": 0}

    shutil.rmtree(output_dir / runs.BACKUP_DIR)  # another machine: only the committed files
    runs.write_json_list(str(output_dir / scored_gan.SCORES), [])  # epoch 1 is scored again
    rest = scored_gan.train_scored_gan("celeba_crvae_gan", faces, **arguments)
    assert (rest["status"], rest["epochs_done"]) == ("trained", 3)
    curve = rest["scores"]
    assert [e["epoch"] for e in curve] == [1, 2, 3]
    for key in ("sample_fid", "reconstruction_fid", "reconstruction_mse"):  # epoch 1's weights
        assert curve[0][key] == pytest.approx(first["scores"][0][key], rel=1e-4, abs=1e-6), key
    sessions = runs.read_json_list(str(output_dir / longrun.SESSIONS))
    assert [(s["first_epoch"], s["epochs_run"]) for s in sessions] == [(0, 1), (1, 2)]
    assert _light_state_files(output_dir) == []  # trained: the light state is gone
    model = keras.saving.load_model(output_dir / "model.keras")
    schedule = model.generator_optimizer._learning_rate
    assert isinstance(schedule, StepOffsetSchedule) and schedule.offset == 1
    assert int(keras.ops.convert_to_numpy(model.generator_optimizer.iterations)) == 2


def _light_state_files(folder):
    from keras_crvae.jobs import longrun

    return [name for name in (longrun.RESUME_INFO, longrun.RESUME_WEIGHTS)
            if (folder / name).exists()]


def test_a_score_recalibrates_batch_norm_first_when_given_training_images(tmp_path, monkeypatch):
    """`CheckpointScores` with `recalibration_images` calls the model's `recalibrate_batch_norm`
    (the run's batch size, `RECALIBRATION_BATCHES`, the samples' seed) before measuring, and says
    so in the entry; without them it measures the statistics as trained."""
    calls = []

    class Model:
        def recalibrate_batch_norm(self, images, batch_size, num_batches, seed):
            calls.append(("recalibrate", len(images), batch_size, num_batches, seed))

        def save_weights(self, path):
            pathlib.Path(path).write_bytes(b"weights")

    def measure(model, *args, **kwargs):
        calls.append(("measure",))
        return {"sample_fid": 1.0, "reconstruction_fid": 2.0, "reconstruction_mse": 0.5}, \
            np.zeros((4, 64, 64, 3), "float32"), None

    monkeypatch.setattr(scored_gan, "measure", measure)
    monkeypatch.setattr(scored_gan.base, "save_reconstruction_grid", lambda *args: None)
    stretches = scored_gan.TrainingStretches(str(tmp_path), threads=1)
    for folder, images, expected in (("recalibrated", np.zeros((64, 64, 64, 3), "float32"),
                                      [("recalibrate", 64, 16, scored_gan.RECALIBRATION_BATCHES, 7),
                                       ("measure",)]),
                                     ("as trained", None, [("measure",)])):
        calls.clear()
        os.makedirs(tmp_path / folder)
        scores = scored_gan.CheckpointScores(str(tmp_path / folder), np.zeros((2, 64, 64, 3)),
                                             None, None, stretches, seed=7,
                                             recalibration_images=images,
                                             recalibration_batch_size=16)
        scores.set_model(Model())
        entry = scores.score(1)
        assert calls == expected and entry["batch_norm"] == folder
