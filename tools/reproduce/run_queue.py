"""Runs an ordered list of long, resumable commands within one time budget (docs/design.md
section 10): each entry resumes where it stopped, finished entries are skipped. (Not `queue.py`:
beside the other scripts of this folder that name would shadow the standard library's `queue`.)

    python tools/reproduce/run_queue.py --queue=tools/reproduce/long_studies.txt --minutes=170

The queue file holds one command per line, run from the current folder (the repository root);
blank lines and lines starting with `#` are skipped; leading `NAME=VALUE` words set environment
variables for that command (`KERAS_BACKEND=jax crvae train ...`). Every command is expected to be
built on the long-run engine (`keras_crvae.jobs.longrun`: `crvae train`, the reproduction and study
tools), which stops at an epoch end and resumes when the same command runs again.

How the queue and an entry talk (environment variables read by `longrun.TimeBudget` and
`longrun.report_stop`):

    CRVAE_DEADLINE      the end of the queue's budget (`time.time()`): the entry stops at its first
                        epoch end after it
    CRVAE_STOP_FILE     a file the entry appends a line to when it stopped before its run finished

An entry that exits with status 0 and reported no stop is finished: it is recorded in the state
file (`--state`, default `LOG_DIR/queue_state.json`: per command its status, stretches, seconds,
last exit status) and skipped from then on. A stopped entry is resumed by the next queue run; a
failed one (non-zero exit) is retried by the next queue run, and the queue goes on with the next
entry. The queue stops when its budget is spent (the running entry stops itself at its next epoch
end; one that ignores the deadline gets a SIGTERM `--grace_minutes` after it) or on SIGTERM, which
it forwards to the running entry (a second SIGTERM is forwarded too: the engine then ends at once,
keeping its last epoch's backup).

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


def read_queue(path):
    """The queue file's commands: `[(line, environment overrides, argv)]` in order."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise UsageError(f"--queue={path}: cannot read it ({error.strerror}); expected a text "
                         "file with one command per line") from None
    entries = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
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
        entries.append((line, environment, words))
    return entries


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


class Queue:
    """One run of the queue (see the module docstring)."""

    def __init__(self, arguments):
        self.arguments = arguments
        self.started = time.time()
        self.deadline = self.started + arguments.minutes * 60.0
        self.log_dir = arguments.log_dir
        self.state_path = arguments.state or os.path.join(self.log_dir, "queue_state.json")
        self.stop_file = os.path.join(self.log_dir, f"queue_stops_{os.getpid()}.txt")
        self.terms_received = 0
        self.child = None

    def say(self, message):
        line = f"[queue {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}] {message}"
        print(line, flush=True)
        with open(os.path.join(self.log_dir, "queue.log"), "a") as handle:
            handle.write(line + "\n")

    def on_sigterm(self, signum, frame):
        # Only flags and a forward here; the loop says what happened.
        self.terms_received += 1
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def stopped(self, where):
        """True (and says why) once SIGTERM came or the budget is spent: no further entries."""
        if self.terms_received:
            self.say("SIGTERM received: no further entries")
        elif time.time() >= self.deadline:
            self.say(f"budget spent {where}")
        return bool(self.terms_received) or time.time() >= self.deadline

    def run(self):
        entries = read_queue(self.arguments.queue)
        os.makedirs(self.log_dir, exist_ok=True)
        state = load_state(self.state_path)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        failed = False
        self.say(f"{len(entries)} entries in {self.arguments.queue}; budget "
                 f"{self.arguments.minutes:g} min (until "
                 f"{time.strftime('%H:%M:%S UTC', time.gmtime(self.deadline))}), nice "
                 f"+{self.arguments.nice}")
        for index, (line, environment, argv) in enumerate(entries, 1):
            record = state.get(line, {})
            if record.get("status") == FINISHED:
                self.say(f"#{index} finished already, skipped: {line}")
                continue
            if self.stopped(f"before #{index}: {line}"):
                break
            status, returncode, seconds = self.run_entry(index, line, environment, argv)
            record.update({"status": status, "returncode": returncode,
                           "stretches": record.get("stretches", 0) + 1,
                           "seconds": round(record.get("seconds", 0.0) + seconds, 1),
                           "last": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            state[line] = record
            save_state(state, self.state_path)
            self.say(f"#{index} {status} (exit status {returncode}, {seconds:.1f} s): {line}")
            failed = failed or status == FAILED
            if self.stopped(f"after #{index}"):
                break
        if os.path.exists(self.stop_file):
            os.remove(self.stop_file)
        remaining = [line for line, _, _ in entries if state.get(line, {}).get("status") != FINISHED]
        self.say(f"done for now: {len(entries) - len(remaining)} of {len(entries)} entries "
                 f"finished" + (f"; next: {remaining[0]}" if remaining else ""))
        return 1 if failed else 0

    def run_entry(self, index, line, environment, argv):
        """Runs one entry to its end; returns `(status, exit status, seconds)`."""
        open(self.stop_file, "w").close()
        env = dict(os.environ, **environment)
        env[DEADLINE_ENV] = repr(self.deadline)
        env[STOP_FILE_ENV] = os.path.abspath(self.stop_file)
        log_path = os.path.join(self.log_dir, log_name(index, argv))
        niceness = self.arguments.nice
        self.say(f"#{index} starts ({log_path}): {line}")
        started = time.time()
        with open(log_path, "a") as log:
            log.write(f"\n=== queue stretch {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
                      f", budget until {time.strftime('%H:%M:%S UTC', time.gmtime(self.deadline))}"
                      f": {line}\n")
            log.flush()
            try:
                self.child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                              preexec_fn=lambda: os.nice(niceness))
            except OSError as error:
                log.write(f"cannot start: {error}\n")
                return FAILED, None, 0.0
            warned = False
            while self.child.poll() is None:
                time.sleep(POLL_SECONDS)
                overdue = time.time() - self.deadline - self.arguments.grace_minutes * 60.0
                if overdue >= 0 and not warned:  # an entry that does not read the deadline
                    warned = True
                    self.say(f"#{index} still running {self.arguments.grace_minutes:g} min after "
                             "the budget: SIGTERM")
                    self.child.send_signal(signal.SIGTERM)
            returncode = self.child.returncode
            self.child = None
        with open(self.stop_file) as handle:
            stops = handle.read().strip()
        if stops:
            self.say(f"#{index} reported: {stops.splitlines()[-1]}")
        if returncode == 0:
            status = STOPPED if stops else FINISHED
        else:  # killed by our SIGTERM (no engine) counts as stopped: it is retried
            status = STOPPED if (stops or self.terms_received or warned) else FAILED
        return status, returncode, time.time() - started


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
    return arguments


def main(argv=None):
    try:
        return Queue(parse(sys.argv[1:] if argv is None else argv)).run()
    except UsageError as error:
        print(f"run_queue.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
