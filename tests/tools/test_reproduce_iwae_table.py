"""The IWAE-table reproduction script runs its smoke mode end to end and resumes finished rows."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SCRIPT = ROOT / "tools" / "reproduce_iwae_table.py"

pytestmark = pytest.mark.skipif(
    not (SHARED / "mnist.npz").exists() or not (SHARED / "binarized_mnist.npz").exists(),
    reason="shared/data/mnist.npz and binarized_mnist.npz are needed (real MNIST, not shipped)")


def _run(output_dir):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", f"--output_dir={output_dir}",
         "--presets=mnist_mlp_vae,mnist_mlp_iwae_2layer", "--num_train=200", "--num_valid=20",
         "--num_samples=4", "--threads=1"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=900)


def test_smoke_mode_writes_both_kinds_of_rows_and_skips_finished_ones(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    rows = {row["preset"]: row for row in summary["results"]}
    assert set(rows) == {"mnist_mlp_vae", "mnist_mlp_iwae_2layer"}
    assert rows["mnist_mlp_vae"]["paper_nll"] == 86.76
    assert rows["mnist_mlp_iwae_2layer"]["paper_nll"] == 83.89
    for name, row in rows.items():
        assert row["nll"]["num_samples"] == 4 and row["nll"]["num_images"] == 20
        # Finite and below 784 ln 2 nats (every pixel a coin flip): the output bias starts at the
        # training pixels' mean logit, so even one smoke epoch beats that.
        assert 0 < row["nll"]["mean"] < 784 * math.log(2)
        assert (tmp_path / name / "model.weights.h5").stat().st_size > 0
    # Active units: one count for one stochastic layer, "a+b" for two.
    assert "+" in str(rows["mnist_mlp_iwae_2layer"]["active_units"])
    assert "+" not in str(rows["mnist_mlp_vae"]["active_units"])
    assert "| mnist_mlp_iwae_2layer |" in (tmp_path / "results.md").read_text()
    again = _run(tmp_path)
    assert again.returncode == 0 and again.stdout.count("already finished") == 2
