"""The long-run engine's side of a queue of long studies (keras_crvae.jobs.longrun): the queue's
deadline (`CRVAE_DEADLINE`) stops training at an epoch end, a stopped stretch reports itself
(`CRVAE_STOP_FILE`), and a job's run records its machine hours (`sessions.json`, `train_hours`
per epoch) and, for the likelihood job, its held-out NLL per epoch: the NLL-vs-hours curve.
A job stopped by the queue's deadline and resumed: tests/test_autoregressive_jobs.py (vq_vae).
(tools/reproduce/run_queue.py itself: tests/tools/test_run_queue.py.)"""

import time

import keras
import numpy as np
import pytest

from keras import ops

from keras_crvae import models, networks, precision
from keras_crvae.jobs import longrun
from keras_crvae.jobs.likelihood import PROGRESS_IMAGES, ProgressLogLikelihood

pytestmark = pytest.mark.portable


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_past_queue_deadline_stops_fit_at_the_first_epoch_end(monkeypatch):
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time() - 1.0))
    budget = longrun.TimeBudget(None)
    history = _tiny_model().fit(np.ones((16, 3)), np.zeros((16, 2)), batch_size=8, epochs=5,
                                verbose=0, callbacks=[budget])
    assert budget.reached and len(history.epoch) == 1 and budget.epochs_done == 1
    assert longrun.DEADLINE_ENV in budget.reason
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time() + 3600.0))
    later = longrun.TimeBudget(None)
    _tiny_model().fit(np.ones((16, 3)), np.zeros((16, 2)), epochs=3, verbose=0, callbacks=[later])
    assert not later.reached


def test_report_stop_appends_only_under_a_queue(tmp_path, monkeypatch):
    monkeypatch.delenv(longrun.STOP_FILE_ENV, raising=False)
    longrun.report_stop("run_a", "SIGTERM")  # no queue: nothing to write, no error
    monkeypatch.setenv(longrun.STOP_FILE_ENV, str(tmp_path / "stops.txt"))
    longrun.report_stop("run_a", "SIGTERM")
    longrun.report_stop("run_b", "stop_after_minutes=1")
    lines = (tmp_path / "stops.txt").read_text().splitlines()
    assert [line.split(" at ")[0] for line in lines] == [
        "run_a: stopped by SIGTERM", "run_b: stopped by stop_after_minutes=1"]


def test_epoch_timer_logs_the_runs_hours_over_all_its_stretches(tmp_path):
    longrun.append_json_list(tmp_path / longrun.SESSIONS, {"train_seconds": 1800.0})
    longrun.append_json_list(tmp_path / longrun.SESSIONS, {"train_seconds": 1800.0})
    assert longrun.training_seconds_so_far(tmp_path) == 3600.0
    assert longrun.training_seconds_so_far(tmp_path / "nothing_yet") == 0.0
    timer = longrun.EpochTimer(offset_seconds=3600.0)
    history = _tiny_model().fit(np.ones((16, 3)), np.zeros((16, 2)), epochs=2, verbose=0,
                                callbacks=[timer])
    hours = history.history["train_hours"]
    assert len(hours) == 2 and 1.0 < hours[0] <= hours[1] < 1.0 + 60.0 / 3600.0
    assert hours[1] == pytest.approx(1.0 + timer.seconds / 3600.0, abs=1e-5)
    record = longrun.record_session(tmp_path, 0, timer, threads=1)[-1]
    assert record["epochs_run"] == 2 and record["threads"] == 1
    assert record["cpu"].startswith(precision.cpu_model_name())  # the machine


def test_an_old_history_without_the_hours_column_keeps_its_columns(tmp_path):
    path = tmp_path / "history.csv"
    assert longrun.csv_has_column_or_is_new(path, "train_hours")
    path.write_text("epoch,loss\n0,1.0\n")
    assert not longrun.csv_has_column_or_is_new(path, "train_hours")
    path.write_text("epoch,loss,train_hours\n0,1.0,0.1\n")
    assert longrun.csv_has_column_or_is_new(path, "train_hours")


def test_the_likelihood_jobs_progress_callback_logs_the_held_out_nll_per_epoch():
    model = models.PixelCNN(networks.build_gated_pixelcnn((4, 4, 1), filters=2, num_layers=1))
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    train = (rng.random((8, 4, 4, 1)) < 0.5).astype("float32")
    held_out = (rng.random((5, 4, 4, 1)) < 0.5).astype("float32")
    progress = ProgressLogLikelihood(held_out)
    history = model.fit(train, batch_size=4, epochs=2, verbose=0, callbacks=[
        longrun.EpochTimer(offset_seconds=0.0), progress]).history
    # After the last epoch: the model's exact NLL of the held-out images, and its bits per value.
    nll = -np.mean(ops.convert_to_numpy(model.log_likelihood(held_out)))
    assert len(history["eval_nll"]) == 2 and history["eval_nll"][-1] == pytest.approx(nll,
                                                                                     rel=1e-5)
    assert history["eval_bits_per_dim"][-1] == pytest.approx(nll / (16 * np.log(2)), rel=1e-5)
    assert 0 < history["train_hours"][0] <= history["train_hours"][1]
    assert PROGRESS_IMAGES == 500  # what the job scores per epoch (module docstring: < 1%)
