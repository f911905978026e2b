"""Runs an ordered list of long, resumable commands within one time budget (docs/design.md
section 10): each entry resumes where it stopped, finished entries are skipped. (Not `queue.py`:
beside the other scripts of this folder that name would shadow the standard library's `queue`.)

    python tools/reproduce/run_queue.py --queue=tools/reproduce/long_runs.txt --minutes=170

The queue file holds one command per line, run from the current folder (the repository root);
blank lines and lines starting with `#` are skipped; leading `NAME=VALUE` words set environment
variables for that command (`KERAS_BACKEND=jax crvae train ...`). A line `wait` is a barrier: the
entries after it start only once every entry before it has finished (in this queue run or an
earlier one), e.g. after the command that writes the data they read.

`--workers=N` (default 1) runs up to N entries at once, each next one starting as soon as a
worker is free (on a 2-core machine, `--workers=2`: no core idles while one long row scores and
the other has finished). Each entry gets `--threads` TensorFlow threads (`TF_NUM_INTRAOP_THREADS`,
`TF_NUM_INTEROP_THREADS=1`, `OMP_NUM_THREADS`; default: the cores divided among the workers)
unless its line sets them.

`--code_dir=DIR` (e.g. a `git worktree` of a fixed commit) takes the entries' code from DIR while
they run in the current folder, so editing the checkout cannot change an entry that starts
mid-session: a `python SCRIPT.py` whose SCRIPT.py is in DIR runs DIR's, `python -m MODULE` with a
DIR/MODULE.py (or DIR/PACKAGE/MODULE.py) runs that file, and DIR comes first on `PYTHONPATH` (the
library). A `python -m` of anything else gets `-P`, so the current folder does not come first.

Every command is expected to be built on the long-run engine (`keras_crvae.jobs.longrun`: `crvae
train`, the reproduction and study tools), which stops at an epoch end and resumes when the same
command runs again; commands that prepare data (the queue's first lines) simply finish.

How the queue and an entry talk (environment variables read by `longrun.TimeBudget` and
`longrun.report_stop`):

    CRVAE_DEADLINE      the end of the queue's budget (`time.time()`): the entry stops at its first
                        epoch end after it
    CRVAE_STOP_FILE     a file the entry appends a line to when it stopped before its run finished

An entry that exits with status 0 and reported no stop is finished: it is recorded in the state
file (`--state`, default `LOG_DIR/queue_state.json`: per command its status, stretches, seconds,
last exit status) and skipped from then on. A stopped entry is resumed by the next queue run; a
failed one (non-zero exit) is retried by the next queue run, and the queue goes on with the next
entry. The queue starts no further entry once its budget is spent (the running entries stop
themselves at their next epoch end; one that ignores the deadline gets a SIGTERM `--grace_minutes`
after it) or on SIGTERM, which it forwards to the running entries (a second SIGTERM is forwarded
too: the engine then ends at once, keeping its last epoch's backup).

Entries run under `nice` (`--nice`, added to the queue's own niceness), each logging to
`LOG_DIR/NN_<words>.log` (appended, a header per stretch); the queue's own lines go to
`LOG_DIR/queue.log` and stdout. Exit status: 0, or 1 when an entry failed in this run; 2 for a
usage error (one line).
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

DEADLINE_ENV = "CRVAE_DEADLINE"  # the names `keras_crvae.jobs.longrun` reads
STOP_FILE_ENV = "CRVAE_STOP_FILE"
FINISHED, STOPPED, FAILED = "finished", "stopped", "failed"
POLL_SECONDS = 0.2


class UsageError(Exception):
    """A bad flag or queue file: one line, exit status 2."""


BARRIER = "wait"


def read_queue(path):
    """The queue file's commands: `[(line, environment overrides, argv, group)]` in order, where
    `group` counts the `wait` lines above the command."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise UsageError(f"--queue={path}: cannot read it ({error.strerror}); expected a text "
                         "file with one command per line") from None
    entries, group, seen = [], 0, {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.split("#", 1)[0].strip() == BARRIER:  # `wait`, perhaps with a comment
            group += 1
            continue
        if line in seen:  # the state is kept per line: two copies would train one folder twice
            raise UsageError(f"--queue={path} line {number}: the same command as line "
                             f"{seen[line]}; expected each command once")
        seen[line] = number
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"--queue={path} line {number}: {error}; expected a shell-quoted "
                             "command") from None
        environment = {}
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            environment[name] = value
        if not words:
            raise UsageError(f"--queue={path} line {number}: {line!r} sets variables but runs "
                             "nothing; expected a command")
        if words[0] == BARRIER:
            raise UsageError(f"--queue={path} line {number}: {line!r}; expected `{BARRIER}` alone "
                             "on its line (a barrier) or a command")
        entries.append((line, environment, words, group))
    return entries


def from_code_dir(argv, code_dir):
    """`(argv, rewritten)`: `argv` with its Python script taken from `code_dir` (see the module
    docstring), and whether it was. A `python -m MODULE` left as it is gets `-P`, so the current
    folder does not come before `code_dir` on the module path (Python >= 3.11)."""
    argv = list(argv)
    if len(argv) >= 3 and argv[1] == "-m":
        script = os.path.join(code_dir, *argv[2].split(".")) + ".py"
        if os.path.isfile(script):
            return [argv[0], script] + argv[3:], True
        return [argv[0], "-P"] + argv[1:], False
    if len(argv) >= 2 and argv[1].endswith(".py") and not os.path.isabs(argv[1]) and \
            os.path.isfile(os.path.join(code_dir, argv[1])):
        argv[1] = os.path.join(code_dir, argv[1])
        return argv, True
    return argv, False


def log_name(index, argv):
    """`NN_words.log`: the entry's position and its command's words, file-name safe."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", " ".join(os.path.basename(w) for w in argv[:4]))
    return f"{index:02d}_{words.strip('_')[:60]}.log"


def load_state(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def save_state(state, path):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(state, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


class Running:
    """An entry under way: its process, log file, stop file and start time."""

    def __init__(self, index, line, child, log, stop_file):
        self.index, self.line, self.child, self.log, self.stop_file = (index, line, child, log,
                                                                       stop_file)
        self.started = time.time()
        self.warned = False  # SIGTERMed for running past the grace period


class Queue:
    """One run of the queue (see the module docstring)."""

    def __init__(self, arguments):
        self.arguments = arguments
        self.started = time.time()
        self.deadline = self.started + arguments.minutes * 60.0
        self.log_dir = arguments.log_dir
        self.state_path = arguments.state or os.path.join(self.log_dir, "queue_state.json")
        self.terms_received = 0
        self.running = {}  # entry index -> Running
        self.stop_said = False

    def say(self, message):
        line = f"[queue {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}] {message}"
        print(line, flush=True)
        with open(os.path.join(self.log_dir, "queue.log"), "a") as handle:
            handle.write(line + "\n")

    def on_sigterm(self, signum, frame):
        # Only flags and a forward here; the loop says what happened.
        self.terms_received += 1
        for entry in list(self.running.values()):
            if entry.child.poll() is None:
                entry.child.send_signal(signal.SIGTERM)

    def stopped(self, where):
        """True (and says why, once) after SIGTERM or once the budget is spent: no further
        entries start."""
        done = bool(self.terms_received) or time.time() >= self.deadline
        if done and not self.stop_said:
            self.stop_said = True
            self.say("SIGTERM received: no further entries" if self.terms_received
                     else f"budget spent {where}")
        return done

    def run(self):
        entries = read_queue(self.arguments.queue)
        os.makedirs(self.log_dir, exist_ok=True)
        state = self.state = load_state(self.state_path)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        failed = False
        self.say(f"{len(entries)} entries in {self.arguments.queue}; budget "
                 f"{self.arguments.minutes:g} min (until "
                 f"{time.strftime('%H:%M:%S UTC', time.gmtime(self.deadline))}), nice "
                 f"+{self.arguments.nice}, {self.arguments.workers} worker(s) of "
                 f"{self.arguments.threads} thread(s)")

        def finished(line):
            return state.get(line, {}).get("status") == FINISHED

        for index, (line, _, _, _) in enumerate(entries, 1):
            if finished(line):
                self.say(f"#{index} finished already, skipped: {line}")
        try:
            failed = self.run_entries(entries, finished)
        finally:  # the queue itself failed (e.g. a full disk): its entries stop and are recorded
            if self.running:
                self.say(f"the queue is ending: SIGTERM to {len(self.running)} running entries")
                for entry in list(self.running.values()):
                    if entry.child.poll() is None:
                        entry.child.send_signal(signal.SIGTERM)
                for entry in list(self.running.values()):
                    entry.child.wait()
                    del self.running[entry.index]
                    self.record(entry.index, entry.line, *self.end_entry(entry))
        remaining = [line for line, _, _, _ in entries if not finished(line)]
        self.say(f"done for now: {len(entries) - len(remaining)} of {len(entries)} entries "
                 f"finished" + (f"; next: {remaining[0]}" if remaining else ""))
        return 1 if failed else 0

    def run_entries(self, entries, finished):
        """Starts and ends the entries not `finished` yet, up to `--workers` at once, until the
        budget is spent, a SIGTERM came or none is left that may start; True if one failed."""
        failed = False
        # Each entry runs at most once per queue run (a failed one is retried by the next run).
        waiting = [(index, entry) for index, entry in enumerate(entries, 1)
                   if not finished(entry[0])]
        blocked_said = False
        while True:
            while waiting and len(self.running) < self.arguments.workers:
                index, (line, environment, argv, group) = waiting[0]
                if self.stopped(f"before #{index}: {line}"):
                    break
                earlier = [other for other, _, _, other_group in entries if other_group < group]
                if not all(finished(other) for other in earlier):
                    if not self.running and not blocked_said:  # nothing left that could finish them
                        blocked_said = True
                        self.say(f"#{index} waits for the entries above its `{BARRIER}` line to "
                                 f"finish (a later queue run): {line}")
                    break
                waiting.pop(0)
                if not self.start_entry(index, line, environment, argv):
                    self.record(index, line, FAILED, None, 0.0)
                    failed = True
            if not self.running:
                break
            time.sleep(POLL_SECONDS)
            for entry in list(self.running.values()):
                self.check_grace(entry)
                if entry.child.poll() is None:
                    continue
                del self.running[entry.index]
                status, returncode, seconds = self.end_entry(entry)
                self.record(entry.index, entry.line, status, returncode, seconds)
                failed = failed or status == FAILED
                self.stopped(f"after #{entry.index}")
        return failed

    def record(self, index, line, status, returncode, seconds):
        """Writes an entry's stretch into the state file and says how it ended."""
        record = self.state.get(line, {})
        record.update({"status": status, "returncode": returncode,
                       "stretches": record.get("stretches", 0) + 1,
                       "seconds": round(record.get("seconds", 0.0) + seconds, 1),
                       "last": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        self.state[line] = record
        save_state(self.state, self.state_path)
        self.say(f"#{index} {status} (exit status {returncode}, {seconds:.1f} s): {line}")

    def start_entry(self, index, line, environment, argv):
        """Starts entry `index` in the background (a free worker); False when it cannot start."""
        stop_file = os.path.join(self.log_dir, f"queue_stops_{os.getpid()}_{index}.txt")
        open(stop_file, "w").close()
        log_path = os.path.join(self.log_dir, log_name(index, argv))
        env = dict(os.environ)
        threads = str(self.arguments.threads)
        env.update({"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
                    "OMP_NUM_THREADS": threads})
        code_dir = self.arguments.code_dir
        if code_dir:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_dir, env.get("PYTHONPATH")]))
            argv, rewritten = from_code_dir(argv, code_dir)
            if not rewritten:
                self.say(f"#{index}: no script of --code_dir in this command; its code is the "
                         "current folder's where Python looks there first")
        env.update(environment)  # the line's own settings win
        env[DEADLINE_ENV] = repr(self.deadline)
        env[STOP_FILE_ENV] = os.path.abspath(stop_file)
        niceness = self.arguments.nice
        self.say(f"#{index} starts ({log_path}): {line}")
        log = open(log_path, "a")
        log.write(f"\n=== queue stretch {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
                  f", budget until {time.strftime('%H:%M:%S UTC', time.gmtime(self.deadline))}"
                  f", {env['TF_NUM_INTRAOP_THREADS']} thread(s): {line}\n")
        log.flush()
        try:
            child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=lambda: os.nice(niceness))
        except OSError as error:
            log.write(f"cannot start: {error}\n")
            log.close()
            os.remove(stop_file)
            return False
        self.running[index] = Running(index, line, child, log, stop_file)
        for _ in range(self.terms_received):  # a SIGTERM that came while it was starting
            child.send_signal(signal.SIGTERM)
        return True

    def check_grace(self, entry):
        """SIGTERMs an entry still running `--grace_minutes` after the budget (one that does not
        read the deadline)."""
        overdue = time.time() - self.deadline - self.arguments.grace_minutes * 60.0
        if overdue >= 0 and not entry.warned and entry.child.poll() is None:
            entry.warned = True
            self.say(f"#{entry.index} still running {self.arguments.grace_minutes:g} min after "
                     "the budget: SIGTERM")
            entry.child.send_signal(signal.SIGTERM)

    def end_entry(self, entry):
        """`(status, exit status, seconds)` of an entry that has exited."""
        entry.log.close()
        returncode = entry.child.returncode
        with open(entry.stop_file) as handle:
            stops = handle.read().strip()
        os.remove(entry.stop_file)
        if stops:
            self.say(f"#{entry.index} reported: {stops.splitlines()[-1]}")
        if returncode == 0:
            status = STOPPED if stops else FINISHED
        else:  # killed by our SIGTERM (no engine) counts as stopped: it is retried
            status = STOPPED if (stops or self.terms_received or entry.warned) else FAILED
        return status, returncode, time.time() - entry.started


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", required=True, help="text file, one command per line")
    parser.add_argument("--minutes", type=float, required=True,
                        help="overall budget; entries stop at their first epoch end after it")
    parser.add_argument("--nice", type=int, default=15, help="niceness added for the entries")
    parser.add_argument("--log_dir", default=os.path.join("runs", "logs"))
    parser.add_argument("--state", default=None,
                        help="state file (default LOG_DIR/queue_state.json)")
    parser.add_argument("--grace_minutes", type=float, default=60.0,
                        help="SIGTERM an entry still running this long after the budget")
    parser.add_argument("--workers", type=int, default=1, help="entries run at once")
    parser.add_argument("--code_dir", default=None,
                        help="checkout the entries' scripts and library come from (default: "
                             "the current folder's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per entry (default: the cores divided among the workers)")
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as error:  # argparse printed its own message (status 2), or --help (0)
        raise SystemExit(error.code) from None
    if not 0 < arguments.minutes < float("inf"):  # also refuses nan
        raise UsageError(f"--minutes={arguments.minutes}: expected a number of minutes > 0")
    if not 0 <= arguments.grace_minutes < float("inf"):
        raise UsageError(f"--grace_minutes={arguments.grace_minutes}: expected a number of "
                         "minutes >= 0")
    if not 0 <= arguments.nice <= 19:
        raise UsageError(f"--nice={arguments.nice}: expected 0 to 19")
    if arguments.code_dir is not None:
        if not os.path.isdir(os.path.join(arguments.code_dir, "keras_crvae")):
            raise UsageError(f"--code_dir={arguments.code_dir}: not a checkout of this "
                             "repository; expected a folder with keras_crvae/ (a git worktree)")
        arguments.code_dir = os.path.abspath(arguments.code_dir)
    cores = os.cpu_count() or 1
    if not 1 <= arguments.workers <= cores:
        raise UsageError(f"--workers={arguments.workers}: expected 1 to {cores} (the cores)")
    if arguments.threads is None:
        arguments.threads = max(1, cores // arguments.workers)
    elif arguments.threads < 1:
        raise UsageError(f"--threads={arguments.threads}: expected a number of threads >= 1")
    return arguments


def main(argv=None):
    try:
        return Queue(parse(sys.argv[1:] if argv is None else argv)).run()
    except UsageError as error:
        print(f"run_queue.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
