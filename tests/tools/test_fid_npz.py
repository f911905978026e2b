"""`tools/studies/fid_npz.py` scores a sample file against a reference set stored in it or read from elsewhere
(`--reference`, the form of a device run's sample file), with the same numbers."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "studies" / "fid_npz.py"


def _fid(tmp_path, name, *flags):
    output = tmp_path / f"{name}.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--features=mnist", "--num_samples=48", "--batch_size=16",
         f"--output={output}", *flags],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(output.read_text())


def test_a_reference_read_from_another_file_gives_the_same_fid(tmp_path):
    rng = np.random.default_rng(0)
    reference = (rng.random((64, 28, 28)) < 0.2).astype(np.uint8) * 255  # MNIST's (N, 28, 28)
    stage1 = (rng.random((64, 28, 28, 1)) < 0.3).astype(np.uint8) * 255
    stage2 = np.concatenate([reference[:32, ..., None], stage1[32:]])  # half the reference: closer
    np.savez(tmp_path / "with_reference.npz", stage1=stage1, stage2=stage2,
             reference=reference[..., None])
    np.savez(tmp_path / "samples_only.npz", stage1=stage1, stage2=stage2)
    np.savez(tmp_path / "test_images.npz", x_test=reference)

    inside = _fid(tmp_path, "inside", f"--npz={tmp_path / 'with_reference.npz'}")
    outside = _fid(tmp_path, "outside", f"--npz={tmp_path / 'samples_only.npz'}",
                   f"--reference={tmp_path / 'test_images.npz'}:x_test")
    for key in ("stage1", "stage2"):
        assert np.isclose(inside[key], outside[key], rtol=1e-6), (inside, outside)
    assert outside["stage2"] < outside["stage1"]
    assert outside["num_reference"] == 48 and outside["num_stage1"] == 48
    assert outside["reference"].endswith(":x_test")
