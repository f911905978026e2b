"""`tools/reproduce/reproduction.py` loads the library lazily and names the run files as the library does."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import reproduction  # noqa: E402  (a script module, not a package)


def test_file_names_match_the_library_and_longrun_names_resolve():
    from keras_crvae.jobs import longrun, runs

    assert reproduction.FINAL_WEIGHTS == runs.FINAL_WEIGHTS == longrun.FINAL_WEIGHTS
    assert reproduction.load_weights_npz is longrun.load_weights_npz
    assert reproduction.SESSIONS == runs.SESSIONS


def test_importing_it_does_not_load_tensorflow():
    code = ("import sys; sys.path.insert(0, %r); import reproduction; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
            % str(ROOT / "tools" / "reproduce"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]
