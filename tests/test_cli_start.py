"""How the `crvae` command starts: its console script, its fast start (no TensorFlow before the
checks) and the package it leaves behind; and that `import keras_crvae` registers the library's
Keras classes whatever the program is called."""

import configparser
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def python(code, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_console_script_is_the_fast_entry_point():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"].split()
    assert scripts == ["crvae", "=", "crvae_cli:main"]
    assert "crvae_cli" in config["options"]["py_modules"].split()


def test_help_and_usage_errors_come_before_tensorflow(tmp_path):
    """`--help`, a mistyped flag, a missing file: answered with the library's TensorFlow-free
    modules only, and `keras_crvae/__init__.py` not yet run."""
    result = python("""
        import sys
        import crvae_cli

        statuses = [crvae_cli.main(["crvae", *args]) for args in (
            ["--help"], ["train", "--help"], ["train", "--epochs=0"], ["train", "--bogus=1"],
            ["evaluate", "--model=missing.keras"], ["sample"], ["complete", "--model=x.keras"],
            ["export", "--model=m.keras"], ["nonsense"])]
        print("STATUSES", statuses)
        print("HEAVY", sorted(m for m in ("tensorflow", "keras", "keras_crvae.models",
                                          "keras_crvae.training") if m in sys.modules))
        print("DEFERRED", vars(sys.modules["keras_crvae"]).get("_crvae_cli_deferred_init"))
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                 if line.split(" ", 1)[0] in ("STATUSES", "HEAVY", "DEFERRED"))
    assert lines["STATUSES"] == "[0, 0, 2, 2, 2, 2, 2, 2, 2]"
    assert lines["HEAVY"] == "[]"
    assert lines["DEFERRED"] == "True"
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 7 and "Traceback" not in result.stderr, result.stderr
    assert "--epochs=0: expected an integer >= 1" in result.stderr


def test_load_library_completes_the_package(tmp_path):
    """Once a command needs TensorFlow, `keras_crvae` is the package `import keras_crvae` gives."""
    result = python("""
        import sys
        import crvae_cli

        crvae_cli._defer_package_init()
        from keras_crvae.cli import runtime
        import keras_crvae

        assert not hasattr(keras_crvae, "from_preset")
        runtime.load_library(verbose=False)
        assert keras_crvae.__version__ and callable(keras_crvae.from_preset)
        assert not hasattr(keras_crvae, runtime.DEFERRED_INIT)
        import keras
        assert keras.saving.get_registered_object("keras_crvae>VAE") is keras_crvae.models.VAE
        print("OK")
        """, cwd=tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


def test_import_registers_the_classes_whatever_the_program_name(tmp_path):
    """No import-time behaviour depends on `sys.argv`: a program called `crvae` that imports
    `keras_crvae` loads a saved model of the library."""
    import keras_crvae

    model = keras_crvae.from_preset("mnist_crvae_quickstart", base_channels=2, latent_channels=8)
    model.save(tmp_path / "model.keras")
    result = python("""
        import sys
        sys.argv[0] = "crvae"
        import keras_crvae
        import keras

        model = keras.saving.load_model("model.keras")
        print(type(model).__name__)
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == type(model).__name__


def test_fid_weights_reads_the_archive_before_tensorflow(tmp_path):
    """`crvae fid-weights` refuses an archive whose pickle asks for a global that runs code, and
    one that is not the FID Inception's, with TensorFlow not loaded and nothing executed."""
    result = python("""
        import os
        import pickle
        import sys
        import zipfile

        import crvae_cli

        class Evil:
            def __reduce__(self):
                return os.system, ("touch ran",)

        with zipfile.ZipFile("evil.pt", "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
        with zipfile.ZipFile("other.pt", "w") as archive:  # a plain dict: no Inception tensors
            archive.writestr("archive/data.pkl", pickle.dumps({"weight": 1.0}, protocol=2))
        statuses = [crvae_cli.main(["crvae", "fid-weights", f"--archive={name}",
                                    "--output=w.weights.h5"]) for name in ("evil.pt", "other.pt")]
        print("STATUSES", statuses)
        print("HEAVY", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
        print("RAN", os.path.exists("ran"), os.path.exists("w.weights.h5"))
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                 if line.split(" ", 1)[0] in ("STATUSES", "HEAVY", "RAN"))
    assert lines == {"STATUSES": "[2, 2]", "HEAVY": "[]", "RAN": "False False"}, result.stdout
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2 and "Traceback" not in result.stderr, result.stderr
    assert errors[0].startswith("crvae fid-weights: error: --archive=evil.pt: ")
    assert "os.system" in errors[0] or "posix.system" in errors[0], errors[0]
    assert errors[1].startswith("crvae fid-weights: error: --archive=other.pt: "), errors[1]


def test_an_interruption_that_tensorflow_turned_into_another_error_exits_as_the_interruption(
        tmp_path):
    """Ctrl-C inside TensorFlow can come back as another exception: `SystemError: bad argument to
    internal function` (its C++ code lost the handler's exception; seen in CI during `model.fit`)
    or `AssertionError: Nesting violated ...` (a `tf.function`'s tracing unwound out of order; seen
    in CI during the first step). After a SIGINT or SIGTERM any of them is that interruption
    (130 / 143, one line, not the ValueError's usage error); without one a SystemError or an
    AssertionError is a bug, raised with its traceback, and a ValueError is still a usage error.
    The stand-in command calls the handler the CLI installed, then fails as TensorFlow does.
    The child starts with Ctrl-C at Python's default, as in a terminal: a process started in the
    background inherits SIGINT ignored, and then the CLI rightly leaves SIGINT alone."""
    result = python("""
        import contextlib
        import importlib
        import signal
        import types
        import crvae_cli

        signal.signal(signal.SIGINT, signal.default_int_handler)
        crvae_cli._defer_package_init()
        main = importlib.import_module("keras_crvae.cli.main")

        @contextlib.contextmanager
        def tracing():
            try:
                yield
            finally:  # what TensorFlow's FuncGraph stack does when a step is cut short
                raise AssertionError("Nesting violated for default stack of FuncGraph objects")

        def lost(signal_number):
            try:
                signal.getsignal(signal_number)(signal_number, None)
            except BaseException:
                pass  # what TensorFlow's C++ code does with the handler's exception
            raise SystemError("Objects/listobject.c:338: bad argument to internal function")

        def traced(signal_number):
            with tracing():
                signal.getsignal(signal_number)(signal_number, None)

        def after_signal(signal_number):
            with contextlib.suppress(BaseException):
                signal.getsignal(signal_number)(signal_number, None)
            raise ValueError("a check that failed because the step was cut short")

        def command(failure, signal_number):
            return types.SimpleNamespace(
                check=lambda: None, run=lambda checked: failure(signal_number))

        for failure in (lost, traced, after_signal):
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                main.command_module = lambda name, f=failure, n=signal_number: command(f, n)
                print("STATUS", failure.__name__, main.main(["crvae", "presets"]), flush=True)
                assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        for error in (SystemError, AssertionError):
            def unsignalled(signal_number, error=error):
                raise error("a bug")
            main.command_module = lambda name, f=unsignalled: command(f, None)
            try:
                main.main(["crvae", "presets"])
            except error:
                print("RAISED", error.__name__, flush=True)
        def bad_value(signal_number):
            raise ValueError("bad value")

        main.command_module = lambda name: command(bad_value, None)
        print("STATUS unsignalled ValueError", main.main(["crvae", "presets"]), flush=True)
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line for line in result.stdout.splitlines() if line[:1].isupper()] == [
        "STATUS lost 130", "STATUS lost 143", "STATUS traced 130", "STATUS traced 143",
        "STATUS after_signal 130", "STATUS after_signal 143",
        "RAISED SystemError", "RAISED AssertionError", "STATUS unsignalled ValueError 2"]
    assert result.stderr.count("crvae presets: interrupted") == 3, result.stderr
    assert result.stderr.count("crvae presets: terminated (SIGTERM)") == 3, result.stderr
    assert "crvae presets: error: bad value" in result.stderr
