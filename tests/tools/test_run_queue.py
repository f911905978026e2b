"""tools/reproduce/run_queue.py: ordered entries, each resumed where it stopped, within one budget.

The entries here are tiny stand-ins for the long-run engine (seconds each, no TensorFlow): a
script that counts "epochs" in a state file and speaks the engine's side of the protocol (it stops
at an epoch end after `CRVAE_DEADLINE` or a SIGTERM and appends a line to `CRVAE_STOP_FILE`). The
engine's own side is tested in tests/test_long_studies.py."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.portable  # no Keras at all

QUEUE = pathlib.Path(__file__).resolve().parents[2] / "tools" / "reproduce" / "run_queue.py"

ENTRY = '''
import os, signal, sys, time
state, epochs, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
requested = []
signal.signal(signal.SIGTERM, lambda signum, frame: requested.append("SIGTERM"))
done = int(open(state).read()) if os.path.exists(state) else 0
deadline = float(os.environ.get("CRVAE_DEADLINE", "inf"))
with open(state + ".nice", "w") as handle:
    handle.write(str(os.nice(0)))
print("starting at epoch", done, flush=True)
while done < epochs:
    time.sleep(seconds)
    done += 1
    with open(state, "w") as handle:
        handle.write(str(done))
    if done < epochs and (requested or time.time() >= deadline):
        with open(os.environ["CRVAE_STOP_FILE"], "a") as handle:
            handle.write(f"{state}: stopped by {requested[0] if requested else 'deadline'}\\n")
        break
'''


def _queue_file(tmp_path, *entries):
    script = tmp_path / "entry.py"
    script.write_text(ENTRY)
    lines = ["# two tiny entries", ""]
    for name, epochs, seconds in entries:
        lines.append(f"MARK={name} {sys.executable} {script} {tmp_path / name} {epochs} {seconds}")
    path = tmp_path / "queue.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_queue(tmp_path, *flags):
    return subprocess.run([sys.executable, str(QUEUE), f"--queue={tmp_path / 'queue.txt'}",
                           f"--log_dir={tmp_path / 'logs'}", *flags], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def _epochs(tmp_path, name):
    path = tmp_path / name
    return int(path.read_text()) if path.exists() else 0


def _state(tmp_path):
    return json.loads((tmp_path / "logs" / "queue_state.json").read_text())


def test_entries_run_in_order_niced_and_finished_ones_are_skipped(tmp_path):
    _queue_file(tmp_path, ("first", 3, 0.02), ("second", 2, 0.02))
    result = _run_queue(tmp_path, "--minutes=2", "--nice=5")
    assert result.returncode == 0, result.stderr
    assert (_epochs(tmp_path, "first"), _epochs(tmp_path, "second")) == (3, 2)
    assert [record["status"] for record in _state(tmp_path).values()] == ["finished"] * 2
    assert result.stdout.index("#1 finished") < result.stdout.index("#2 starts")
    assert int((tmp_path / "first.nice").read_text()) == min(os.nice(0) + 5, 19)
    logs = sorted(path.name for path in (tmp_path / "logs").iterdir())
    assert "queue.log" in logs and any(name.startswith("01_") for name in logs)
    again = _run_queue(tmp_path, "--minutes=2")
    assert again.returncode == 0 and again.stdout.count("finished already, skipped") == 2
    assert "2 of 2 entries finished" in again.stdout


def test_the_budget_stops_an_entry_at_an_epoch_end_and_the_next_run_resumes_it(tmp_path):
    _queue_file(tmp_path, ("long", 30, 0.2), ("short", 1, 0.01))
    result = _run_queue(tmp_path, "--minutes=0.01")  # 0.6 s: a few of the 30 epochs
    assert result.returncode == 0, result.stderr
    stopped_at = _epochs(tmp_path, "long")
    assert 1 <= stopped_at < 30 and _epochs(tmp_path, "short") == 0
    assert "stopped by deadline" in result.stdout and "budget spent after #1" in result.stdout
    assert [record["status"] for record in _state(tmp_path).values()] == ["stopped"]
    resumed = _run_queue(tmp_path, "--minutes=2")
    assert resumed.returncode == 0, resumed.stderr
    assert (_epochs(tmp_path, "long"), _epochs(tmp_path, "short")) == (30, 1)
    log = next((tmp_path / "logs").glob("01_*.log")).read_text()
    assert f"starting at epoch {stopped_at}" in log and log.count("=== queue stretch") == 2
    record = next(iter(_state(tmp_path).values()))
    assert record["status"] == "finished" and record["stretches"] == 2


def test_sigterm_is_forwarded_and_the_entry_stops_at_its_epoch_end(tmp_path):
    _queue_file(tmp_path, ("long", 500, 0.1), ("short", 1, 0.01))
    queue = subprocess.Popen([sys.executable, str(QUEUE), f"--queue={tmp_path / 'queue.txt'}",
                              f"--log_dir={tmp_path / 'logs'}", "--minutes=5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while _epochs(tmp_path, "long") < 1 and time.time() < deadline:
        time.sleep(0.05)
    queue.send_signal(signal.SIGTERM)
    stdout, stderr = queue.communicate(timeout=60)
    assert queue.returncode == 0, stderr
    assert 1 <= _epochs(tmp_path, "long") < 500 and _epochs(tmp_path, "short") == 0
    assert "stopped by SIGTERM" in stdout and "SIGTERM received: no further entries" in stdout
    assert [record["status"] for record in _state(tmp_path).values()] == ["stopped"]


@pytest.mark.parametrize("flags, expected", [
    (("--minutes=0",), "--minutes=0.0: expected a number of minutes > 0"),
    (("--minutes=5", "--nice=30"), "--nice=30: expected 0 to 19"),
])
def test_usage_errors_are_one_line_with_status_2(tmp_path, flags, expected):
    _queue_file(tmp_path, ("first", 1, 0.01))
    result = _run_queue(tmp_path, *flags)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"run_queue.py: {expected}"]


def test_a_missing_queue_file_is_a_usage_error(tmp_path):
    result = _run_queue(tmp_path, "--minutes=1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--queue=" in result.stderr and "expected a text file" in result.stderr
