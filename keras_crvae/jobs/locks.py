"""One process per run folder: `output_lock` (a `run.lock` naming the holding process, taken over
from a process that is gone), moved out of `keras_crvae.jobs.runs`, which re-exports it."""

import atexit
import contextlib
import datetime
import fcntl
import json
import os
import socket

from keras_crvae.jobs.runs import LOCK_FILE, RunConflictError

class RunLockedError(RunConflictError):
    """Another live process holds the output folder's lock (`output_lock`)."""


def _process_start(pid):
    """The start time of process `pid` in clock ticks since boot (Linux /proc), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid, process_start=None):
    """Whether process `pid` of this host still runs (and, when `process_start` is known, is the
    same process: a reused pid has another start time)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError, TypeError):
        return False
    if process_start is not None:
        now = _process_start(pid)
        if now is not None and now != process_start:
            return False
    return True


class OutputLock:
    """The exclusive lock of an output folder: `run.lock` holds the pid, host, process start and
    start time of its holder, under an `flock` (which the kernel drops when the holder dies).

    Use `output_lock(path)`; it is re-entrant within a process (the CLI takes it before
    TensorFlow loads, the job again when it runs) and released at exit at the latest. On
    release the lock file goes, and so does the folder if the lock created it and it is empty.
    """

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.created = False
        self.count = 0
        self.took_over = None  # the record of a stale lock taken over, if any
        self._descriptor = None

    def _holder_line(self, holder, remote=False):
        what = (f"pid {holder.get('pid')} on host {holder.get('host')}, started "
                f"{holder.get('started')}")
        hint = (f"; if that process is gone, delete {self.path}" if remote else
                "; wait for it to finish, or use another --output_dir")
        return (f"--output_dir={self.output_dir} is in use by another crvae run ({what}; "
                f"{LOCK_FILE}){hint}")

    def acquire(self):
        """Takes the lock (or counts one more hold of it). Raises `RunLockedError` naming the
        holder when another live process has it."""
        import fcntl

        if self.count:
            self.count += 1
            return self
        self.created = not os.path.isdir(self.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        host = socket.gethostname()
        for _ in range(5):
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live holder (the kernel drops a dead one's flock)
                holder = self._read(descriptor)
                os.close(descriptor)
                self._give_up()
                raise RunLockedError(self._holder_line(holder)) from None
            try:  # the file may have been released (unlinked) between open and flock
                same = os.fstat(descriptor).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if not same:
                os.close(descriptor)
                continue
            holder = self._read(descriptor)
            if holder and holder.get("pid") != os.getpid():
                if holder.get("host") != host:
                    os.close(descriptor)
                    self._give_up()
                    raise RunLockedError(self._holder_line(holder, remote=True))
                if _alive(holder.get("pid"), holder.get("process_start")):
                    os.close(descriptor)
                    self._give_up()
                    raise RunLockedError(self._holder_line(holder))
                self.took_over = holder  # stale: its process is gone
            record = {"pid": os.getpid(), "host": host,
                      "process_start": _process_start(os.getpid()),
                      "started": datetime.datetime.now().astimezone().isoformat(
                          timespec="seconds")}
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(descriptor)
            self._descriptor = descriptor
            self.count = 1
            _HELD[os.path.realpath(self.output_dir)] = self
            atexit.register(self.release, everything=True)
            return self
        raise RunLockedError(f"--output_dir={self.output_dir}: could not take {LOCK_FILE} "
                             "(another process keeps replacing it); try again")

    @staticmethod
    def _read(descriptor):
        try:
            return json.loads(os.pread(descriptor, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            return {}

    def _give_up(self):
        """After a refusal: leave no folder behind that only this attempt created."""
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.output_dir)

    def release(self, everything=False):
        """Drops one hold (all of them with `everything`); the last removes the lock file."""
        if not self.count:
            return
        self.count = 0 if everything else self.count - 1
        if self.count:
            return
        _HELD.pop(os.path.realpath(self.output_dir), None)
        with contextlib.suppress(OSError):
            os.remove(self.path)
        with contextlib.suppress(OSError):
            os.close(self._descriptor)
        self._descriptor = None
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.output_dir)  # only when empty

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


_HELD = {}


def output_lock(output_dir):
    """Takes the exclusive lock of `output_dir` for this process (creating the folder) and returns
    the `OutputLock`; a second call in the same process counts one more hold. Use as a context
    manager, or `release()` it.

    Raises:
        RunLockedError: another live process holds it; the message names its pid, host and start.
    """
    held = _HELD.get(os.path.realpath(output_dir))
    if held is not None:
        return held.acquire()
    return OutputLock(output_dir).acquire()


def release_locks():
    """Releases every output-folder lock this process holds (the `crvae` command calls it when
    the command ends, so that a program running several commands holds none in between)."""
    for lock in list(_HELD.values()):
        lock.release(everything=True)
