"""Faults beyond the keyboard, through the real console script (issue 31): a disk that fills up
while `crvae train` writes its checkpoint leaves the previous checkpoint byte for byte, no
half-written file, and one line on stderr; the same command then resumes from that checkpoint.
The first run stops at its time budget (`--stop_after_minutes`), which this file also checks end
to end.

The full disk is a file-size limit (`RLIMIT_FSIZE`) on the training process: a write past it fails
with EFBIG ("File too large") as a full disk's fails with ENOSPC (Python ignores SIGXFSZ), and both
reach the same handler. Three tiny runs load TensorFlow (width 2, 64 images).
"""

import json
import os
import resource
import subprocess

from test_cli_drills import COMMAND, ENV, TENSORFLOW_NOISE, write_mnist_npz
from test_cli_run_folder import snapshot

TINY = ["--data=train.npz", "--output_dir=run", "--epochs=2", "--set", "base_channels=2",
        "--set", "latent_channels=8", "--batch_size=32", "--nll_samples=2", "--nll_images=8",
        "--eval_data=eval.npz"]


def train(directory, *extra, file_size_limit=None):
    def limit():
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([*COMMAND, "train", *TINY, *extra], cwd=directory, env=ENV,
                          capture_output=True, text=True, timeout=600, preexec_fn=limit)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path):
    write_mnist_npz(tmp_path / "train.npz", 64)
    write_mnist_npz(tmp_path / "eval.npz", 16, key="x")
    stopped = train(tmp_path, "--stop_after_minutes=0.0001")  # stops after epoch 1, resumable
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "Stopped by stop_after_minutes=0.0001 after epoch 1 of 2" in stopped.stdout
    assert "Done." not in stopped.stdout
    backup = tmp_path / "run" / "backup"
    before = snapshot(backup)
    weights_size = (backup / "latest.weights.h5").stat().st_size
    assert weights_size > 40_000  # the limit below must stop it, not the small files

    full = train(tmp_path, file_size_limit=weights_size // 2)
    assert full.returncode == 1, full.stderr[-3000:]
    lines = [line for line in full.stderr.splitlines()
             if line.strip() and not any(noise in line for noise in TENSORFLOW_NOISE)]
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert lines[0].startswith("crvae train: failed: disk full writing run/backup/latest.weights.h5")
    assert "rerun the same command to resume" in lines[0]
    assert snapshot(backup) == before  # epoch 1's checkpoint, byte for byte
    leftovers = [name for _, _, names in os.walk(tmp_path / "run") for name in names
                 if name.startswith(".tmp-")]
    assert leftovers == []
    assert not (tmp_path / "run" / "model.keras").exists()

    # With room again, the same command (no time budget now) resumes from that checkpoint.
    resumed = train(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from epoch 1" in resumed.stdout and "Done." in resumed.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["epochs_this_run"] == 1


def test_crvae_train_light_state_resumes_a_run_whose_backup_is_gone(tmp_path):
    """`--light_state_dtype=float16`: the stopped run writes resume_weights.npz + resume.json;
    a machine with only those (no backup/) resumes at the stopped epoch with the same command,
    and the trained run deletes them."""
    import shutil

    write_mnist_npz(tmp_path / "train.npz", 64)
    write_mnist_npz(tmp_path / "eval.npz", 16, key="x")
    stopped = train(tmp_path, "--stop_after_minutes=0.0001", "--light_state_dtype=float16")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    run = tmp_path / "run"
    light = json.loads((run / "resume.json").read_text())
    assert (light["epochs_done"], light["weights_dtype"]) == (1, "float16")
    assert light["optimizer_steps"] == {"optimizer": 2}  # 64 images at batch 32
    shutil.rmtree(run / "backup")  # another machine: only what a commit carries
    resumed = train(tmp_path, "--light_state_dtype=float16")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from epoch 1 (light state" in resumed.stdout and "Done." in resumed.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["epochs_this_run"] == 1
    assert not (run / "resume.json").exists() and not (run / "resume_weights.npz").exists()
