"""tools/reproduce/with_rows_paused.sh: the rows of runs/logs/*.pid are stopped while the command
runs and resumed after it, also when it fails; stale pid files are left alone."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tools" / "reproduce" / "with_rows_paused.sh"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _state(pid):
    """The process state letter from /proc (T: stopped, S/R: running or sleeping)."""
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def repository(tmp_path):
    """A checkout-shaped folder with the script and one row: a `sleep` leading its own session,
    as start_row's setsid leaves a row."""
    (tmp_path / "tools" / "reproduce").mkdir(parents=True)
    shutil.copy(SCRIPT, tmp_path / "tools" / "reproduce" / SCRIPT.name)
    logs = tmp_path / "runs" / "logs"
    logs.mkdir(parents=True)
    row = subprocess.Popen(["setsid", "sleep", "60"])
    for _ in range(100):  # until setsid has exec'd sleep as the session leader
        if os.getpgid(row.pid) == row.pid:
            break
        time.sleep(0.05)
    (logs / "table1_row.pid").write_text(f"{row.pid}\n")
    yield tmp_path, row
    row.kill()
    row.wait()


def _run(folder, command):
    return subprocess.run(["bash", str(folder / "tools" / "reproduce" / SCRIPT.name), *command],
                          capture_output=True, text=True, env=dict(os.environ, SETTLE_SECONDS="0"),
                          timeout=60)


def test_the_row_is_stopped_during_the_command_and_resumed_after_it(repository):
    folder, row = repository
    # The command itself reports the row's state while it runs.
    result = _run(folder, ["bash", "-c", f"cut -d')' -f2 /proc/{row.pid}/stat | cut -d' ' -f2"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "T"
    assert "paused 1 row(s)" in result.stderr and "resumed 1 row(s)" in result.stderr
    assert _state(row.pid) != "T"


def test_a_failing_command_still_resumes_the_row_and_gives_its_status(repository):
    folder, row = repository
    result = _run(folder, ["bash", "-c", "exit 3"])
    assert result.returncode == 3
    assert _state(row.pid) != "T"


def test_stale_pid_files_and_a_missing_command(repository):
    folder, row = repository
    logs = folder / "runs" / "logs"
    # Pids that lead no process group of their own (a plain child of this test, which shares the
    # test's group), init, and text that is no pid: none of them is paused or signalled.
    plain = subprocess.Popen(["sleep", "60"])
    try:
        (logs / "faces_old.pid").write_text(f"{plain.pid}\n")
        (logs / "init.pid").write_text("1\n")
        (logs / "garbage.pid").write_text("-1 0\n")
        result = _run(folder, ["bash", "-c", f"cut -d')' -f2 /proc/{plain.pid}/stat | cut -d' ' -f2"])
        assert result.returncode == 0 and "paused 1 row(s)" in result.stderr
        assert result.stdout.strip() != "T"
    finally:
        plain.kill()
        plain.wait()
    usage = _run(folder, [])
    assert usage.returncode == 2 and "usage" in usage.stderr
