"""The jobs package: one registry decides which job trains a preset (`jobs.job_for`), and the long-run
engine (`jobs.longrun`): a time budget or SIGTERM stops at an epoch end and the run resumes to the
same final epoch count; the float16 light state keeps what float16 can hold."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import data, jobs, presets
from keras_crvae.jobs import longrun
from keras_crvae.presets.likelihood import LikelihoodPreset

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                                os.environ.get("PYTHONPATH")])))
# The console script's entry point (setup.cfg: crvae = crvae_cli:main) of this checkout.
COMMAND = [sys.executable, "-m", "crvae_cli"]
TINY = ("--set", "base_channels=2", "--set", "latent_channels=8")


@pytest.mark.parametrize("name", keras_crvae.list_presets())
def test_every_preset_has_one_job_and_it_matches_its_family(name):
    job = jobs.job_for(name)
    assert jobs.JOBS[job.name] is job and callable(job.train_function)
    config = presets.get_preset(name)
    expected = ("two_stage" if isinstance(config, presets.TwoStagePreset) else
                "likelihood" if isinstance(config, LikelihoodPreset) else
                "vq_vae" if config.network["builder"] == "vq_vae" else
                "gan" if presets.is_gan_preset(name) else
                "disentangling" if config.network["builder"] == "sprites" else "vae")
    assert job.name == expected
    assert job.resumable == (job.name in ("vae", "gan", "likelihood", "vq_vae"))


def test_job_for_an_unknown_preset_raises():
    with pytest.raises((KeyError, ValueError)):
        jobs.job_for("no_such_preset")


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_float16_light_state_round_trips_within_float16_precision(tmp_path):
    model = _tiny_model()
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    weights[2][0, 0] = 1e6  # beyond float16: this array must stay float32
    model.set_weights(weights)
    longrun.save_light_state(model, tmp_path, epochs_done=3, steps_per_epoch=7, dtype="float16")
    info = json.loads((tmp_path / longrun.RESUME_INFO).read_text())
    assert info == {"epochs_done": 3, "steps_per_epoch": 7, "weights_dtype": "float16"}
    with np.load(tmp_path / longrun.RESUME_WEIGHTS) as stored:
        dtypes = [stored[f"arr_{i}"].dtype for i in range(len(stored.files))]
    assert dtypes == [np.float16, np.float16, np.float32, np.float16]
    other = _tiny_model()
    longrun.load_weights_npz(other, tmp_path / longrun.RESUME_WEIGHTS)
    for loaded, original in zip(other.get_weights(), weights):
        assert loaded.dtype == np.float32
        np.testing.assert_allclose(loaded, original, rtol=2 ** -10, atol=2 ** -24)
    assert other.get_weights()[2][0, 0] == 1e6
    assert longrun.resume_epoch(tmp_path) == (3, "light")


@pytest.mark.parametrize("names", [None, ("prior_weights.npz", "prior.json")])
def test_resume_light_state_loads_weights_only_without_a_backup(tmp_path, names):
    trained = _tiny_model()
    x = np.ones((8, 3), "float32")
    trained.fit(x, np.zeros((8, 2), "float32"), batch_size=4, epochs=1, verbose=0)  # 2 steps
    weights_name, info_name = names or (longrun.RESUME_WEIGHTS, longrun.RESUME_INFO)
    assert longrun.resume_light_state(_tiny_model(), tmp_path, False, names=names) == (None, {})
    longrun.save_job_light_state(trained, tmp_path, 5, "float32", {"optimizer": 10}, names=names)
    written = json.loads((tmp_path / info_name).read_text())
    assert written["optimizer_steps"] == {"optimizer": 12}
    assert written["optimizer_offsets"] == {"optimizer": 10}

    # This machine's backup restores weights and moments: only the offsets then in force.
    untouched = _tiny_model()
    before = [w.copy() for w in untouched.get_weights()]
    assert longrun.resume_light_state(untouched, tmp_path, True, names=names) == (
        5, {"optimizer": 10})
    for after, original in zip(untouched.get_weights(), before):
        np.testing.assert_array_equal(after, original)

    # No backup: the light state's weights, counted from its steps, which are now in force.
    resumed = _tiny_model()
    assert longrun.resume_light_state(resumed, tmp_path, False, names=names) == (
        5, {"optimizer": 12})
    for after, original in zip(resumed.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(after, original)
    assert json.loads((tmp_path / info_name).read_text())["optimizer_offsets"] == {
        "optimizer": 12}
    assert (tmp_path / weights_name).is_file()


def test_float16_keeps_non_finite_and_non_floating_arrays():
    for array in (np.array([1.0, np.inf], "float32"), np.array([np.nan], "float32"),
                  np.array([70000.0], "float32")):
        assert longrun.float16_if_representable(array).dtype == np.float32
    assert longrun.float16_if_representable(np.arange(3)).dtype == np.arange(3).dtype
    assert longrun.float16_if_representable(np.ones(2, "float32")).dtype == np.float16
    with pytest.raises(ValueError, match="dtype"):
        longrun.save_weights_npz(_tiny_model(), "x.npz", dtype="bfloat16")


class _SignalAfterFirstBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_fit_at_the_end_of_the_current_epoch_and_restores_the_handler():
    model = _tiny_model()
    x, y = np.ones((32, 3), "float32"), np.zeros((32, 2), "float32")
    budget = longrun.TimeBudget(None)
    before = signal.getsignal(signal.SIGTERM)
    with longrun.stop_on_sigterm(budget):
        history = model.fit(x, y, batch_size=8, epochs=50, verbose=0,
                            callbacks=[_SignalAfterFirstBatch(), budget])
    assert budget.reached and budget.reason == "SIGTERM"
    assert budget.epochs_done == 1 and len(history.epoch) == 1  # the whole first epoch ran
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_time_budget_never_stops_the_last_epoch_and_step_budgets_count_steps():
    model = _tiny_model()
    x, y = np.ones((32, 3), "float32"), np.zeros((32, 2), "float32")
    budget = longrun.TimeBudget(1e-9)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[budget])
    assert not budget.reached and len(history.epoch) == 1
    per_step = longrun.TimeBudget(1e-9, per_step=True)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[per_step])
    assert per_step.reached and per_step.steps == 1


def test_a_job_stopped_by_its_time_budget_resumes_to_the_same_final_epoch_count(tmp_path,
                                                                                  capsys):
    images = data.load_embedded_mnist()
    arguments = dict(train_images=images["x_train"][:128], eval_images=images["x_test"][:16],
                     output_dir=str(tmp_path / "run"), epochs=3, batch_size=64, nll_samples=2,
                     nll_images=4, verbose=0, base_channels=2, latent_channels=8)
    stopped = jobs.train("mnist_crvae_quickstart", stop_after_minutes=1e-6, **arguments)
    assert stopped["stopped"] == "stop_after_minutes=1e-06" and stopped["completed_epochs"] == 1
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())
    assert (record["completed_epochs"], record["finished"]) == (1, False)
    assert (run / "backup").is_dir() and not (run / "metrics.json").exists()
    resumed = jobs.train("mnist_crvae_quickstart", **dict(arguments, verbose=1))
    assert "resuming from epoch 1" in capsys.readouterr().out
    assert resumed["epochs"] == 3 and resumed["epochs_this_run"] == 2
    assert len(resumed["history"]["loss"]) == 3
    assert not (run / "backup").exists() and json.loads((run / "run.json").read_text())["finished"]


def test_jobs_that_cannot_resume_refuse_a_time_budget(tmp_path):
    with pytest.raises(ValueError, match="cannot resume a stopped run"):
        jobs.train("sprites_vae", output_dir=str(tmp_path / "s"), stop_after_minutes=1)
    with pytest.raises(ValueError, match="runs on one device"):
        jobs.train("sprites_vae", output_dir=str(tmp_path / "s"), strategy="mirrored")


def _crvae(*args, cwd):
    return subprocess.run([*COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("value, expected", [
    ("-1", "--stop_after_minutes=-1.0: expected a number of minutes >= 0"),
    ("soon", "--stop_after_minutes=soon: expected a number"),
    ("nan", "--stop_after_minutes=nan: expected a number of minutes >= 0")])
def test_crvae_train_refuses_a_bad_stop_after_minutes_in_one_line(tmp_path, value, expected):
    result = _crvae("train", f"--stop_after_minutes={value}", cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_crvae_train_refuses_a_time_budget_for_a_job_that_cannot_resume(tmp_path):
    result = _crvae("train", "--preset=mnist_two_stage", "--stop_after_minutes=5", cwd=tmp_path)
    assert result.returncode == 2
    assert "--stop_after_minutes=5.0: --preset=mnist_two_stage cannot resume" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flags, expected", [
    (("--preset=mnist_two_stage", "--light_state_dtype=float16"),
     "--light_state_dtype=float16: --preset=mnist_two_stage cannot resume a stopped run; expected "
     "no --light_state_dtype"),
    (("--light_state_dtype=bfloat16",), "--light_state_dtype=bfloat16")])
def test_crvae_train_refuses_a_light_state_it_cannot_write_in_one_line(tmp_path, flags, expected):
    result = _crvae("train", *flags, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


# `crvae train --stop_after_minutes` stopping and the same command resuming, end to end: in
# tests/test_cli_faults.py (its first run stops at a time budget, its last resumes; with
# --light_state_dtype, its light-state test resumes on a "replaced machine").


def test_a_backup_written_after_a_light_state_resume_keeps_the_schedule_at_the_global_step(
        tmp_path):
    """Stretch 1 stops (backup + light state); the machine is replaced (backup gone); stretch 2
    resumes from the light state (a fresh optimizer counting from 0, the schedule offset by the
    steps done) and stops with a backup; stretch 3 resumes from that backup, whose optimizer counter
    is short of the global step by stretch 1's steps. The schedule must still read the global step
    (2026-12-06: the Table 1 rows went back to the pre-halving learning rate here)."""
    import shutil

    from keras_crvae.optimizers import StepOffsetSchedule

    images = data.load_embedded_mnist()["x_train"][:64].astype("float32") / 255.0
    steps_per_epoch = 2  # 64 images, batch 32
    base = keras.optimizers.schedules.PiecewiseConstantDecay([5], [1e-3, 1e-4])  # step > 5: 1e-4

    def stretch(epochs_done_after):
        model = keras_crvae.from_preset("mnist_mlp_vae", seed=0, compile=False)

        def compile_model(start_step):
            schedule = StepOffsetSchedule(base, start_step) if start_step else base
            model.compile(keras.optimizers.Adam(schedule))

        with pytest.raises(longrun.TimeLimitReached):
            longrun.train_resumably(model, tmp_path, images, batch_size=32, epochs=10,
                                    compile_model=compile_model, verbose=0,
                                    stop_after_seconds=1e-9)
        assert longrun.resume_epoch(tmp_path)[0] == epochs_done_after
        return model

    stretch(1)
    shutil.rmtree(tmp_path / longrun.BACKUP_DIR)  # a replaced machine: the light state only
    assert longrun.resume_epoch(tmp_path)[1] == "light"
    stretch(2)
    assert longrun.resume_epoch(tmp_path)[1] == "backup"
    model = stretch(3)
    counter = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert counter == 4  # stretches 2 and 3: the counter restarted at the light-state resume
    # The global step is 3 epochs = 6 steps, past the boundary; the counter alone (4) is not.
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)


def test_the_schedule_callback_refuses_a_counter_ahead_of_the_run():
    model = _tiny_model()
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)),
                  loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)
    callback = keras_crvae.callbacks.ContinueLearningRateSchedule(5, label="row: ")
    callback.set_model(model)
    with pytest.raises(ValueError, match="row: the optimizer has taken 7 steps, more than"):
        callback.on_train_begin()
