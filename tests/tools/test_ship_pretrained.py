"""`tools/reproduce/ship_pretrained.py`: a reproduction row becomes a `load_pretrained` model (on a tiny
synthetic row), the float16 check, and the command line's refusals."""

import dataclasses
import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import data, presets

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "reproduce" / "ship_pretrained.py"
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import reproduction  # noqa: E402  (scripts beside each other, not a package)
import ship_pretrained as tool  # noqa: E402

PRESET = "mnist_mlp_vae"
TINY = {"latent_units": [4], "epochs": 2}  # 784-200-200-4 and back: ~0.4M parameters


def _tiny_model():
    return keras_crvae.from_preset(PRESET, compile=False, seed=0, **TINY)


@pytest.fixture(scope="module")
def tiny_row(tmp_path_factory):
    """A finished row as `reproduce_iwae_table.py` leaves it (untrained weights, made-up scores),
    and 30 binary validation images."""
    base = tmp_path_factory.mktemp("ship")
    row = base / "iwae_table" / "tiny_row"
    row.mkdir(parents=True)
    keras.utils.set_random_seed(1)
    model = _tiny_model()
    reproduction.save_weights_npz(model, row / reproduction.FINAL_WEIGHTS)
    preset = keras_crvae.get_preset(PRESET, **TINY)
    (row / "config.json").write_text(json.dumps(
        {"preset": PRESET, "network": preset.network, "model": preset.model,
         "training": dataclasses.asdict(preset.training)}, indent=2))
    (row / "result.json").write_text(json.dumps({
        "preset": PRESET, "epochs": 2, "num_train_images": 1000, "backend": "tensorflow",
        "nll": {"mean": 180.5, "standard_error": 1.5, "num_samples": 50, "num_images": 30},
        "elbo": {"mean": -190.0, "standard_error": 1.6, "num_samples": 1, "num_images": 30},
        "active_units_per_layer": [3], "num_latents": 4, "paper_nll": 86.76}))
    (row / "train_info.json").write_text(json.dumps({"train_seconds_all_sessions": 12.5}))
    (row / "sessions.json").write_text(json.dumps([
        {"first_epoch": 0, "epochs_run": 1, "train_seconds": 5.0, "backend": "tensorflow",
         "threads": 1, "load_average_at_end": [1.0, 1.0, 1.0]},
        {"first_epoch": 1, "epochs_run": 1, "train_seconds": 7.5, "backend": "tensorflow",
         "threads": 1, "load_average_at_end": None}]))
    valid = (np.random.default_rng(0).random((30, 28, 28)) < 0.2).astype(np.uint8)
    np.savez(base / "valid.npz", x_valid=valid)
    return row, f"{base / 'valid.npz'}:x_valid"


def _options(row, valid, output_dir, **changes):
    return tool.ShipOptions(row=str(row), valid_data=valid, output_dir=str(output_dir),
                            check_images=30, check_samples=8, reload_check_images=5,
                            reload_check_samples=4, num_sample_images=4, **changes)


def _log_likelihood(model, images):
    mean, _ = model.encode(images)
    return keras.ops.convert_to_numpy(model.log_likelihood(images, mean))


def test_a_shipped_row_loads_back_with_the_rows_weights_and_scores(tiny_row, tmp_path):
    row, valid = tiny_row
    metrics = tool.ship_row(_options(row, valid, tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["tiny_row"]  # no staging folder left behind
    folder = tmp_path / "tiny_row"
    assert sorted(os.listdir(folder)) == ["README.md", "metrics.json", "model.keras", "samples.png"]
    loaded = keras_crvae.load_pretrained("tiny_row", directory=tmp_path)
    original = _tiny_model()
    reproduction.load_weights_npz(original, row / reproduction.FINAL_WEIGHTS)
    for stored, array in zip(loaded.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(stored, array)
    images = data.load_npz_images(valid)[:6]
    np.testing.assert_allclose(_log_likelihood(loaded, images), _log_likelihood(original, images),
                               atol=1e-5)
    assert tuple(keras.ops.convert_to_numpy(loaded.sample(3, seed=0)).shape) == (3, 28, 28, 1)

    written = json.loads((folder / "metrics.json").read_text())
    assert written["nll"]["mean"] == 180.5 and written["nll"]["num_samples"] == 50
    assert written["overrides"] == TINY and written["weights"]["dtype"] == "float32"
    assert written["training"]["train_seconds"] == 12.5
    assert written["training"]["training_stretches"] == 2
    assert written["reload_check"]["max_abs_difference_per_image"] <= tool.RELOAD_TOLERANCE
    assert written["float16_check"] is None and metrics["gap_to_paper"] == pytest.approx(93.74)
    card = (folder / "README.md").read_text()
    assert "**180.50 +- 1.50**" in card and "k = 50" in card
    assert ("KERAS_BACKEND" not in card and "python tools/reproduce/reproduce_iwae_table.py --rescore "
            "--presets=tiny_row --epochs=2 --num_samples=50 --num_valid=30 --set=latent_units=4, "
            f"--output_dir={row.parent}") in card


def test_the_rescore_command_rebuilds_the_rows_preset(tiny_row):
    row, _ = tiny_row
    overrides = {"epochs": 2, "latent_units": [4], "learning_rate": 5e-4, "precision": "bfloat16"}
    result = {"epochs": 2, "backend": "jax", "nll": {"num_samples": 50, "num_images": 30}}
    command = tool.default_rescore_command(row, {}, result, overrides)
    assert command.startswith("KERAS_BACKEND=jax python tools/reproduce/reproduce_iwae_table.py --rescore "
                              "--presets=tiny_row --epochs=2 --num_samples=50 --num_valid=30 ")
    sets = [part.split("=", 1)[1] for part in command.split() if part.startswith("--set=")]
    # What the script does with them: the same preset as the row's.
    rebuilt = presets.get_preset(PRESET, epochs=2, **presets.parse_overrides(sets))
    assert rebuilt == presets.get_preset(PRESET, **overrides)
    # No --set form (a nested list): no command rather than a wrong one.
    assert tool.default_rescore_command(row, {}, result, {"hidden_units_q": [[8]]}) == ""


def test_float16_storage_only_after_the_paired_check(tiny_row, tmp_path):
    row, valid = tiny_row
    tool.ship_row(_options(row, valid, tmp_path))  # float32 first; float16 replaces it
    with pytest.raises(tool.UsageError, match="--overwrite"):
        tool.ship_row(_options(row, valid, tmp_path, weights_dtype="float16"))

    # Rounding to 16 bits moves the NLL a little, never by exactly nothing: a zero allowance
    # refuses, and the float32 folder stays as it was.
    before = (tmp_path / "tiny_row" / "model.keras").read_bytes()
    with pytest.raises(tool.CheckFailed, match="--max_nll_difference=0.0"):
        tool.ship_row(_options(row, valid, tmp_path, weights_dtype="float16", overwrite=True,
                               max_nll_difference=0.0))
    assert sorted(os.listdir(tmp_path)) == ["tiny_row"]
    assert (tmp_path / "tiny_row" / "model.keras").read_bytes() == before

    metrics = tool.ship_row(_options(row, valid, tmp_path, weights_dtype="float16",
                                     overwrite=True))
    check = metrics["float16_check"]
    assert check["passed"] and 0 < abs(check["difference_mean"]) < 0.05
    assert check["num_images"] == 30 and check["num_samples"] == 8
    # The file holds 16-bit arrays (half the bytes), and loads as the rounded float32 weights.
    with zipfile.ZipFile(tmp_path / "tiny_row" / "model.keras") as archive:
        weights = archive.read(tool.WEIGHTS_MEMBER)
    import h5py

    dtypes = []
    with h5py.File(io.BytesIO(weights), "r") as stored:
        stored.visititems(lambda name, item: dtypes.append(item.dtype)
                          if isinstance(item, h5py.Dataset) else None)
    assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
    loaded = keras_crvae.load_pretrained("tiny_row", directory=tmp_path)
    original = _tiny_model()
    reproduction.load_weights_npz(original, row / reproduction.FINAL_WEIGHTS)
    for stored_array, array in zip(loaded.get_weights(), original.get_weights()):
        assert stored_array.dtype == np.float32
        np.testing.assert_array_equal(stored_array, array.astype(np.float16).astype(np.float32))
    card = (tmp_path / "tiny_row" / "README.md").read_text()
    assert "stored as float16" in card and "16-bit weights: NLL" in card


def _sixteen_bit_row(source, tmp_path):
    """The row `source` with its final weights committed in float16, as a Table 1 row's are;
    returns (row folder, the model holding the float32 weights)."""
    row = tmp_path / "rows" / "tiny16"
    row.mkdir(parents=True)
    for name in ("config.json", "result.json", "train_info.json", "sessions.json"):
        (row / name).write_bytes((source / name).read_bytes())
    trained = _tiny_model()
    reproduction.load_weights_npz(trained, source / reproduction.FINAL_WEIGHTS)
    reproduction.save_weights_npz(trained, row / reproduction.FINAL_WEIGHTS, dtype="float16")
    return row, trained


def test_a_16_bit_row_is_checked_against_its_float32_weights_on_its_machine(tiny_row, tmp_path):
    """A Table 1 row commits its final weights in float16: the float16 check then needs the
    trained float32 weights (`model.weights.h5`, kept on the machine that trained the row)."""
    from keras_crvae.jobs import longrun

    assert tool.FULL_WEIGHTS == longrun.FULL_WEIGHTS
    source, valid = tiny_row
    row, trained = _sixteen_bit_row(source, tmp_path)
    with pytest.raises(tool.UsageError, match="model.weights.h5"):
        tool.ship_row(_options(row, valid, tmp_path / "out", weights_dtype="float16"))
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # On the training machine: the reference is the float32 weights, so the check measures the
    # rounding (it would be exactly 0 against the 16-bit file itself).
    trained.save_weights(str(row / tool.FULL_WEIGHTS))
    metrics = tool.ship_row(_options(row, valid, tmp_path / "out", weights_dtype="float16"))
    assert metrics["float16_check"]["passed"]
    assert 0 < abs(metrics["float16_check"]["difference_mean"]) < 0.05


def test_the_npz_form_ships_the_rows_own_weights_file(tiny_row, tmp_path):
    """--weights_format=npz: `weights.npz` is the row's `final_weights.npz` byte for byte (git
    stores the weights once), after the same float16 and reload checks."""
    source, valid = tiny_row
    row, trained = _sixteen_bit_row(source, tmp_path)
    trained.save_weights(str(row / tool.FULL_WEIGHTS))
    with pytest.raises(tool.UsageError, match="--weights_dtype=float32: --weights_format=npz"):
        tool.ship_row(_options(row, valid, tmp_path / "out", weights_format="npz"))
    metrics = tool.ship_row(_options(row, valid, tmp_path / "out", weights_format="npz",
                                     weights_dtype="float16",
                                     deviations="epochs 3-4 at twice the learning rate."))
    folder = tmp_path / "out" / "tiny16"
    assert sorted(os.listdir(folder)) == ["README.md", "metrics.json", "model.json", "samples.png",
                                          "weights.npz"]
    assert ((folder / "weights.npz").read_bytes()
            == (row / reproduction.FINAL_WEIGHTS).read_bytes())
    assert metrics["weights"]["format"] == "npz" and metrics["weights"]["weights_npz_is_row_file"]
    assert metrics["float16_check"]["passed"]
    assert metrics["reload_check"]["max_abs_difference_per_image"] <= tool.RELOAD_TOLERANCE
    loaded = keras_crvae.load_pretrained("tiny16", directory=tmp_path / "out")
    expected = _tiny_model()
    reproduction.load_weights_npz(expected, row / reproduction.FINAL_WEIGHTS)
    for stored, array in zip(loaded.get_weights(), expected.get_weights()):
        assert stored.dtype == np.float32
        np.testing.assert_array_equal(stored, array)
    card = (folder / "README.md").read_text()
    assert "byte for byte" in card and "crvae sample --model=saved_models/tiny16" in card
    assert "- Deviations from the protocol: epochs 3-4 at twice the learning rate." in card
    # A float32 row ships its file as it is too, with no float16 check.
    metrics = tool.ship_row(_options(source, valid, tmp_path / "out", weights_format="npz"))
    assert metrics["float16_check"] is None
    assert ((tmp_path / "out" / "tiny_row" / "weights.npz").read_bytes()
            == (source / reproduction.FINAL_WEIGHTS).read_bytes())


def _run(*arguments):
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_command_line_refusals_exit_2_with_one_line(tiny_row, tmp_path):
    row, valid = tiny_row
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    (tmp_path / "out" / "tiny_row").mkdir(parents=True)
    cases = [
        ([f"--row={tmp_path / 'absent'}"], "--row=", "no such folder"),
        ([f"--row={unfinished}"], "--row=", "final_weights.npz"),
        ([f"--row={row}", f"--output_dir={tmp_path / 'out'}", f"--valid_data={valid}"],
         "--overwrite", "exists"),
        ([f"--row={row}", f"--output_dir={tmp_path / 'new'}", "--valid_data=/absent.npz:x"],
         "--valid_data=/absent.npz:x", "no such file"),
    ]
    for arguments, flag, what in cases:
        result = _run(*arguments)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (arguments, result.stderr[-2000:])
        assert len(lines) == 1 and flag in lines[0] and what in lines[0], lines
    assert not (tmp_path / "new").exists()
