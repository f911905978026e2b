"""Bad-input and fault drills of the `crvae` command, run through the real console script.

One rule is checked throughout: a user error exits with status 2 and one line
`crvae COMMAND: error: ...` that names the flag, the value and what is expected, with no traceback;
and nothing is written. Most drills fail in the checks that run before TensorFlow is imported (well
under a second each); the few that need a trained model share one tiny run (width 2, one epoch, 256
images).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
# The subprocess imports the keras_crvae under test (this checkout), not another installed copy.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                 os.environ.get("PYTHONPATH")])))
ENV.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command itself must keep TensorFlow quiet
# The console script's entry point (setup.cfg: crvae = crvae_cli:main) of this checkout: an
# installed `crvae` script may belong to another checkout or an older install. (test_packaging.py
# checks that the console script is this entry point.)
COMMAND = [sys.executable, "-m", "crvae_cli"]
TENSORFLOW_NOISE = ("oneDNN", "cudart", "absl::InitializeLog", "cpu_feature_guard", "Traceback")
TINY = ["--set", "base_channels=2", "--set", "latent_channels=8", "--batch_size=32",
        "--nll_samples=2", "--nll_images=8", "--eval_data=eval.npz"]


def default_sigint():
    """`preexec_fn` of a command that will get Ctrl-C: a shell's background job (CI, `cmd &`)
    starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so the
    interrupt would be lost and the drill skipped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def crvae(*args, cwd, timeout=300):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def assert_usage_error(result, *fragments):
    """Exit status 2, exactly one line on stderr naming every fragment, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("crvae "), lines[0]
    assert ": error: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_mnist_npz(path, count, key="x_train", dtype=np.uint8, high=256):
    rng = np.random.default_rng(0)
    np.savez(path, **{key: rng.integers(0, high, (count, 28, 28)).astype(dtype)})


@pytest.fixture
def workdir(tmp_path):
    write_mnist_npz(tmp_path / "train.npz", 256)
    write_mnist_npz(tmp_path / "eval.npz", 16, key="x")
    return tmp_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run (1 epoch, 256 images of shape (N, 28, 28), width 2)."""
    directory = tmp_path_factory.mktemp("drills")
    write_mnist_npz(directory / "train.npz", 256)
    write_mnist_npz(directory / "eval.npz", 16, key="x")
    result = crvae("train", "--data=train.npz", "--output_dir=run", "--set", "epochs=1", *TINY,
                   cwd=directory)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory, result


# === Flags and --help (no TensorFlow) ===


@pytest.mark.parametrize("args, fragments", [
    (["--set", "base_channels=abc"], ["--set base_channels=abc: expected an integer"]),
    (["--set", "colour=red"], ["--set colour=red: unknown setting", "base_channels"]),
    (["--set", "epochs=2", "--epochs=3"], ["--set epochs=2", "--epochs=3"]),
    (["--epochs=abc"], ["--epochs=abc: expected an integer"]),
    (["--epochs=0"], ["--epochs=0: expected an integer >= 1"]),
    (["--learning_rate=nan"], ["--learning_rate=nan: expected a finite number > 0"]),
    (["--precision=fp8"], ["--precision=fp8: expected float32, bfloat16 or auto"]),
    (["--set", "precision=half"], ["precision", "half"]),
    (["--strategy=gpu"], ["--strategy=gpu: expected one of default, mirrored, multi_worker"]),
    (["--preset=mnist_crvae_fast"], ["--preset=mnist_crvae_fast: expected one of", "mnist_crvae"]),
    (["--npz=faces.npz"], ["--npz is for the 64x64 GAN presets", "--data="]),
    (["--preset=celeba_crvae_gan"], ["--data=PATH.npz", "--image_dir", "--tfds"]),
    (["--preset=celeba_crvae_gan", "--data=faces.npz", "--batch_size=6"], ["--batch_size=6",
                                                                           "multiple of 4"]),
    (["--stage2_epochs=3"], ["--stage2_epochs is for the Two-Stage presets"]),
    (["--bogus=1"], ["unknown flag --bogus"]),
    (["--model=x.keras"], ["--model is not a flag of `crvae train`"]),
    (["epochs=3"], ["unexpected argument 'epochs=3'"]),
    # Shape rules and the batch size, checked before TensorFlow loads (issue 31).
    (["--time_steps=3"], ["--time_steps=3: expected a divisor of", "1, 2, 4, 8"]),
    (["--set", "latent_channels=3"], ["--set latent_channels=3: expected a multiple of "
                                      "time_steps=8"]),
    (["--batch_size=20000"], ["--batch_size=20000: expected at most the 10,000 training images"]),
    (["--data=train.npz", "--set", "batch_size=300"], ["--set batch_size=300", "at most the 256"]),
    # An unprepared TFDS dataset: one line (no absl WARNING before it), nothing downloaded.
    (["--data=tfds:mnist", "--data_dir=."], ["--data=tfds:mnist: not prepared in .",
                                             "tfds build mnist"]),
])
def test_train_flag_errors(workdir, args, fragments):
    started = time.time()
    result = crvae("train", *args, cwd=workdir)
    assert_usage_error(result, *fragments)
    assert time.time() - started < 8  # before TensorFlow loads (3-19 s)
    assert not (workdir / "crvae_run").exists()


def test_help_lists_the_commands_own_flags(tmp_path):
    result = crvae("train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--preset", "--data", "--epochs", "--set", "--fresh", "--output_dir"):
        assert f"  {flag}:" in result.stdout, flag
    assert "--model" not in result.stdout and "--logtostderr" not in result.stdout
    result = crvae("evaluate", "-h", cwd=tmp_path)
    assert result.returncode == 0 and "  --num_samples:" in result.stdout
    assert "  --epochs:" not in result.stdout
    result = crvae(cwd=tmp_path)
    assert result.returncode == 2 and "usage: crvae" in result.stderr
    result = crvae("trian", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'trian'" in result.stderr


# === Data files ===


def test_data_file_errors(workdir):
    (workdir / "notes.npz").write_text("not an archive\n")
    np.savez(workdir / "objects.npz", x_train=np.array([{"a": 1}], dtype=object))
    np.savez(workdir / "colour.npz", x_train=np.zeros((4, 64, 64, 3), np.uint8))
    np.savez(workdir / "int64.npz", x_train=np.full((4, 28, 28), 300, np.int64))
    cases = [
        ("notes.npz", ["--data=notes.npz", "not a NumPy .npz archive"]),
        ("objects.npz", ["--data=objects.npz", "Python objects"]),
        ("missing.npz", ["--data=missing.npz", "no such file"]),
        ("train.npz:x_valid", ["--data=train.npz:x_valid", "no array 'x_valid'", "x_train"]),
        ("colour.npz", ["--data=colour.npz", "(4, 64, 64, 3)", "(N, 28, 28)"]),
        ("int64.npz", ["--data=int64.npz", "int64 values in [300, 300]"]),
    ]
    for spec, fragments in cases:
        line = assert_usage_error(crvae("train", f"--data={spec}", cwd=workdir), *fragments)
        assert "allow_pickle" not in line


# === Output paths, checked before any work ===


def fake_keras_file(path):
    """A zip with a config.json: passes the cheap .keras checks, so the next check is reached."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * 64)
    return path


def test_output_paths_are_checked_first(tmp_path):
    fake_keras_file(tmp_path / "model.keras")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "a_file").write_text("x")
    assert_usage_error(crvae("evaluate", "--model=model.keras", f"--output={tmp_path}/outputs",
                             cwd=tmp_path), f"--output={tmp_path}/outputs: is a folder", ".json")
    assert_usage_error(crvae("sample", "--model=model.keras", "--output=outputs", cwd=tmp_path),
                       "--output=outputs: is a folder", ".png")
    assert_usage_error(crvae("sample", "--model=model.keras", "--output=nowhere/grid.png",
                             cwd=tmp_path), "--output=nowhere/grid.png", "does not exist")
    assert_usage_error(crvae("sample", "--model=model.keras", "--num_images=-5", cwd=tmp_path),
                       "--num_images=-5: expected an integer >= 1")
    assert_usage_error(crvae("train", "--output_dir=a_file", cwd=tmp_path),
                       "--output_dir=a_file: is a file")
    assert_usage_error(crvae("export", "--model=model.keras", cwd=tmp_path), "--output is required")


# === Saved models ===


def test_generator_only_models_are_refused_before_tensorflow(tmp_path):
    """`complete` and `evaluate` read the model's class from config.json first."""
    for model_class in ("GAN", "InfoGAN"):
        path = tmp_path / f"{model_class}.keras"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", json.dumps({"class_name": model_class}))
            archive.writestr("model.weights.h5", b"\0" * 64)
        np.savez(tmp_path / "faces.npz", x=np.zeros((4, 64, 64, 3), np.uint8))
        started = time.time()
        assert_usage_error(crvae("complete", f"--model={path.name}", "--images=faces.npz",
                                 cwd=tmp_path), f"--model={path.name} is a", model_class,
                           "without an encoder")
        assert_usage_error(crvae("evaluate", f"--model={path.name}", cwd=tmp_path),
                           f"--model={path.name} is a")
        assert time.time() - started < 8  # both answered before TensorFlow loads
    assert not (tmp_path / "completions.png").exists()


def test_corrupt_model_files(trained, tmp_path):
    directory, _ = trained
    model = (directory / "run" / "model.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(model[: len(model) // 2])
    middle = len(model) // 2
    (tmp_path / "zeroed.keras").write_bytes(model[:middle] + b"\0" * 4096 + model[middle + 4096:])
    (tmp_path / "text.keras").write_text("hello")
    for name in ("truncated.keras", "zeroed.keras", "text.keras"):
        for command in ("evaluate", "sample"):
            assert_usage_error(crvae(command, f"--model={name}", cwd=tmp_path),
                               f"--model={name}: not a readable .keras file")
    assert_usage_error(crvae("evaluate", "--model=missing.keras", cwd=tmp_path),
                       "--model=missing.keras: no such file")
    assert_usage_error(crvae("evaluate", f"--model={tmp_path}", cwd=tmp_path), "is a folder")


# === A trained run: quiet output, rerun semantics, evaluate ===


def test_train_is_quiet_and_says_what_it_does(trained):
    directory, result = trained
    for noise in TENSORFLOW_NOISE:
        assert noise not in result.stderr, result.stderr[-2000:]
    for said in ("Training mnist_crvae_quickstart on 256 images (train.npz): 1 epoch of 8 steps",
                 "Evaluating on 16",
                 "NLL: 8 images x k=2", "NLL  ", "ELBO ", "Done."):
        assert said in result.stdout, said
    run = directory / "run"
    header, *rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 1 and "val_" not in header
    assert json.loads((run / "run.json").read_text())["finished"] is True


def test_rerun_of_a_finished_run(trained):
    directory, _ = trained
    started = time.time()
    result = crvae("train", "--data=train.npz", "--output_dir=run", "--set", "epochs=1", *TINY,
                   cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "already trained (1 epoch)" in result.stdout and "--fresh" in result.stdout
    assert time.time() - started < 30  # decided before TensorFlow loads: nothing retrained
    # Another preset's run, and the same preset with other settings, are refused by name.
    assert_usage_error(crvae("train", "--preset=mnist_cvae", "--data=train.npz",
                             "--output_dir=run", cwd=directory),
                       "holds a run of preset mnist_crvae_quickstart", "--fresh")
    changed = [item.replace("base_channels=2", "base_channels=4") for item in TINY]
    assert_usage_error(crvae("train", "--data=train.npz", "--output_dir=run", *changed,
                             cwd=directory), "base_channels=2 there, 4 now", "--fresh")


def test_evaluate_announces_its_cost_and_names_signs(trained):
    directory, _ = trained
    result = crvae("evaluate", "--model=run/model.keras", "--data=eval.npz", "--num_samples=3",
                   "--num_images=5", "--output=eval.json", cwd=directory)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "5 images x k=3 importance samples" in result.stdout
    assert "lower is better" in result.stdout and "higher is better" in result.stdout
    assert json.loads((directory / "eval.json").read_text())["nll"]["num_images"] == 5


def test_continue_a_finished_run_with_more_epochs(trained, tmp_path):
    directory, _ = trained
    shutil.copytree(directory / "run", tmp_path / "run")
    for name in ("train.npz", "eval.npz"):
        shutil.copy(directory / name, tmp_path / name)
    result = crvae("train", "--data=train.npz", "--output_dir=run", "--epochs=2", *TINY,
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "continuing from epoch 1 to 2" in result.stdout
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1"]


def test_ctrl_c_then_rerun_resumes(workdir):
    """Ctrl-C: one line, status 130; the same command then resumes from the last finished epoch and
    history.csv keeps one row per epoch."""
    # 16 short epochs (8 steps each, each ending with a backup and a sample grid): the interrupt,
    # sent as soon as the first epoch's row appears, lands mid-run (with 8, a bfloat16 run on a
    # quiet CPU once finished its epochs before the signal arrived).
    args = ["train", "--data=train.npz", "--output_dir=run", "--epochs=16", *TINY]
    process = subprocess.Popen([*COMMAND, *args], cwd=workdir, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    history = workdir / "run" / "history.csv"
    deadline = time.time() + 240
    while not history.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # until the first epoch has ended
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "crvae train: interrupted; rerun the same command to resume")
    assert "Traceback" not in stderr
    result = crvae(*args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout and "epoch" in result.stdout
    epochs = [row.split(",")[0] for row in history.read_text().splitlines()[1:]]
    assert epochs == [str(epoch) for epoch in range(16)]


# === A VAE-GAN model: evaluate measures what it has (reconstruction error) ===


def test_evaluate_a_gan_model(tmp_path):
    import keras_crvae

    model = keras_crvae.from_preset("celeba_vae_gan", base_channels=2, discriminator_channels=4,
                                    minibatch_kernels=2)
    model.save(tmp_path / "gan.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "faces.npz", x=rng.integers(0, 256, (6, 64, 64, 3)).astype(np.uint8))
    np.savez(tmp_path / "two_channels.npz", x=np.zeros((6, 64, 64, 2), np.uint8))
    # Without colour images it says what it needs, before TensorFlow loads.
    assert_usage_error(crvae("evaluate", "--model=gan.keras", cwd=tmp_path),
                       "--model=gan.keras is a VAEGAN", "--data=PATH.npz")
    assert_usage_error(crvae("evaluate", "--model=gan.keras", "--data=two_channels.npz",
                             cwd=tmp_path), "--data=two_channels.npz", "(N, H, W, 3)")
    result = crvae("evaluate", "--model=gan.keras", "--data=faces.npz", "--output=gan.json",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Reconstruction MSE" in result.stdout and "no NLL" in result.stdout
    metrics = json.loads((tmp_path / "gan.json").read_text())
    assert metrics["reconstruction_mse"]["num_images"] == 6
    assert 0 < metrics["reconstruction_mse"]["mean"] < 4  # images in [-1, 1]
