"""The `crvae` command line: `crvae train | evaluate | sample | presets | export | complete |
fid-weights`.

    main.py      the entry: parse, check, dispatch; exit statuses; `main(argv)`
    flags.py     the flag registry, which flags each command takes, help texts, parsing, and the
                 helpers that phrase a user error (`UsageError`, `flag_text`, `require`, ...)
    checks.py    the checks the commands share (data files, image arrays, output paths,
                 .keras files)
    runtime.py   what commands share after their checks: `load_library` (TensorFlow), the model
    train.py, evaluate.py, sample.py, presets.py, export.py, complete.py, fid_weights.py
                 one module per command: `check()` before TensorFlow, `run(checked)` after it

No logic of the library lives here: a command module checks flags, calls the library and prints.

Fast start. A user error is reported before TensorFlow loads (TensorFlow alone takes seconds to
import), so the modules of this package import at their top only the standard library, absl, NumPy
and the library's TensorFlow-free modules (`presets`, `runs`, `io`, `completion`, `precision`);
a command's `run` calls `runtime.load_library` and imports what needs TensorFlow after it.

The package `keras_crvae` itself imports everything when it is imported (so that its Keras classes
are registered for `keras.saving.load_model`), and a submodule cannot be imported without its
package. The `crvae` console script therefore starts in `crvae_cli` (a top-level module, see its
docstring), which imports this package without running `keras_crvae/__init__.py` until
`runtime.load_library`. `python -m keras_crvae.cli` and `from keras_crvae.cli import main` work as
well, with the whole library imported first (a slower start, the same behaviour).
"""

from keras_crvae.cli.flags import FLAGS, UsageError, command_help, parse
from keras_crvae.cli.main import COMMAND_NAMES, USAGE, command_module, main

_parse = parse  # the name in cli.py before the package (tests/test_cli_readme.py)


def __getattr__(name):
    """`CHECKS` and `COMMANDS`, {command: its `check` / `run` function}, as cli.py had them; built
    on first use, since they import every command's module (PEP 562)."""
    if name not in ("CHECKS", "COMMANDS"):
        raise AttributeError(f"module 'keras_crvae.cli' has no attribute {name!r}")
    function = "check" if name == "CHECKS" else "run"
    value = {command: getattr(command_module(command), function) for command in COMMAND_NAMES}
    globals()[name] = value
    return value


__all__ = ["CHECKS", "COMMANDS", "COMMAND_NAMES", "FLAGS", "USAGE", "UsageError", "command_help",
           "command_module", "main", "parse"]
