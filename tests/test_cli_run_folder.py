"""The run folder as a transaction, through the real console script (issue 31): nothing a finished
run holds is lost to a rejected `--fresh`, an interrupted `--fresh`, a killed final evaluation or a
second process on the same folder.

TensorFlow loads in four subprocesses here (one tiny run, width 2, one epoch on 256 images, killed
as its final evaluation starts and finished by a rerun; then one `--fresh` interrupted and one
completed); every other drill is answered before TensorFlow loads.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from test_cli_drills import (COMMAND, ENV, assert_usage_error, crvae, default_sigint,
                              write_mnist_npz)

TINY = ["--data=train.npz", "--output_dir=run", "--epochs=1", "--set", "base_channels=2",
        "--set", "latent_channels=8", "--batch_size=32", "--nll_samples=2", "--nll_images=16",
        "--eval_data=eval.npz"]


def snapshot(folder):
    """{name: sha256} of every file under `folder` (what "nothing lost" compares)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return files


def start(args, cwd):
    return subprocess.Popen([*COMMAND, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def wait_for(condition, process, seconds=240):
    deadline = time.time() + seconds
    while not condition() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run killed (SIGKILL) as its final evaluation starts, then finished by the same command."""
    directory = tmp_path_factory.mktemp("run_folder")
    write_mnist_npz(directory / "train.npz", 256)
    write_mnist_npz(directory / "eval.npz", 16, key="x")
    run = directory / "run"
    # The test-only hook of `keras_crvae.io.enter_phase`: the process kills itself as it enters
    # the evaluation, where a timer would race it.
    killed = subprocess.run([*COMMAND, "train", *TINY], cwd=directory, capture_output=True,
                            text=True, timeout=600,
                            env=dict(ENV, CRVAE_TEST_SIGTERM_AT="evaluation:KILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    killed = {"record": json.loads((run / "run.json").read_text()),
              "files": sorted(os.listdir(run))}
    started = time.time()
    rerun = crvae("train", *TINY, cwd=directory)
    return directory, killed, rerun, time.time() - started


def test_a_killed_final_evaluation_is_finished_by_the_same_command(finished):
    directory, killed, rerun, _ = finished
    # Killed while scoring: trained (model.keras saved) but not finished, no metrics yet.
    assert killed["record"]["trained"] is True and killed["record"]["finished"] is False
    assert "model.keras" in killed["files"] and "metrics.json" not in killed["files"]
    assert "run.lock" in killed["files"]  # left by the killed process: stale, taken over
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Taking over run/run.lock" in rerun.stdout
    assert "final evaluation did not finish: finishing it" in rerun.stdout
    assert "Training" not in rerun.stdout  # nothing retrained
    assert "NLL  " in rerun.stdout and "run.json" in rerun.stdout.splitlines()[-1]
    record = json.loads((directory / "run" / "run.json").read_text())
    assert record["finished"] is True and record["precision"] in ("float32", "bfloat16")
    assert (directory / "run" / "metrics.json").exists()
    assert not (directory / "run" / "run.lock").exists()


def test_rejected_fresh_settings_leave_the_run_untouched(finished):
    directory = finished[0]
    before = snapshot(directory / "run")
    for args, fragments in [(["--time_steps=3"], ["--time_steps=3", "a divisor of", "1, 2, 4, 8"]),
                            (["--set", "latent_channels=3"],
                             ["--set latent_channels=3", "a multiple of time_steps=8"]),
                            (["--batch_size=20000"],
                             ["--batch_size=20000", "at most the 256 training images"])]:
        started = time.time()
        assert_usage_error(crvae("train", *TINY, "--fresh", *args, cwd=directory), *fragments)
        assert time.time() - started < 8  # answered before TensorFlow loads
        assert snapshot(directory / "run") == before


def test_locks_name_their_holder_and_stale_ones_are_taken_over(finished):
    directory = finished[0]
    before = snapshot(directory / "run")
    lock = directory / "run" / "run.lock"
    host = socket.gethostname()
    # A live process on this host (this one) holds the folder: refused, naming it.
    lock.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": "earlier"}))
    line = assert_usage_error(crvae("train", *TINY, cwd=directory), "--output_dir=run",
                              f"pid {os.getpid()} on host {host}")
    assert "in use" in line
    # A process on another host: refused, saying how to clear it if that process is gone.
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "earlier"}))
    assert_usage_error(crvae("train", *TINY, cwd=directory), "host elsewhere.example",
                       "delete run/run.lock")
    # A dead process of this host: its lock is taken over (the run is already trained).
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock.write_text(json.dumps({"pid": gone.pid, "host": host, "started": "earlier"}))
    result = crvae("train", *TINY, cwd=directory)
    assert result.returncode == 0, result.stderr
    assert f"pid {gone.pid} (no longer running)" in result.stdout
    assert "already trained (1 epoch)" in result.stdout
    assert snapshot(directory / "run") == before  # lock released, nothing else changed


def test_fresh_sets_the_old_run_aside_until_the_new_one_has_an_epoch(finished):
    directory = finished[0]
    run = directory / "run"
    before = snapshot(run)
    fresh = ["train", *TINY, "--fresh", "--time_steps=4", "--epochs=30"]
    process = start(fresh, directory)
    assert wait_for(lambda: (run / "previous" / "model.keras").exists(), process), (
        process.communicate()[1][-2000:])
    # A second process on the same folder is refused, naming the first.
    second = crvae("train", *TINY, cwd=directory)
    assert_usage_error(second, "--output_dir=run", f"pid {process.pid}")
    process.send_signal(signal.SIGINT)  # before the first epoch ends: the old run comes back
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0 or (run / "backup").exists():
        pytest.skip("the first epoch ended before the interrupt arrived")
    assert process.returncode == 130, stderr[-2000:]
    assert snapshot(run) == before
    # Completed, the new run replaces the old one and previous/ goes.
    result = crvae("train", *TINY, "--fresh", "--time_steps=4", cwd=directory)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept in run/previous/ until this one has backed up its first epoch" in result.stdout
    assert "Precision: " in result.stdout
    assert not (run / "previous").exists() and not (run / "run.lock").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["settings"]["network"]["time_steps"] == 4 and record["finished"] is True
