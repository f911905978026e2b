"""The long-run engine's side of a queue of long studies (keras_crvae.jobs.longrun): the queue's
deadline (`CRVAE_DEADLINE`) stops training at an epoch end, a stopped stretch reports itself
(`CRVAE_STOP_FILE`), and a job's run records its machine hours (`sessions.json`, `train_hours`
per epoch) and, for the likelihood job, its held-out NLL per epoch: the NLL-vs-hours curve.
(tools/reproduce/run_queue.py itself: tests/tools/test_run_queue.py.)"""

import csv
import json
import time

import keras
import numpy as np
import pytest

from keras_crvae import data
from keras_crvae.jobs import longrun
from keras_crvae.jobs.likelihood import PROGRESS_IMAGES, train_likelihood

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


def test_an_old_history_without_the_hours_column_keeps_its_columns(tmp_path):
    path = tmp_path / "history.csv"
    assert longrun.csv_has_column_or_is_new(path, "train_hours")
    path.write_text("epoch,loss\n0,1.0\n")
    assert not longrun.csv_has_column_or_is_new(path, "train_hours")
    path.write_text("epoch,loss,train_hours\n0,1.0,0.1\n")
    assert longrun.csv_has_column_or_is_new(path, "train_hours")


def test_a_job_stopped_by_the_queue_deadline_resumes_and_draws_its_nll_vs_hours_curve(
        tmp_path, monkeypatch):
    mnist = data.load_embedded_mnist()
    arguments = dict(train_images=mnist["x_train"][:128], eval_images=mnist["x_test"][:8],
                     output_dir=str(tmp_path / "run"), epochs=2, verbose=0)
    monkeypatch.setenv(longrun.STOP_FILE_ENV, str(tmp_path / "stops.txt"))
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time()))  # spent: one epoch, then stop
    stopped = train_likelihood("mnist_flow_quickstart", **arguments)
    assert stopped["completed_epochs"] == 1 and longrun.DEADLINE_ENV in stopped["stopped"]
    assert (tmp_path / "stops.txt").read_text().startswith(f"{tmp_path / 'run'}: stopped by")
    monkeypatch.delenv(longrun.DEADLINE_ENV)
    metrics = train_likelihood("mnist_flow_quickstart", **arguments)
    assert metrics["epochs_this_run"] == 1
    sessions = json.loads((tmp_path / "run" / "sessions.json").read_text())
    assert [(s["first_epoch"], s["epochs_run"]) for s in sessions] == [(0, 1), (1, 1)]
    with open(tmp_path / "run" / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    hours = [float(row["train_hours"]) for row in rows]
    assert len(rows) == 2 and 0 < hours[0] < hours[1]
    # The last epoch's hours are the two stretches' seconds (rounded to 0.1 s each).
    assert hours[1] == pytest.approx(sum(s["train_seconds"] for s in sessions) / 3600, abs=1e-4)
    # The held-out NLL after the last epoch is the final evaluation's on the same images
    # (the flow's dequantization noise differs between the two: a few nats at most).
    assert PROGRESS_IMAGES >= 8 and all(float(row["eval_nll"]) > 0 for row in rows)
    assert float(rows[-1]["eval_bits_per_dim"]) == pytest.approx(
        float(rows[-1]["eval_nll"]) / (784 * np.log(2)), rel=1e-5)
    assert float(rows[-1]["eval_nll"]) == pytest.approx(metrics["nll"]["mean"], rel=0.01)
