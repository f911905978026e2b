"""The `crvae` console script's entry point (setup.cfg: `crvae = crvae_cli:main`).

Why a module outside `keras_crvae`. `import keras_crvae` imports the whole library, TensorFlow
included (seconds), so that every Keras class of the library is registered for
`keras.saving.load_model` the moment the package is imported. The `crvae` command must instead
answer `--help` and report a mistyped flag, a missing data file or an unwritable output path
before TensorFlow loads; for that it needs only the library's TensorFlow-free modules (`presets`,
`runs`, `io`, ...). Python runs a package's `__init__.py` before any of its submodules, so an entry
point inside `keras_crvae` would always start slowly.

So this module, which is not part of the package, puts the `keras_crvae` package object into
`sys.modules` without executing its `__init__.py` (built from the package's import spec, as the
import system would, minus the execution; submodule imports need only its `__path__`), marked with
`keras_crvae.cli.runtime.DEFERRED_INIT`. `keras_crvae.cli.runtime.load_library`, which every
command calls before its first TensorFlow import, then runs the package's `__init__.py` on that
same object, so that from there on the process holds exactly the package a user gets from
`import keras_crvae`.

The library has no start-up mode: `keras_crvae/__init__.py` does the same thing whoever imports
it and whatever the program is called. The deferral is confined to this process's start, and
nothing of it is inherited (a subprocess that imports `keras_crvae` gets the whole package).

    crvae train --epochs=0        # the console script: exit status 2 and one line, no TensorFlow
    python -m crvae_cli --help    # the same entry point without the installed script
"""

import importlib.util
import sys

_PACKAGE = "keras_crvae"
_DEFERRED_INIT = "_crvae_cli_deferred_init"  # keras_crvae.cli.runtime.DEFERRED_INIT


def _defer_package_init():
    """Places `keras_crvae` in `sys.modules` with its `__init__.py` not yet run (see above)."""
    if _PACKAGE in sys.modules:  # already imported in this process: nothing to defer
        return
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None:  # not installed: the import that follows says so
        return
    package = importlib.util.module_from_spec(spec)
    setattr(package, _DEFERRED_INIT, True)
    sys.modules[_PACKAGE] = package


def main(argv=None):
    """Runs the `crvae` command with `argv` (default `sys.argv`); returns the exit status."""
    _defer_package_init()
    from keras_crvae.cli.main import main as crvae_main

    return crvae_main(argv)


if __name__ == "__main__":
    sys.exit(main())
