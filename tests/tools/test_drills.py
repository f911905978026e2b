"""`tools/drills.py`: the drill table of issue 31. The TensorFlow drills run outside the suite
(docs/guide.md, "Reliability"); here a few pre-TensorFlow drills run through the tool, and its
folder checks are shown to fail when something is lost."""

import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("drills", ROOT / "tools" / "drills.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pre_tensorflow_drills_pass_and_fill_the_table(tmp_path):
    drills = load_tool()
    status = drills.main(["--quick", "--only=checked-before-tensorflow-0,fid-weights",
                          f"--output_dir={tmp_path}"])
    report = json.loads((tmp_path / "drills.json").read_text())
    assert status == 0, report
    assert [row["scenario"] for row in report["rows"]] == ["checked-before-tensorflow-0",
                                                           "fid-weights-unsafe-archive"]
    assert all(row["passed"] and row["exit"] == 2 for row in report["rows"])
    assert report["rows"][0]["folder_after"] == "(no folder)"
    table = (tmp_path / "drills.md").read_text()
    assert "| 5 | `train --time_steps=3`" in table and "2 of 2 passed." in table


def test_the_folder_checks_catch_a_loss(tmp_path):
    drills = load_tool()
    (tmp_path / "model.keras").write_bytes(b"weights")
    before = drills.snapshot(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"other")
    (tmp_path / ".tmp-1.keras").write_bytes(b"half")
    after = drills.snapshot(tmp_path)
    output = {"stdout": "", "stderr": "crvae train: error: --x=1: expected y\nmore\n"}
    assert drills.unchanged(before, after, tmp_path, output)
    assert drills.kept("model.keras")(before, after, tmp_path, output) == [
        "model.keras lost or changed"]
    assert drills.no_temporary_files(before, after, tmp_path, output)
    assert drills.one_line_error("--x=1")(before, after, tmp_path, output)  # two lines
    assert drills.state_is("finished")(before, after, tmp_path, output) == [
        "run.json: missing, expected finished"]
    assert drills.unchanged(before, before, tmp_path, output) == []
