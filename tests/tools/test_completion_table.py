"""`tools/studies/completion_table.py` resumes: rows already in its JSON with the same settings
are skipped, other settings start afresh, and under the queue's deadline it stops before a row."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from tests.models.test_super_resolution import tiny_stage1

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "studies" / "completion_table.py"
sys.path.insert(0, str(SCRIPT.parent))
import completion_table as tool  # noqa: E402  (a script, not a package; its flags are defined in main)


def _run(tmp_path, *flags, env=None):
    command = [sys.executable, str(SCRIPT), f"--models=tiny={tmp_path / 'tiny.keras'}",
               f"--data={tmp_path / 'faces.npz'}", "--train=0:6", "--heldout=6:8",
               "--steps=2", "--figures=",
               f"--output={tmp_path / 'completion.json'}", *flags]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               env={**os.environ, **(env or {})})
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_a_rerun_skips_done_rows_and_the_deadline_stops_before_a_row(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "faces.npz", x=faces)
    tiny_stage1().save(tmp_path / "tiny.keras")
    output = tmp_path / "completion.json"

    stop_file = tmp_path / "stops.txt"
    stdout = _run(tmp_path, "--masks=centre",
                  env={"CRVAE_DEADLINE": "0", "CRVAE_STOP_FILE": str(stop_file)})
    assert "stopped before tiny centre" in stdout
    assert "stopped by the queue's deadline" in stop_file.read_text()
    assert not output.exists()

    _run(tmp_path, "--masks=centre")
    first = json.loads(output.read_text())["rows"]
    assert [row["mask"] for row in first] == ["centre"]
    stdout = _run(tmp_path, "--masks=centre,random_blocks")  # resumes: one row more
    assert stdout.count("done already") == 1
    rows = json.loads(output.read_text())["rows"]
    assert rows[0] == first[0] and [row["mask"] for row in rows] == ["centre", "random_blocks"]
    assert all(row["masked_mse"]["optimised"]["mean"] >= 0 for row in rows)


def test_rows_of_other_settings_are_not_kept(tmp_path):
    settings = {key: 1 for key in tool.SETTINGS}
    path = tmp_path / "completion.json"
    assert tool.earlier_rows(str(path), settings) == []
    path.write_text(json.dumps({**settings, "rows": [{"model": "m"}]}))
    assert tool.earlier_rows(str(path), settings) == [{"model": "m"}]
    assert tool.earlier_rows(str(path), {**settings, "steps": 2}) == []
