"""The `crvae` command's entry: parse the flags, check them, dispatch to the command's module.

    crvae train                                   # quick start on the embedded MNIST subset
    crvae train --preset=mnist_crvae --data=../shared/data/mnist.npz:x_train --epochs=200
    crvae train --preset=celeba_crvae_gan --data=faces.npz --epochs=2 --set base_channels=8
    crvae train --preset=mnist_two_stage --epochs=20 --stage2_epochs=40   # both stages
    crvae train --strategy=mirrored               # all local GPUs (TF_CONFIG: --strategy=multi_worker)
    crvae evaluate --model=crvae_run/model.keras --data=embedded:test --num_samples=1000
    crvae sample --model=crvae_run/model.keras --num_images=64 --output=samples.png
    crvae presets
    crvae export --model=crvae_run/model.keras --output=serving/mnist_crvae --version=1
    crvae complete --model=celeba_vae_gan_run/model.keras --images=faces.npz --mask=centre \
        --output=completions.png

One rule for every command: a mistake in what the user typed (a flag, a value, a path, a file that is
not what it should be) ends the command with exit status 2 and one line,
`crvae COMMAND: error: --flag=value: what is expected`, before any work starts. Flags, data files and
output paths are checked before TensorFlow is imported, so such errors come back in a fraction of a
second. A Python traceback appears only with `--verbose` or for a bug in the library. Ctrl-C ends
with exit status 130 and one line; SIGTERM (`kill PID`, a scheduler's preemption) with 143 and one
line, except while `crvae train` runs the epochs of a resumable job, where it stops the run at the
epoch's end and exits 0 (`keras_crvae.jobs.longrun.stop_on_sigterm`). Either way the output folder
is left for the same command to resume (`keras_crvae.jobs.base`).

Each command is a module of this package with `check()` (before TensorFlow; returns what `run`
needs) and `run(checked)` (returns the exit status).
"""

import errno
import importlib
import logging
import signal
import sys
import threading

from absl import flags as absl_flags

from keras_crvae.cli.flags import FLAGS, UsageError, command_help, parse
from keras_crvae.jobs import runs

USAGE = (
    "usage: crvae {train,evaluate,sample,presets,export,complete,fid-weights} [--flags]\n"
    "  train     train a preset and write model.keras, samples.png, reconstructions.png,\n"
    "            metrics.json, history.csv into --output_dir\n"
    "  evaluate  ELBO, importance-sampled NLL and active units of a saved model\n"
    "  sample    write a PNG grid of prior samples of a saved model\n"
    "  presets   list the presets\n"
    "  export    write a TF Serving SavedModel into OUTPUT/VERSION/\n"
    "  complete  fill the masked part of images by optimising z; write a PNG grid\n"
    "  fid-weights  prepare the standard FID Inception weights (no torch needed)\n"
    "Run `crvae COMMAND --help` for a command's flags."
)
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
# "No space left on device", "File too large" (a file-size limit), "Disk quota exceeded".
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)

# One module of this package per command, each with `check()` and `run(checked)`.
COMMAND_NAMES = ("train", "evaluate", "sample", "presets", "export", "complete", "fid-weights")
HELP_ARGUMENTS = ("-h", "--help", "-help", "--helpfull", "--helpshort", "help")


def command_module(command):
    """The module of `command`, imported on first use (the help texts need none of them)."""
    return importlib.import_module(f"keras_crvae.cli.{command.replace('-', '_')}")


def main(argv=None):
    """Runs the `crvae` command with `argv` (default `sys.argv`); returns the exit status.

    The console script enters here through `crvae_cli.main`, which defers the package's
    `__init__.py` first (see `keras_crvae.cli`)."""
    try:
        return _main(list(sys.argv if argv is None else argv))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()  # no "Exception ignored" message when Python flushes at exit
        return 0


def _main(argv):
    """`main` without the broken-pipe handling."""
    args = argv[1:]
    if not args or args[0] in HELP_ARGUMENTS:
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else EXIT_USAGE
    command = args[0]
    if command not in COMMAND_NAMES:
        print(f"crvae: error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    if any(arg in HELP_ARGUMENTS for arg in args[1:]):
        print(command_help(command))
        return 0
    return _run(command, args)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the command as Ctrl-C's KeyboardInterrupt does (a BaseException,
    so that no `except Exception` of the library swallows it), releasing the folder's lock and
    leaving what `runs.kept_or_restored` leaves."""


# The signals that arrived while a command ran (see `_signalled_interruption`).
_signals_received = []


def _terminate(signum, frame):
    _signals_received.append(signum)
    raise Terminated()


def _interrupt(signum, frame):
    _signals_received.append(signum)
    raise KeyboardInterrupt()


def _install_handlers():
    """Installs `_terminate` for SIGTERM and `_interrupt` for SIGINT (in place of Python's default
    handler only; main thread only); returns {signal: handler it replaced}."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _signals_received.clear()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    return {number: signal.SIG_DFL if handler is None else handler
            for number, handler in previous.items()}


def _signalled_interruption():
    """The interruption that an exception escaping a command stands for, or None (then it is
    the exception's own: a bug of the library's, or an error to report as such).

    A signal handler's exception raised inside TensorFlow does not always come back as itself:
    raised while TensorFlow's C++ code calls back into Python it can reach the caller as
    `SystemError: ... bad argument to internal function` (the C code passes the failed call's NULL
    on, and the interruption itself is lost), seen in CI as Ctrl-C during `model.fit`; raised while
    a `tf.function` traces, the tracing's context managers unwind out of order and replace it with
    `AssertionError: Nesting violated for default stack of FuncGraph objects`, seen in CI as Ctrl-C
    in the first step. So once a signal was received during the command, whatever the command then
    raises is that signal's interruption (the user asked it to stop, and it stopped)."""
    if not _signals_received:
        return None
    return Terminated() if _signals_received[-1] == signal.SIGTERM else KeyboardInterrupt()


def _quiet_tensorflow_exit():
    # A step cut short leaves half-built graph objects whose garbage collection at exit makes
    # TensorFlow log a dozen "Object was never used" lines: not the user's business.
    logging.getLogger("tensorflow").setLevel(logging.CRITICAL + 1)


def _run(command, args):
    """Parses, checks and runs one command; returns the exit status (see the module docstring)."""
    verbose = False
    previous_handlers = _install_handlers()
    try:
        try:
            parse(command, args[1:])
            verbose = FLAGS.verbose
            absl_flags.FLAGS.mark_as_parsed()  # absl logging (used by TF) stays quiet about flags
            module = command_module(command)
            checked = module.check()
            return module.run(checked)
        except Exception as error:
            interruption = _signalled_interruption()
            if interruption is None:
                raise
            raise interruption from error
    except UsageError as error:
        print(f"crvae {command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as interruption:
        return _interrupted(command, interruption, verbose)
    except FloatingPointError as error:  # NaN guard: the run diverged (a fact, not a typo)
        if verbose:
            raise
        print(f"crvae {command}: failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, KeyError, FileNotFoundError) as error:
        # The library's own argument checks (data that passed the cheap checks but not the
        # model's), phrased with the Python argument's name.
        if verbose:
            raise
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        first_line = message.splitlines()[0] if message.strip() else type(error).__name__
        print(f"crvae {command}: error: {first_line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if error.errno not in DISK_FULL_ERRNOS or verbose:
            raise
        # Every file is written to a temporary name and renamed when complete (io.atomic_path,
        # callbacks.AtomicBackupAndRestore), so the previous files are intact.
        where = f" writing {error.filename}" if error.filename else ""
        hint = " to resume" if command == "train" else ""
        print(f"crvae {command}: failed: disk full{where} ({error.strerror or error}); nothing "
              f"was left half-written: free some space and rerun the same command{hint}",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        runs.release_locks()  # `crvae train`'s output folder (taken by its checks)
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)


def _interrupted(command, interruption, verbose):
    """Ctrl-C's or SIGTERM's one line; returns the exit status (130 or 143)."""
    if not verbose:
        _quiet_tensorflow_exit()
    hint = "; rerun the same command to resume" if command == "train" else ""
    if isinstance(interruption, Terminated):
        print(f"\ncrvae {command}: terminated (SIGTERM){hint}", file=sys.stderr)
        return EXIT_TERMINATED
    print(f"\ncrvae {command}: interrupted{hint}", file=sys.stderr)
    return EXIT_INTERRUPTED
