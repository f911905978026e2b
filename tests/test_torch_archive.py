"""`keras_crvae.torch_archive`: PyTorch zip archives read with NumPy, no torch and no code executed.

The archives in tests/evaluation/data/ were written by torch 2.13.0+cpu
(tests/evaluation/make_torch_fixtures.py), with every tensor as torch reads it back beside them,
so these tests compare against torch without needing it. Other archives are built here by hand,
opcode by opcode, as a hostile one would be.
"""

import importlib.util
import os
import pathlib
import struct
import zipfile

import numpy as np
import pytest

from keras_crvae import torch_archive

DATA = pathlib.Path(__file__).resolve().parent / "evaluation" / "data"


# === Archives written by torch ===


def test_a_torch_saved_state_dict_reads_as_torch_reads_it():
    loaded = torch_archive.load(DATA / "torch_state_dict.pt")
    tensors = torch_archive.state_dict(loaded)
    with np.load(DATA / "torch_expected.npz") as expected:
        names = [key.split("/", 1)[1] for key in expected if key.startswith("state_dict/")]
        assert sorted(tensors) == sorted(names)
        for name in names:
            reference = expected[f"state_dict/{name}"]
            assert tensors[name].dtype == reference.dtype and tensors[name].shape == reference.shape
            np.testing.assert_array_equal(tensors[name], reference, err_msg=name)
    assert tensors["transposed"].shape == (5, 4) and tensors["scalar"].shape == ()
    assert tensors["bfloat16"].dtype == np.float32  # widened: NumPy has no bfloat16


def test_a_torchscript_archive_reads_as_torch_jit_load_reads_it():
    loaded = torch_archive.load(DATA / "torch_script.pt")
    assert isinstance(loaded, torch_archive.ScriptObject)
    assert loaded.torch_class.startswith("__torch__.") and loaded.torch_class.endswith("Net")
    tensors = torch_archive.state_dict(loaded)
    with np.load(DATA / "torch_expected.npz") as expected:
        names = [key.split("/", 1)[1] for key in expected if key.startswith("script/")]
        assert sorted(tensors) == sorted(names) == ["layers.0.conv.weight", "layers.0.mean",
                                                    "layers.2.scale"]
        for name in names:
            np.testing.assert_array_equal(tensors[name], expected[f"script/{name}"])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_archives_written_by_the_installed_torch(tmp_path):
    """Where torch is installed: its own archives, freshly written, read the same."""
    spec = importlib.util.spec_from_file_location(
        "make_torch_fixtures", DATA.parent / "make_torch_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(str(tmp_path))
    tensors = {f"state_dict/{k}": v for k, v in torch_archive.state_dict(
        torch_archive.load(tmp_path / "torch_state_dict.pt")).items()}
    tensors.update({f"script/{k}": v for k, v in torch_archive.state_dict(
        torch_archive.load(tmp_path / "torch_script.pt")).items()})
    with np.load(tmp_path / "torch_expected.npz") as expected:
        assert sorted(tensors) == sorted(expected)
        for key in expected:
            np.testing.assert_array_equal(tensors[key], expected[key], err_msg=key)


# === Archives built by hand ===


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value):
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def _tensor(key, numel, size, stride, offset=0, storage="FloatStorage"):
    """The opcodes of `_rebuild_tensor_v2(storage KEY, offset, size, stride, False, OrderedDict())`."""
    storage_id = _tuple(_text("storage"), _global("torch", storage), _text(key), _text("cpu"),
                        _int(numel)) + b"Q"
    hooks = _global("collections", "OrderedDict") + b")R"
    return (_global("torch._utils", "_rebuild_tensor_v2")
            + _tuple(storage_id, _int(offset), _tuple(*map(_int, size)),
                     _tuple(*map(_int, stride)), b"\x89", hooks) + b"R")


def _ordered_dict(**items):
    body = b"".join(_text(key) + value for key, value in items.items())
    return _global("collections", "OrderedDict") + b")R(" + body + b"u"


def _archive(path, pickle_body, storages=None):
    """A zip laid out as torch's: archive/data.pkl, archive/data/KEY, archive/version."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02" + pickle_body + b".")
        archive.writestr("archive/version", b"3\n")
        for key, values in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", np.asarray(values).astype("<f4").tobytes())
    return path


def test_a_hand_built_archive_reads_without_torch(tmp_path):
    values = np.arange(12, dtype=np.float32)
    body = _ordered_dict(w=_tensor("0", 12, (3, 4), (4, 1)),
                         w_t=_tensor("0", 12, (4, 3), (1, 4)),
                         tail=_tensor("0", 12, (2,), (1,), offset=10))
    tensors = torch_archive.state_dict(torch_archive.load(_archive(tmp_path / "a.pt", body,
                                                                   {"0": values})))
    np.testing.assert_array_equal(tensors["w"], values.reshape(3, 4))
    np.testing.assert_array_equal(tensors["w_t"], values.reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["tail"], [10, 11])
    # A TorchScript-style module record: class from the __torch__ namespace, state by BUILD.
    module = (_global("__torch__.model", "Net") + b")\x81}(" + _text("weight")
              + _tensor("0", 12, (2, 2), (2, 1)) + _text("training") + b"\x89" + b"ub")
    loaded = torch_archive.load(_archive(tmp_path / "b.pt", module, {"0": values}))
    assert loaded.torch_class == "__torch__.model.Net" and loaded.attributes["training"] is False
    np.testing.assert_array_equal(torch_archive.state_dict(loaded)["weight"], [[0, 1], [2, 3]])


@pytest.mark.parametrize("module, name", [("os", "system"), ("posix", "system"),
                                          ("builtins", "eval"), ("subprocess", "call"),
                                          ("torch", "load"), ("numpy", "load")])
def test_an_archive_asking_for_another_global_is_refused(tmp_path, module, name):
    marker = tmp_path / "ran"
    body = _global(module, name) + _tuple(_text(f"touch {marker}")) + b"R"
    path = _archive(tmp_path / "evil.pt", body)
    with pytest.raises(torch_archive.UnsafeArchiveError, match=rf"global {module}\.{name}"):
        torch_archive.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("body, message", [
    (_ordered_dict(w=_tensor("0", 4, (3, 4), (4, 1))), "reads element 11 of a storage of 4"),
    (_ordered_dict(w=_tensor("0", 4, (2,), (1,), offset=3)), "reads element 4 of a storage of 4"),
    (_ordered_dict(w=_tensor("missing", 4, (2,), (1,))), "no member 'archive/data/missing'"),
    (_global("__torch__.m", "Net") + _tuple(_text("x")) + b"\x81", "built with arguments"),
    (_global("collections", "OrderedDict") + _tuple(_text("storage"), _global(
        "torch", "FloatStorage"), _text("0"), _text("cpu"), _int(4)) + b"Q\x85R",
     "OrderedDict called with unexpected arguments"),
])
def test_malformed_tensors_and_records_are_refused(tmp_path, body, message):
    path = _archive(tmp_path / "bad.pt", body, {"0": np.zeros(4)})
    with pytest.raises(torch_archive.UnsafeArchiveError, match=message):
        torch_archive.load(path)


def test_files_that_are_not_torch_archives(tmp_path):
    (tmp_path / "plain.pt").write_bytes(b"\x80\x02}q\x00.")  # torch's legacy, non-zip format
    with pytest.raises(ValueError, match="not a PyTorch zip archive"):
        torch_archive.load(tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="data.pkl"):
        torch_archive.load(tmp_path / "other.zip")
    assert os.path.exists(tmp_path / "other.zip")
