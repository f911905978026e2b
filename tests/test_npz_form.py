"""The npz form of a model file (`keras_crvae.io.save_npz_form` / `load_model`): `model.json` and
`weights.npz`, the same bytes as a run's committed `final_weights.npz`."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import io as crvae_io
from keras_crvae import pretrained


# Tiny widths: the conv VAE (which builds in seconds on JAX too) and the crVAE (its recurrent
# latent on both paths; the recurrent layers' serialization is backend-independent).
SMALL = {"mnist_cvae": {"base_channels": 1, "latent_channels": 2},
         "mnist_crvae": {"base_channels": 2, "latent_channels": 8, "time_steps": 2}}


def _small_model(preset="mnist_cvae", seed=0):
    return keras_crvae.from_preset(preset, compile=False, seed=seed, precision="float32",
                                   **SMALL[preset])


@pytest.mark.portable
@pytest.mark.parametrize("preset", ["mnist_cvae", pytest.param(
    "mnist_crvae", marks=pytest.mark.tensorflow_variant)])
def test_the_npz_form_loads_back_the_weights_it_was_written_with(tmp_path, preset):
    model = _small_model(preset)
    crvae_io.save_npz_form(model, tmp_path / "float32")
    crvae_io.save_npz_form(model, tmp_path / "float16", dtype="float16")
    assert sorted(os.listdir(tmp_path / "float16")) == ["model.json", "weights.npz"]
    exact = crvae_io.load_model(tmp_path / "float32")
    rounded = crvae_io.load_model(tmp_path / "float16" / "model.json")  # the file works too
    assert type(exact) is type(model) and len(exact.weights) == len(model.weights)
    for variable, a, b, original in zip(model.weights, exact.get_weights(), rounded.get_weights(),
                                        model.get_weights()):
        assert a.dtype == b.dtype == original.dtype, variable.path
        np.testing.assert_array_equal(a, original)
        np.testing.assert_array_equal(b, original.astype(np.float16).astype(original.dtype))
    z = np.random.default_rng(0).standard_normal((2,) + model.latent_shape).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(exact.decode(z)),
                               keras.ops.convert_to_numpy(model.decode(z)), atol=1e-6)
    spec = json.loads((tmp_path / "float16" / "model.json").read_text())
    assert spec["weights_sha256"] == crvae_io.file_sha256(tmp_path / "float16" / "weights.npz")
    assert [v["path"] for v in spec["variables"]] == [v.path for v in model.weights]


@pytest.mark.portable
def test_a_runs_weights_file_is_shipped_byte_for_byte(tmp_path):
    model = _small_model()
    crvae_io.save_weights_npz(model, tmp_path / "final_weights.npz", dtype="float16")
    crvae_io.load_weights_npz(model, tmp_path / "final_weights.npz")  # the run's scored weights
    crvae_io.save_npz_form(model, tmp_path / "shipped", weights=tmp_path / "final_weights.npz")
    assert ((tmp_path / "shipped" / "weights.npz").read_bytes()
            == (tmp_path / "final_weights.npz").read_bytes())  # one blob in git
    # Another model's weights are refused, and nothing is left half-written.
    with pytest.raises(ValueError, match="does not hold the model's weights"):
        crvae_io.save_npz_form(_small_model(seed=1), tmp_path / "wrong",
                               weights=tmp_path / "final_weights.npz")
    assert not (tmp_path / "wrong" / "weights.npz").exists()
    assert not (tmp_path / "wrong" / "model.json").exists()


@pytest.mark.portable
def test_mismatched_files_are_refused_not_loaded_into_the_wrong_variables(tmp_path):
    model = _small_model()
    crvae_io.save_npz_form(model, tmp_path / "a")
    crvae_io.save_npz_form(_small_model(seed=1), tmp_path / "b")
    spec_path = tmp_path / "a" / "model.json"
    spec = json.loads(spec_path.read_text())
    # Another weights file beside the config: its SHA-256 differs.
    (tmp_path / "a" / "weights.npz").write_bytes((tmp_path / "b" / "weights.npz").read_bytes())
    with pytest.raises(ValueError, match="SHA-256"):
        crvae_io.load_model(tmp_path / "a")
    # A config whose recorded variables are not the rebuilt model's.
    crvae_io.save_npz_form(model, tmp_path / "a")
    spec["variables"] = spec["variables"][::-1]
    spec["weights_sha256"] = crvae_io.file_sha256(tmp_path / "a" / "weights.npz")
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="variables differ"):
        crvae_io.load_model(tmp_path / "a")
    spec_path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a keras_crvae npz-form"):
        crvae_io.load_model(tmp_path / "a")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="neither model.keras nor model.json"):
        crvae_io.load_model(tmp_path / "empty")


@pytest.mark.portable
def test_load_pretrained_finds_the_npz_form(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_source_tree_models", lambda: str(tmp_path / "absent"))
    monkeypatch.delenv(pretrained.MODELS_ENVIRONMENT_VARIABLE, raising=False)
    model = _small_model()
    crvae_io.save_npz_form(model, tmp_path / "mine" / "tiny", dtype="float16")
    assert keras_crvae.list_pretrained(directory=tmp_path / "mine") == ["tiny"]
    assert pretrained.pretrained_path("tiny", tmp_path / "mine").endswith("model.json")
    loaded = keras_crvae.load_pretrained("tiny", directory=tmp_path / "mine")
    assert tuple(keras.ops.convert_to_numpy(loaded.sample(2, seed=0)).shape) == (2, 28, 28, 1)


ROOT = str(pathlib.Path(__file__).resolve().parents[1])


def _crvae_cli(*arguments, cwd):
    # This checkout's `crvae` (setup.cfg: crvae = crvae_cli:main), not another installed copy.
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "crvae_cli", *arguments], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env=environment)


def test_the_cli_takes_a_shipped_folder_as_its_model(tmp_path):
    crvae_io.save_npz_form(_small_model(), tmp_path / "shipped", dtype="float16")
    result = _crvae_cli("sample", f"--model={tmp_path / 'shipped'}", "--num_images=4",
                        f"--output={tmp_path / 'grid.png'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "grid.png").stat().st_size > 0
    # A folder with a damaged model.json: one line naming the flag, exit 2.
    (tmp_path / "shipped" / "model.json").write_text("{not json")
    result = _crvae_cli("sample", f"--model={tmp_path / 'shipped'}", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"--model={tmp_path / 'shipped'}" in lines[0] and "model.json" in lines[0]
