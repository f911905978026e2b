"""The examples of README.md and of the guide it points to (docs/guide.md), taken from the files
themselves: the quick ones run as written, the long ones
pass every check `crvae` makes before it starts work, and the Python "Use" snippet runs with its
epochs, width, data and k shrunk (each shrink is asserted to apply, so an edited README fails here
instead of silently testing something else)."""

import contextlib
import io
import os
import pathlib
import re
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The front door and the guide it sends readers to: the command lines of both are checked.
DOCUMENTED = README + "\n" + (ROOT / "docs" / "guide.md").read_text()
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])))
CONSOLE = [sys.executable, "-m", "crvae_cli"]


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOCUMENTED, flags=re.S)


def readme_commands():
    """Every `crvae ...` command line of the README's bash blocks (continuations joined, comments
    and leading VAR=value assignments removed)."""
    commands = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            words = shlex.split(line) if line else []
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            if words and words[0] == "crvae":
                commands.append(words[1:])
    return commands


def test_readme_lists_commands():
    commands = [" ".join(words[:1]) for words in readme_commands()]
    for command in ("presets", "train", "evaluate", "sample"):
        assert command in commands, command


def test_quick_readme_commands_run_as_written():
    quick = [words for words in readme_commands() if words == ["presets"] or "--help" in words]
    assert quick
    for words in quick:
        result = subprocess.run([*CONSOLE, *words], cwd=ROOT, env=ENV, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, (words, result.stderr[-2000:])
        if words == ["presets"]:
            # Every preset-like name the docs quote is a preset, or a shipped model's name.
            for name in re.findall(r"`((?:mnist|celeba|sprites)_\w+)`", DOCUMENTED):
                assert name in result.stdout or (ROOT / "saved_models" / name).is_dir(), name


def _fake_keras_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


def test_long_readme_commands_pass_the_checks(tmp_path, monkeypatch):
    """The commands that train or evaluate for hours: flags, data files and output paths are
    accepted (the checks `crvae` runs before it starts any work)."""
    from keras_crvae import cli

    monkeypatch.chdir(ROOT)
    before = sorted(os.listdir(ROOT))
    long = [words for words in readme_commands() if words != ["presets"] and "--help" not in words]
    assert len(long) >= 4
    checked = 0
    for words in long:
        if any("../shared/data" in word for word in words) and not (ROOT.parent / "shared"
                                                                     / "data").is_dir():
            continue  # the shared data is absent from this checkout
        # Models the README trains earlier and output folders go to a temporary folder.
        words = [word.replace("runs/", f"{tmp_path}/runs/").replace("serving/",
                                                                     f"{tmp_path}/serving/")
                 for word in words]
        for word in words:
            if word.startswith("--model="):
                _fake_keras_file(pathlib.Path(word.split("=", 1)[1]))
        command, args = words[0], words[1:]
        if command == "train" and not any(word.startswith("--output_dir") for word in args):
            args = args + [f"--output_dir={tmp_path}/default_run"]
        if command == "sample":
            args = [a.replace("--output=", f"--output={tmp_path}/") for a in args]
        try:
            cli._parse(command, args)
            cli.CHECKS[command]()
        except cli.UsageError as error:
            pytest.fail(f"crvae {' '.join(words)}: {error}")
        checked += 1
    assert checked >= 2
    assert sorted(os.listdir(ROOT)) == before  # the checks write nothing


USE_SHRINKS = [
    ('mnist = data.load_embedded_mnist()',
     'mnist = {key: value[:256] for key, value in data.load_embedded_mnist().items()}'),
    ('from_preset("mnist_crvae", ', 'from_preset("mnist_crvae", base_channels=2, latent_channels=8, '),
    ("epochs=200", "epochs=1"),
    ("num_samples=5000", "num_samples=2"),
]


def test_readme_use_snippet_runs():
    snippet = re.search(r"## Use\n\n```python\n(.*?)```", README, flags=re.S).group(1)
    for old, new in USE_SHRINKS:
        assert old in snippet, f"README 'Use' no longer has {old!r}: update USE_SHRINKS"
        snippet = snippet.replace(old, new)
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(snippet, "README.md:Use", "exec"), namespace)  # noqa: S102
    nll = namespace["nll"]
    assert np.isfinite(nll.mean) and nll.mean > 0 and nll.num_images == 256
    assert str(nll.mean)[:6] in printed.getvalue()
