"""`weight_parts`: a file split into capped parts joins back bit-identical; damage is refused."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import weight_parts as tool  # noqa: E402  (a script, not a package)


def test_split_caps_parts_and_join_restores_the_bytes(tmp_path):
    data = os.urandom(10_000 + 123)
    original = tmp_path / "weights.npz"
    original.write_bytes(data)
    manifest = tool.split_file(original, tmp_path / "parts", part_bytes=3_000)
    parts = sorted((tmp_path / "parts").glob("weights.npz.part*"))
    assert len(parts) == 4 and max(p.stat().st_size for p in parts) == 3_000
    joined = tool.join_parts(manifest, tmp_path / "back.npz")
    assert joined.read_bytes() == data


def test_a_damaged_or_missing_part_is_refused_and_nothing_is_written(tmp_path):
    original = tmp_path / "weights.npz"
    original.write_bytes(os.urandom(5_000))
    manifest = tool.split_file(original, tmp_path / "parts", part_bytes=2_000)
    part = tmp_path / "parts" / "weights.npz.part001"
    damaged = bytearray(part.read_bytes())
    damaged[0] ^= 1
    part.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged part"):
        tool.join_parts(manifest, tmp_path / "out.npz")
    part.unlink()
    with pytest.raises(ValueError, match="missing part"):
        tool.join_parts(manifest, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()
