"""tools/studies/face_budget.py: pilots parsed, finished pilots skipped on a rerun, the table."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import face_budget  # noqa: E402

pytestmark = pytest.mark.portable


def _result(status, fids):
    return {"status": status, "epochs_done": len(fids), "machine_hours": 0.1 * len(fids),
            "scores": [{"epoch": i + 1, "machine_hours": 0.1 * (i + 1), "sample_fid": fid,
                        "reconstruction_fid": 2 * fid, "reconstruction_mse": 0.01}
                       for i, fid in enumerate(fids)]}


def test_pilot_specs_are_parsed_and_checked():
    name, spec = face_budget.parse_pilot("half_bf16:width=half,batch=32,precision=bfloat16")
    assert (name, spec) == ("half_bf16", {"width": "half", "batch": "32", "precision": "bfloat16"})
    assert face_budget.pilot_settings(dict(spec, epochs="20")) == {
        "base_channels": 16, "discriminator_channels": 32, "precision": "bfloat16",
        "batch_size": 32, "epochs": 20}
    assert face_budget.pilot_settings({"width": "quarter"})["base_channels"] == 8
    for bad in ("nospec", "x:width=tenth", "x:precision=float16", "x:batch"):
        with pytest.raises(ValueError):
            face_budget.parse_pilot(bad)


def test_a_finished_pilot_is_skipped_and_a_stopped_one_resumes_first():
    pilots = [face_budget.parse_pilot(text) for text in (
        "a:width=quarter", "b:width=half", "c:width=full", "d:width=full,batch=32")]
    results = {"pilots": {
        "a": face_budget.summarize(pilots[0][1], _result("budget spent", [90.0, 80.0])),
        # Finished, but with other settings than asked now: run again.
        "b": face_budget.summarize({"width": "full"}, _result("trained", [70.0])),
    }}
    calls, saved = [], []
    outcomes = {"b": _result("budget spent", [60.0, 65.0]), "c": _result("stopped", [75.0])}

    def run_pilot(name, spec):
        calls.append(name)
        return outcomes[name]

    ran = face_budget.run_pilots(pilots, results, run_pilot, lambda r, ran: saved.append(len(r)))
    assert ran == calls == ["b", "c"]  # a skipped; d waits until c, stopped, has resumed
    assert len(saved) == 2
    row = results["pilots"]["b"]
    assert (row["last_sample_fid"], row["best_sample_fid"], row["best_at_epoch"]) == (65.0, 60.0, 1)
    assert row["best_at_machine_hours"] == pytest.approx(0.1)
    assert results["pilots"]["c"]["status"] == "stopped"
    outcomes.update(c=_result("budget spent", [75.0, 72.0]), d=_result("trained", [99.0]))
    calls.clear()
    assert face_budget.run_pilots(pilots, results, run_pilot, lambda r, ran: None) == ["c", "d"]
    results.update(budget_hours=0.5, num_samples=1000, num_held_out=1000, features="toy")
    table = face_budget.markdown_table(results)
    assert ("| a | quarter (8/16) | preset | float32 | budget spent | 2 | 0.200 | 80.0 | "
            "80.0 (0.200) | 160.0 | 0.0100 |") in table
    assert table.count("\n| ") == 1 + 4  # the header and four pilots


def test_merged_pilots_keeps_another_workers_rows():
    # Two workers share one study file: worker 1 ran "half_b64_bf16", worker 2 wrote
    # "half_b32_bf16" since worker 1 read the file; neither row may be lost, and worker 1's stale
    # copy of a row it did not run must not overwrite the newer one on disk.
    on_disk = {"half_b32_bf16": {"status": "budget spent"},
               "quarter_b64_f32": {"status": "budget spent"}}
    own = {"quarter_b64_f32": {"status": "stopped"}, "half_b64_bf16": {"status": "budget spent"}}
    merged = face_budget.merged_pilots(on_disk, own, ran=["half_b64_bf16"])
    assert merged == {"quarter_b64_f32": {"status": "budget spent"},
                      "half_b64_bf16": {"status": "budget spent"},
                      "half_b32_bf16": {"status": "budget spent"}}
    assert list(merged) == ["quarter_b64_f32", "half_b64_bf16", "half_b32_bf16"]  # study order
    assert list(face_budget.merged_pilots({}, {"zz": 1, "aa": 2}, ran=[])) == ["aa", "zz"]


def test_pilots_flag_items_regrouped():
    # absl's list flag splits `--pilots=a:width=half,batch=32,b:width=full` at every comma.
    items = "a:width=half,batch=32,precision=bfloat16,b:width=full".split(",")
    texts = face_budget.group_pilot_items(items)
    assert texts == ["a:width=half,batch=32,precision=bfloat16", "b:width=full"]
    assert face_budget.parse_pilot(texts[0]) == (
        "a", {"width": "half", "batch": "32", "precision": "bfloat16"})
    with pytest.raises(ValueError):  # a setting before any pilot name is still an error
        face_budget.parse_pilot(face_budget.group_pilot_items(["batch=32"])[0])
