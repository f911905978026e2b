"""`crvae train --preset=mnist_two_stage` runs both stages and leaves the usual artifacts."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

# The subprocess imports the keras_crvae under test (this checkout), not another installed copy.
ROOT = str(pathlib.Path(__file__).resolve().parents[1])
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))


def test_train_two_stage_preset_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=(rng.random((100, 28, 28)) * 255).astype(np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "keras_crvae.cli", "train", "--preset=mnist_two_stage",
         "--data=train.npz:x", "--eval_data=embedded:test", "--epochs=1", "--stage2_epochs=2",
         "--set", "stage2_width=16", "--num_fid_samples=20", "--output_dir=run"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    for name in ("model.keras", "samples.png", "samples_stage1.png", "reconstructions.png",
                 "metrics.json", "history_stage1.csv", "history_stage2.csv"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert [epoch for epoch, _ in metrics["gamma_x"]] == [1]
    assert [epoch for epoch, _ in metrics["gamma_z"]] == [1, 2]
    assert len(metrics["stage2_history"]["loss"]) == 2
    assert metrics["config"]["stage2_network"]["width"] == 16
    assert len(metrics["spectra"]["values"]["stage2"]) == 64
    assert metrics["paper_fid"] == 13.4
