"""The Table 1 reproduction script runs its smoke mode end to end and resumes finished rows."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SCRIPT = ROOT / "tools" / "reproduce" / "reproduce_table1.py"

pytestmark = pytest.mark.skipif(
    not (SHARED / "mnist.npz").exists() or not (SHARED / "binarized_mnist.npz").exists(),
    reason="shared/data/mnist.npz and binarized_mnist.npz are needed (real MNIST, not shipped)")


def _run(output_dir, *extra):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", f"--output_dir={output_dir}",
         "--set=base_channels=2", "--set=latent_channels=16", "--num_valid=40", "--num_train=256",
         "--num_samples=8", *extra],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=900)


def test_smoke_mode_writes_results_and_skips_finished_rows(tmp_path):
    result = _run(tmp_path, "--score_part_images=20")  # the NLL in two kept parts
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    rows = {row["preset"]: row for row in summary["results"]}
    assert set(rows) == {"mnist_vae", "mnist_crvae"}
    for name, row in rows.items():
        assert row["epochs"] == 2 and row["nll"]["num_samples"] == 8 and row["nll"]["num_images"] == 40
        assert row["nll"]["mean"] > 0 and row["paper_nll"] in (82.04, 80.84)
        assert (tmp_path / name / "model.weights.h5").stat().st_size > 0
        assert "float32_check" not in row  # a float32 row needs none
        assert row["nll"]["part_images"] == 20 and row["nll"]["scoring_seconds"] > 0
        parts = json.loads((tmp_path / name / "score_parts.json").read_text())["nll"]["parts"]
        assert sorted(parts) == ["0", "1"] and all(len(p["nll"]) == 20 for p in parts.values())
        assert f"{name}: nll part 2/2: NLL" in result.stdout
    assert "| mnist_crvae | 8 | 2 |" in (tmp_path / "results.md").read_text()
    again = _run(tmp_path, "--score_part_images=20")
    assert again.returncode == 0 and again.stdout.count("already finished") == 2


def test_a_bfloat16_row_is_also_scored_by_a_float32_copy_of_its_weights(tmp_path):
    result = _run(tmp_path, "--presets=mnist_vae", "--epochs=1", "--set=precision=bfloat16",
                  "--float32_check_images=10", "--eval_batch_size=10")
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads((tmp_path / "mnist_vae" / "result.json").read_text())
    check = row["float32_check"]
    assert (check["num_images"], check["num_samples"]) == (10, 8)
    assert check["nll_float32"] != check["nll"]  # really another precision
    assert check["difference_mean"] == pytest.approx(check["nll"] - check["nll_float32"], abs=2e-3)
    # The same weights: bfloat16 rounding moves the score by far less than a fresh initialisation
    # (or the untrained float32 build) would.
    assert abs(check["difference_mean"]) < 2.0
    assert "mixed_bfloat16 against float32 on 10 images" in result.stdout
