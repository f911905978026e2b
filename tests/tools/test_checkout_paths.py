"""tools/checkout_paths.py: the paths committed records carry are relative to the checkout."""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import checkout_paths  # noqa: E402


def test_in_checkout_is_relative_to_the_checkout_whatever_the_current_folder(tmp_path,
                                                                             monkeypatch):
    root = pathlib.Path(__file__).resolve().parents[2]
    assert checkout_paths.ROOT == root
    monkeypatch.chdir(tmp_path)  # a relative path is the current folder's; the record is not
    assert checkout_paths.in_checkout(root / "docs" / "x.json") == os.path.join("docs", "x.json")
    assert checkout_paths.in_checkout(checkout_paths.SHARED_DATA / "a.npz") == os.path.join(
        "..", "shared", "data", "a.npz")
    relative = os.path.relpath(root / "docs", tmp_path)
    assert checkout_paths.in_checkout(relative) == "docs"
