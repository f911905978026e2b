"""`tools/reproduce/ship_face_model.py`: a scored face run becomes a `load_pretrained` model (a tiny
run scored with a toy feature network), its float16 check, and the command line's refusals."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae.jobs import scored_gan

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "reproduce" / "ship_face_model.py"
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import face_run  # noqa: E402  (scripts beside each other, not a package)
import ship_face_model as tool  # noqa: E402
from ship_pretrained import CheckFailed, UsageError  # noqa: E402

TINY = {"base_channels": 4, "discriminator_channels": 8, "minibatch_kernels": 4}


def pooled_colours():
    """A toy feature network: the mean colour of each 32x32 quarter (12 features; not a FID)."""
    return keras.Sequential([keras.Input((64, 64, 3)), keras.layers.AveragePooling2D(32),
                             keras.layers.Flatten()], name="pooled_colours")


@pytest.fixture(scope="module")
def face_run_folder(tmp_path_factory):
    """A face run whose budget is spent after one scored epoch (8 training faces, 4 held out),
    with its float32 `scored.weights.h5` and its float16 light state; and the faces file."""
    base = tmp_path_factory.mktemp("ship_face")
    faces = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    np.savez(base / "faces.npz", x=faces)
    run = base / "celeba_vae_gan"
    result = scored_gan.train_scored_gan(
        "celeba_vae_gan", faces, num_held_out=4, output_dir=str(run), score_every=1,
        num_samples=8, feature_extractor=pooled_colours(), epochs=3, batch_size=8,
        run_eagerly=True, verbose=0, budget_hours=1e-9, light_state_dtype="float16",
        data_spec=face_run.data_spec(base / "faces.npz", 12, 4), **TINY)
    assert (result["status"], result["epochs_done"]) == ("budget spent", 1)
    return run, base / "faces.npz"


def _options(run, faces, output_dir, **changes):
    if "run_folder" in changes:
        run = changes.pop("run_folder")
    settings = dict(run=str(run), faces=str(faces), num_held_out=4, num_samples=8, fid_seeds=2,
                    budget_hours=1e-9, output_dir=str(output_dir))
    return dataclasses.replace(tool.FaceShipOptions(), **{**settings, **changes})


def test_a_finished_run_ships_its_scored_weights_measured_again(face_run_folder, tmp_path):
    run, faces = face_run_folder
    extractor = pooled_colours()
    metrics = tool.ship_face_run(_options(run, faces, tmp_path, name="tiny_faces"),
                                 feature_extractor=extractor)
    folder = tmp_path / "tiny_faces"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "metrics.json", "model.keras", "reconstructions.png", "samples.png"]
    assert json.loads((folder / "metrics.json").read_text())["scores"] == metrics["scores"]
    assert metrics["run_status"] == "budget spent" and metrics["epochs"] == 1
    assert metrics["weights"]["source"].endswith(tool.SCORED_WEIGHTS)
    assert metrics["overrides"]["base_channels"] == 4
    loaded = keras_crvae.load_pretrained("tiny_faces", directory=tmp_path)
    assert type(loaded).__name__ == "VAEGAN"
    # The loaded model holds the run's scored weights.
    reference_model = tool.build_model({"preset": "celeba_vae_gan"}, metrics["overrides"], 0)
    reference_model.load_weights(str(run / tool.SCORED_WEIGHTS))
    for stored, expected in zip(loaded.get_weights(), reference_model.get_weights()):
        np.testing.assert_array_equal(stored, expected)
    # Its card's numbers are those of the loaded weights: sample FID per seed, reconstructions.
    held_out = np.load(faces)["x"][-4:].astype("float32") / 127.5 - 1.0
    reference = scored_gan.held_out_statistics(str(run), held_out, extractor)
    for seed, fid in enumerate(metrics["scores"]["sample_fid_per_seed"]):
        measured, _, _ = scored_gan.measure(loaded, held_out, reference, extractor,
                                            num_samples=8, seed=seed)
        assert fid == pytest.approx(measured["sample_fid"], rel=1e-4, abs=1e-6)
    assert metrics["scores"]["reconstruction_mse"] == pytest.approx(float(np.mean(
        (keras.ops.convert_to_numpy(loaded.reconstruct(held_out)) - held_out) ** 2)), rel=1e-5)
    per_seed = metrics["scores"]["sample_fid_per_seed"]
    assert metrics["scores"]["sample_fid_range"] == pytest.approx(max(per_seed) - min(per_seed))
    card = (folder / "README.md").read_text()
    assert "load_pretrained('tiny_faces')" in card and "--epochs=1" in card
    assert f"{metrics['scores']['sample_fid_mean']:.1f}" in card


def test_the_light_state_ships_as_it_is_where_the_float32_weights_are_gone(face_run_folder,
                                                                            tmp_path):
    run, faces = face_run_folder
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(tool.SCORED_WEIGHTS, "backup"))
    metrics = tool.ship_face_run(_options(copy, faces, tmp_path / "out", weights_dtype="float16"),
                                 feature_extractor=pooled_colours())
    assert metrics["weights"]["source"].endswith(tool.LIGHT_WEIGHTS)
    assert metrics["float16_check"] is None and "16-bit weights" in metrics["float16_unchecked"]
    loaded = keras_crvae.load_pretrained("run", directory=tmp_path / "out")
    with np.load(copy / tool.LIGHT_WEIGHTS) as light:
        stored = [light[key] for key in light.files]
    assert all(a.dtype == np.float16 for a in stored if a.dtype.kind == "f")
    assert [w.shape for w in loaded.get_weights()] == [a.shape for a in stored]
    for weight, light_weight in zip(loaded.get_weights(), stored):
        np.testing.assert_array_equal(weight, light_weight.astype(weight.dtype))


def test_the_float16_check_refuses_a_change_beyond_the_fids_noise(monkeypatch):
    options = tool.FaceShipOptions(fid_seeds=3)
    reference_scores = {"sample_fid_per_seed": [10.0, 12.0, 11.0], "sample_fid_range": 2.0}

    def fake_measure(fid):
        return lambda *args, **kwargs: ({"sample_fid": fid, "reconstruction_mse": 0.1}, None,
                                        None)

    monkeypatch.setattr(scored_gan, "measure", fake_measure(11.5))
    check = tool.float16_check(reference_scores, None, None, None, None, options)
    assert check["passed"] and check["difference"] == pytest.approx(1.5)
    assert check["noise"] == 2.0
    monkeypatch.setattr(scored_gan, "measure", fake_measure(7.9))
    with pytest.raises(CheckFailed, match="differs from the float32 weights' by -2.10"):
        tool.float16_check(reference_scores, None, None, None, None, options)


@pytest.mark.parametrize("changes,message", [
    ({"budget_hours": 10.0}, "--allow_unfinished: .* is still training"),
    ({"num_held_out": 5}, "--faces=.* --num_held_out=5: the run trained on"),
    ({"run_folder": "no/such/run"}, "--run=no/such/run: no such folder"),
    ({"fid_seeds": 0}, "--fid_seeds=0: expected a positive integer"),
])
def test_usage_errors_name_the_flag(face_run_folder, tmp_path, changes, message):
    run, faces = face_run_folder
    with pytest.raises(UsageError, match=message):
        tool.ship_face_run(_options(run, faces, tmp_path, **changes),
                           feature_extractor=pooled_colours())
    assert not any(tmp_path.iterdir())


def test_the_command_line_exits_2_with_one_line(face_run_folder, tmp_path):
    run, faces = face_run_folder
    (tmp_path / "celeba_vae_gan").mkdir()
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), f"--run={run}", f"--faces={faces}", "--num_held_out=4",
         "--budget_hours=1e-9", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"ship_face_model.py: error: --overwrite: {tmp_path / 'celeba_vae_gan'} exists; expected "
        "--overwrite to replace it, or another --name"]


def test_the_study_tools_batch_helpers_concatenate_and_encode_each_batch_once():
    calls = []

    class Encoder:
        def encode(self, images):
            calls.append(len(images))
            return keras.ops.convert_to_tensor(images * 2.0), keras.ops.convert_to_tensor(-images)

    images = np.arange(7 * 2, dtype="float64").reshape(7, 2)
    means, log_vars = tool.encode_faces(Encoder(), images, batch_size=3)
    assert calls == [3, 3, 1]  # one encode per slice, both parts from it
    assert means.dtype == np.float32 and log_vars.dtype == np.float32
    np.testing.assert_array_equal(means, images * 2.0)
    np.testing.assert_array_equal(log_vars, -images)
    shifted = tool.in_batches(lambda batch: keras.ops.convert_to_tensor(batch + 1.0), images, 4)
    assert shifted.dtype == np.float32
    np.testing.assert_array_equal(shifted, images + 1.0)
