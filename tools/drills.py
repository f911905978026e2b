"""The reliability drills of issue 31, through the `crvae` console script: every scenario of the
issue plus the earlier one-line-error drills, each with its exit status, wall and CPU seconds,
peak resident memory, what its folder holds afterwards, and pass/fail from comparing the folder
before and after (nothing lost). Writes a markdown table and JSON.

    PYTHONPATH=. nice -n 15 python tools/drills.py --output_dir=drills_out
    python tools/drills.py --quick     # only the drills answered before TensorFlow, on no run
    python tools/drills.py --only=sigterm,lock     # the scenarios whose name holds a word

Each scenario works in its own folder in the `work` folder inside `--output_dir`; the ones that need a finished
run start from a copy of one tiny run (width 2, 256 random MNIST-shaped images, 1 epoch), made by
the first scenario. SIGTERM lands in a chosen phase through the test-only variable
`CRVAE_TEST_SIGTERM_AT` (`keras_crvae.io.enter_phase`); kill -9 and Ctrl-C are sent when the run
prints the line that starts the phase. The memory goals of the issue (`sample` of 100,000 images,
`evaluate` on 10,000, both < 2 GB) run on the shipped
`saved_models/mnist_crvae_narrow/model.keras` and `--mnist` (skipped when either is missing).

A row passes when the exit status is the expected one and the folder check holds: either the
folder is byte for byte what it was ("unchanged"), or every file the scenario must keep is kept
and the run's state (run.json, metrics.json) is the expected one.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "crvae_cli"]
TINY = ["--set", "base_channels=2", "--set", "latent_channels=8", "--batch_size=32",
        "--nll_samples=2", "--nll_images=8", "--eval_data=eval.npz"]
TRAIN = ["train", "--data=train.npz", "--output_dir=run", *TINY]
GIGABYTE = 1024 ** 3


# === The folder: snapshots and descriptions ===


def snapshot(folder):
    """{relative path: sha256} of every file under `folder` ({} when it does not exist)."""
    folder = pathlib.Path(folder)
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run_state(folder):
    """run.json's state in a few words ("" without one)."""
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return ""
    state = ("finished" if record.get("finished") else "trained" if record.get("trained")
             else "unfinished")
    return f"{state}, {record.get('completed_epochs')} epoch(s)"


def describe(folder):
    """What `folder` holds: its top-level entries (folders with a slash), run.json's state."""
    if not folder.exists():
        return "(no folder)"
    names = sorted(name + ("/" if (folder / name).is_dir() else "") for name in os.listdir(folder))
    state = run_state(folder)
    return ", ".join(names) + (f" [run.json: {state}]" if state else "") if names else "(empty)"


# === Scenarios ===


@dataclasses.dataclass
class Step:
    """One command of a scenario (a row of the table).

    Attributes:
        title: str, the row's scenario text.
        args: list of str, the `crvae` arguments.
        status: int, the expected exit status (negative: killed by that signal).
        check: callable(before, after, folder, output) -> list of failures (str); before / after
            are snapshots of the scenario's folder, output is stdout + stderr.
        env: dict, extra environment variables.
        send: (signal, text) or None: send `signal` once stdout shows `text` (or, when `text` is
            a path, once that file exists).
        file_size_limit: int or None, RLIMIT_FSIZE of the command (a full disk).
    """

    title: str
    args: list
    status: int
    check: object
    env: dict = dataclasses.field(default_factory=dict)
    send: tuple = None
    file_size_limit: int = None


@dataclasses.dataclass
class Scenario:
    """Steps run in order in one folder (`folder` under the scenario's directory).

    Attributes:
        name: str, a short slug (`--only` matches it).
        item: str, the issue's item ("1".."9", "faults", "earlier").
        steps: list of `Step`.
        setup: callable(directory) or None, prepares the directory (after the data are copied).
        folder: str, the folder compared before and after.
        needs_tensorflow: bool, some step loads TensorFlow (skipped by --quick).
        finished_run: bool, start from a copy of the baseline's finished run.
    """

    name: str
    item: str
    steps: list
    setup: object = None
    folder: str = "run"
    needs_tensorflow: bool = True
    finished_run: bool = False


def one_line_error(*fragments):
    """The CLI rule: one stderr line `crvae ...: error: ...` naming every fragment."""
    def check(before, after, folder, output):
        failures = []
        errors = [line for line in output["stderr"].strip().splitlines() if line.strip()]
        if len(errors) != 1 or ": error: " not in errors[0]:
            failures.append(f"stderr is not one error line: {output['stderr'][-300:]!r}")
        failures += [f"error line lacks {fragment!r}" for fragment in fragments
                     if errors and fragment not in errors[-1]]
        return failures
    return check


def unchanged(before, after, folder, output):
    return [] if before == after else [f"folder changed: {sorted(set(before) ^ set(after))} "
                                       "added/removed, or contents differ"]


def kept(*names):
    """Every file `names` of the folder before is there after, byte for byte."""
    def check(before, after, folder, output):
        return [f"{name} lost or changed" for name in names
                if name in before and after.get(name) != before[name]]
    return check


def state_is(state, *present, absent=()):
    """run.json says `state` ("finished", "trained", "unfinished"), `present` exist, `absent` not."""
    def check(before, after, folder, output):
        failures = [] if run_state(folder).startswith(state) else [
            f"run.json: {run_state(folder) or 'missing'}, expected {state}"]
        failures += [f"{name} missing" for name in present if not (folder / name).exists()]
        failures += [f"{name} present" for name in absent if (folder / name).exists()]
        return failures
    return check


def says(*texts):
    def check(before, after, folder, output):
        return [f"output lacks {text!r}" for text in texts if text not in output["stdout"]]
    return check


def no_temporary_files(before, after, folder, output):
    leftovers = [name for name in after if os.path.basename(name).startswith((".tmp-", ".old-"))]
    return [f"half-written files left: {leftovers}"] if leftovers else []


def all_of(*checks):
    def check(before, after, folder, output):
        return [failure for each in checks for failure in each(before, after, folder, output)]
    return check


def fresh_folder_absent(before, after, folder, output):
    return [] if not folder.exists() else [f"{folder.name}/ was created"]


def peak_below(limit_bytes):
    def check(before, after, folder, output):
        peak = output["peak_bytes"]
        return [] if peak < limit_bytes else [f"peak memory {peak / GIGABYTE:.2f} GB"]
    return check


def write_lock(pid, host=None):
    import socket

    def setup(directory):
        (directory / "run" / "run.lock").write_text(json.dumps(
            {"pid": pid, "host": host or socket.gethostname(), "started": "earlier"}))
    return setup


def dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def write_generator_only_model(directory):
    with zipfile.ZipFile(directory / "gan.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "GAN"}))
        archive.writestr("model.weights.h5", b"\0" * 64)
    np.savez(directory / "faces.npz", x=np.zeros((4, 64, 64, 3), np.uint8))


def write_unsafe_archive(directory):
    import pickle

    class Unsafe:
        def __reduce__(self):
            return os.system, (f"touch {directory / 'ran'}",)

    with zipfile.ZipFile(directory / "evil.pt", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(Unsafe(), protocol=2))


def truncated_model(directory):
    model = (directory / "run" / "model.keras").read_bytes()
    (directory / "truncated.keras").write_bytes(model[: len(model) // 2])


def scenarios(args):
    """The drills, in the order they run (the baseline first: others copy its run)."""
    fresh_errors = [(["--time_steps=3"], ["--time_steps=3", "a divisor of"]),
                    (["--set", "latent_channels=3"], ["--set latent_channels=3"]),
                    (["--batch_size=20000"], ["--batch_size=20000", "at most the 256"])]
    earlier = [(["--epochs=0"], ["--epochs=0: expected an integer >= 1"]),
               (["--set", "colour=red"], ["--set colour=red: unknown setting"]),
               (["--precision=fp8"], ["--precision=fp8"]),
               (["--strategy=gpu"], ["--strategy=gpu"]),
               (["--bogus=1"], ["unknown flag --bogus"]),
               (["--data=missing.npz"], ["--data=missing.npz", "no such file"]),
               (["--data=train.npz:x_valid"], ["no array 'x_valid'"])]
    table = [Scenario("baseline", "-", [Step(
        "a tiny run trains and is scored (the run the other drills copy)", TRAIN + ["--epochs=1"],
        0, state_is("finished", "model.keras", "metrics.json", absent=("run.lock",)))])]
    table += [Scenario(f"fresh-rejected-{index}", "1", [Step(
        f"`--fresh {' '.join(extra)}` on a finished run: rejected, the run kept",
        TRAIN + ["--epochs=1", "--fresh", *extra], 2,
        all_of(one_line_error(*fragments), unchanged))], finished_run=True,
        needs_tensorflow=False) for index, (extra, fragments) in enumerate(fresh_errors)]
    table.append(Scenario("kill9-evaluation", "2", [
        Step("kill -9 during the final NLL", TRAIN + ["--epochs=1", "--nll_samples=5000"],
             -signal.SIGKILL, state_is("trained", "model.keras", absent=("metrics.json",)),
             send=(signal.SIGKILL, "NLL:")),
        Step("... the same command finishes the evaluation (nothing retrained)",
             TRAIN + ["--epochs=1", "--nll_samples=5000"], 0,
             all_of(kept("model.keras"), says("finishing it (nothing is retrained)"),
                    state_is("finished", "metrics.json", absent=("run.lock",))))]))
    table += [
        Scenario("lock-live", "3", [Step(
            "a second process on a folder in use: refused, naming the holder",
            TRAIN + ["--epochs=1"], 2, all_of(one_line_error(f"pid {os.getpid()}", "in use"),
                                              unchanged))],
            setup=write_lock(os.getpid()), finished_run=True, needs_tensorflow=False),
        Scenario("lock-other-host", "3", [Step(
            "a lock of another host: refused, saying which file to delete",
            TRAIN + ["--epochs=1"], 2, all_of(one_line_error("host elsewhere.example",
                                                             "delete run/run.lock"), unchanged))],
            setup=write_lock(1, "elsewhere.example"), finished_run=True, needs_tensorflow=False),
        Scenario("lock-stale", "3", [Step(
            "a stale lock (dead pid) is taken over; the finished run is 'already trained'",
            TRAIN + ["--epochs=1"], 0,
            all_of(says("(no longer running)", "already trained (1 epoch)"),
                   kept("model.keras", "metrics.json", "run.json"),
                   state_is("finished", absent=("run.lock",))))],
            setup=write_lock(dead_pid()), finished_run=True, needs_tensorflow=False),
    ]
    table += [Scenario(f"checked-before-tensorflow-{index}", "5", [Step(
        f"`train {' '.join(extra)}`: one line before TensorFlow, no folder",
        ["train", "--output_dir=run", *extra], 2,
        all_of(one_line_error(*fragments[:1]), fresh_folder_absent))], needs_tensorflow=False)
        for index, (extra, fragments) in enumerate(fresh_errors)]
    table += [
        Scenario("complete-generator-only", "6", [Step(
            "`complete` on a GAN (no encoder): refused from config.json",
            ["complete", "--model=gan.keras", "--images=faces.npz"], 2,
            all_of(one_line_error("--model=gan.keras is a", "without an encoder"),
                   lambda b, a, folder, o: ["completions.png written"]
                   if (folder / "completions.png").exists() else []))],
            setup=write_generator_only_model, folder=".", needs_tensorflow=False),
        Scenario("tfds-unprepared", "6", [Step(
            "`--data=tfds:mnist` not prepared: one line, no absl warning",
            ["train", "--data=tfds:mnist", "--data_dir=.", "--output_dir=run"], 2,
            all_of(one_line_error("--data=tfds:mnist: not prepared"), fresh_folder_absent))],
            needs_tensorflow=False),
        Scenario("fid-weights-unsafe-archive", "9", [Step(
            "`fid-weights` on an archive asking for os.system: refused, nothing run or written",
            ["fid-weights", "--archive=evil.pt", "--output=w.weights.h5"], 2,
            all_of(one_line_error("--archive=evil.pt", "system"),
                   lambda b, a, folder, o: [name for name in ("ran", "w.weights.h5")
                                            if (folder / name).exists()]))],
            setup=write_unsafe_archive, folder=".", needs_tensorflow=False),
    ]
    phase = {"CRVAE_TEST_SIGTERM_AT": None}
    table.append(Scenario("sigterm-phases", "faults", [
        Step("SIGTERM during training (epoch 1 of 2): stops at the epoch end",
             TRAIN + ["--epochs=2"], 0,
             all_of(says("Stopped by SIGTERM after epoch 1 of 2"),
                    state_is("unfinished", "backup", absent=("model.keras", "run.lock"))),
             env=dict(phase, CRVAE_TEST_SIGTERM_AT="training")),
        Step("... rerun, SIGTERM while saving model.keras: saved whole, scoring left",
             TRAIN + ["--epochs=2"], 0,
             all_of(says("resuming from epoch 1", "Stopped by SIGTERM after training"),
                    no_temporary_files,
                    state_is("trained", "model.keras", absent=("metrics.json", "backup"))),
             env=dict(phase, CRVAE_TEST_SIGTERM_AT="saving")),
        Step("... rerun, SIGTERM during the final evaluation: exit 143, folder unchanged",
             TRAIN + ["--epochs=2"], 143,
             all_of(unchanged, says("finishing it (nothing is retrained)")),
             env=dict(phase, CRVAE_TEST_SIGTERM_AT="evaluation")),
        Step("... the same command finishes the run", TRAIN + ["--epochs=2"], 0,
             all_of(kept("model.keras"), state_is("finished", "metrics.json",
                                                  absent=("run.lock",))))]))
    table.append(Scenario("ctrl-c-training", "earlier", [
        Step("Ctrl-C after the first of 16 epochs: exit 130", TRAIN + ["--epochs=16"], 130,
             state_is("unfinished", "backup", absent=("run.lock",)),
             send=(signal.SIGINT, "run/history.csv")),
        Step("... the same command resumes and finishes", TRAIN + ["--epochs=16"], 0,
             all_of(says("resuming"), state_is("finished", "metrics.json")))]))
    table.append(Scenario("fresh-interrupted", "1", [Step(
        "`--fresh` interrupted before its first epoch: the old run comes back",
        TRAIN + ["--epochs=30", "--fresh", "--time_steps=4"], 130, unchanged,
        send=(signal.SIGINT, "run/previous/model.keras"))], finished_run=True))
    table.append(Scenario("disk-full-checkpoint", "faults", [
        Step("a run stopped after epoch 1 (its checkpoint in backup/)",
             TRAIN + ["--epochs=2", "--stop_after_minutes=0.0001"], 0,
             state_is("unfinished", "backup")),
        Step("... rerun on a full disk (RLIMIT_FSIZE 20 kB): one line, exit 1, checkpoint kept",
             TRAIN + ["--epochs=2"], 1,
             all_of(kept("backup/latest.weights.h5"), no_temporary_files,
                    lambda b, a, folder, o: [] if "disk full" in o["stderr"] else
                    ["no 'disk full' line"]), file_size_limit=20_000)]))
    table.append(Scenario("sigterm-export", "faults", [
        Step("export a SavedModel (version 1)",
             ["export", "--model=run/model.keras", "--output=serving", "--version=1"], 0,
             lambda b, a, folder, o: [] if (folder / "serving" / "1").is_dir() else
             ["serving/1 missing"]),
        Step("... SIGTERM while exporting it again (--overwrite): exit 143, version 1 kept whole",
             ["export", "--model=run/model.keras", "--output=serving", "--version=1",
              "--overwrite"], 143, all_of(unchanged, no_temporary_files),
             env={"CRVAE_TEST_SIGTERM_AT": "export"})],
        finished_run=True, folder="."))
    table.append(Scenario("corrupt-model", "earlier", [Step(
        "`evaluate` a truncated .keras: one line", ["evaluate", "--model=truncated.keras"], 2,
        one_line_error("--model=truncated.keras: not a readable .keras file"))],
        setup=truncated_model, finished_run=True, folder="run", needs_tensorflow=False))
    table += [Scenario(f"earlier-flags-{index}", "earlier", [Step(
        f"`train {' '.join(extra)}`: one line, no folder",
        ["train", "--data=train.npz", "--output_dir=run", *extra], 2,
        all_of(one_line_error(*fragments), fresh_folder_absent))], needs_tensorflow=False)
        for index, (extra, fragments) in enumerate(earlier)]
    model, mnist = ROOT / "saved_models" / "mnist_crvae_narrow" / "model.keras", args.mnist
    if model.exists() and mnist and os.path.exists(mnist.split(":")[0]):
        table += [
            Scenario("memory-sample", "4", [Step(
                "`sample --num_images=100000` to an .npz: peak < 2 GB",
                ["sample", f"--model={model}", "--num_images=100000", "--output=samples.npz"],
                0, all_of(peak_below(2 * GIGABYTE), no_temporary_files))], folder="."),
            Scenario("memory-evaluate", "4", [Step(
                "`evaluate` on 10,000 images (k=10): peak < 2 GB",
                ["evaluate", f"--model={model}", f"--data={mnist}", "--num_images=10000",
                 "--num_samples=10", "--output=eval.json"], 0, peak_below(2 * GIGABYTE))],
                folder="."),
        ]
    return table


# === Running ===


def make_data(directory):
    rng = np.random.default_rng(0)
    np.savez(directory / "train.npz", x_train=rng.integers(0, 256, (256, 28, 28)).astype(np.uint8))
    np.savez(directory / "eval.npz", x=rng.integers(0, 256, (16, 28, 28)).astype(np.uint8))


def run_step(step, directory, timeout):
    """Runs one step's command in `directory`; returns its output dict (status, seconds, CPU
    seconds, peak bytes, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                  os.environ.get("PYTHONPATH")])))
    env.pop("CRVAE_TEST_SIGTERM_AT", None)
    env.update({key: value for key, value in step.env.items() if value is not None})
    stdout_path, stderr_path = directory / ".stdout", directory / ".stderr"

    def limit():
        # Ctrl-C must reach the command as at a terminal: a shell's background job starts with
        # SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if step.file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (step.file_size_limit,) * 2)

    started = time.time()
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        process = subprocess.Popen([*COMMAND, *step.args], cwd=directory, env=env, stdout=stdout,
                                   stderr=stderr, preexec_fn=limit)
        if step.send is not None:
            sig, marker = step.send
            while process.poll() is None and time.time() - started < timeout:
                seen = ((directory / marker).exists() if "/" in marker
                        else marker in stdout_path.read_text())
                if seen:
                    process.send_signal(sig)
                    break
                time.sleep(0.05)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                process.kill()
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    output = {"status": process.returncode, "seconds": round(time.time() - started, 1),
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_bytes": usage.ru_maxrss * 1024,  # kB on Linux
              "stdout": stdout_path.read_text(), "stderr": stderr_path.read_text()}
    stdout_path.unlink()
    stderr_path.unlink()
    return output


def run_scenario(scenario, work, baseline, timeout):
    directory = work / scenario.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    make_data(directory)
    if scenario.finished_run:
        shutil.copytree(baseline, directory / "run")
    if scenario.setup is not None:
        scenario.setup(directory)
    folder = directory / scenario.folder
    rows = []
    for step in scenario.steps:
        before = snapshot(folder)
        output = run_step(step, directory, timeout)
        after = snapshot(folder)
        failures = ([] if output["status"] == step.status else
                    [f"exit {output['status']}, expected {step.status}: "
                     f"{output['stderr'].strip()[-300:]}"])
        failures += step.check(before, after, folder, output)
        rows.append({"scenario": scenario.name, "item": scenario.item, "step": step.title,
                     "exit": output["status"], "expected_exit": step.status,
                     "seconds": output["seconds"], "cpu_seconds": output["cpu_seconds"],
                     "peak_gb": round(output["peak_bytes"] / GIGABYTE, 2),
                     "folder_after": describe(folder) if scenario.folder != "." else
                     describe_loose(folder),
                     "passed": not failures, "failures": failures})
        print(f"{'PASS' if not failures else 'FAIL'} {scenario.name}: {step.title} "
              f"(exit {output['status']}, {output['seconds']} s)"
              + ("".join(f"\n    {failure}" for failure in failures)), flush=True)
    return rows


def describe_loose(directory):
    """A scenario folder that is the work directory itself: its entries, the data left out."""
    names = sorted(name + ("/" if (directory / name).is_dir() else "")
                   for name in os.listdir(directory) if name not in ("train.npz", "eval.npz"))
    return ", ".join(names) or "(only the data)"


def markdown(rows, machine):
    lines = [f"Drills (tools/drills.py) on {machine}", "",
             "| item | scenario | exit | s | CPU s | peak GB | folder afterwards | result |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        result = "pass" if row["passed"] else "FAIL: " + "; ".join(row["failures"])
        lines.append(f"| {row['item']} | {row['step']} | {row['exit']} | {row['seconds']} | "
                     f"{row['cpu_seconds']} | {row['peak_gb']} | {row['folder_after']} | "
                     f"{result} |")
    passed = sum(row["passed"] for row in rows)
    lines += ["", f"{passed} of {len(rows)} passed."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="drills_out")
    parser.add_argument("--quick", action="store_true",
                        help="only the drills answered before TensorFlow loads that need no "
                        "trained run")
    parser.add_argument("--only", default="", help="comma-separated words of scenario names")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist.npz")
                        + ":x_test", help="MNIST .npz[:KEY] for the evaluate memory drill")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of the scenarios not run from OUTPUT_DIR/drills.json")
    args = parser.parse_args(argv)
    output_dir = pathlib.Path(args.output_dir).resolve()
    work = output_dir / "work"
    selected = [scenario for scenario in scenarios(args)
                if (not args.quick or not (scenario.needs_tensorflow or scenario.finished_run))
                and (not args.only or any(word in scenario.name for word in args.only.split(",")))]
    baseline = work / "baseline" / "run"
    needs_baseline = any(scenario.finished_run for scenario in selected)
    rows = []
    if needs_baseline and not (baseline / "metrics.json").exists():
        base = next(scenario for scenario in scenarios(args) if scenario.name == "baseline")
        rows += run_scenario(base, work, baseline, args.timeout)
    for scenario in selected:
        if scenario.name == "baseline" and rows:
            continue
        rows += run_scenario(scenario, work, baseline, args.timeout)
    if args.update and (output_dir / "drills.json").exists():
        ran = {row["scenario"] for row in rows}
        earlier = json.loads((output_dir / "drills.json").read_text())["rows"]
        order = [scenario.name for scenario in scenarios(args)]
        rows = sorted([row for row in earlier if row["scenario"] not in ran] + rows,
                      key=lambda row: order.index(row["scenario"]))  # stable: steps keep order
    machine = (f"{platform.node()}: {os.cpu_count()} CPUs, load average "
               f"{', '.join(f'{value:.1f}' for value in os.getloadavg())} at the end, Python "
               f"{platform.python_version()}")
    (output_dir / "drills.json").write_text(json.dumps({"machine": machine, "rows": rows},
                                                       indent=2) + "\n")
    (output_dir / "drills.md").write_text(markdown(rows, machine))
    print(f"{sum(row['passed'] for row in rows)} of {len(rows)} passed; table in "
          f"{output_dir / 'drills.md'}")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
