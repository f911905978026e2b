"""What `crvae train` does with an output folder that already holds a run (`keras_crvae.runs`),
checked on hand-made folders: no training, no TensorFlow."""

import json
import os
import socket
import subprocess

import pytest

from keras_crvae import presets, runs

pytestmark = pytest.mark.portable  # plain Python: cheap on every backend

PRESET = "mnist_crvae_quickstart"


def settings(**overrides):
    return runs.run_settings(presets.get_preset(PRESET, **overrides))


def finished_run(directory, epochs=6, **overrides):
    directory.mkdir(exist_ok=True)
    runs.write_run(str(directory), PRESET, settings(**overrides), epochs, finished=True)
    (directory / "model.keras").write_bytes(b"model")
    return str(directory)


def test_a_new_or_empty_folder_starts(tmp_path):
    assert runs.plan_run(str(tmp_path / "new"), PRESET, settings(), 6).action == "start"
    assert runs.plan_run(str(tmp_path), PRESET, settings(), 6).action == "start"


def test_a_finished_run_is_done_or_continues(tmp_path):
    directory = finished_run(tmp_path / "run")
    done = runs.plan_run(directory, PRESET, settings(), 6)
    assert done.action == "done" and "already trained (6 epochs)" in done.message
    assert "--fresh" in done.message and "--epochs=M (M > 6)" in done.message
    more = runs.plan_run(directory, PRESET, settings(), 9)
    assert (more.action, more.initial_epoch) == ("continue", 6)
    assert more.message == "continuing from epoch 6 to 9"
    assert runs.plan_run(directory, PRESET, settings(), 6, fresh=True).action == "start"
    # A job that cannot continue (Two-Stage) retrains when more epochs are asked for.
    assert runs.plan_run(directory, PRESET, settings(), 9, resumable=False).action == "start"


def test_a_finished_run_without_its_model_file_is_done_not_retrained(tmp_path):
    """A committed study folder on another machine: run.json finished and metrics.json are there,
    model.keras (git-ignored) is not. Its results stand; only --fresh retrains."""
    directory = finished_run(tmp_path / "run")
    os.remove(os.path.join(directory, "model.keras"))
    assert runs.plan_run(directory, PRESET, settings(), 6).action == "start"  # no results either
    (tmp_path / "run" / "metrics.json").write_text("{}")
    done = runs.plan_run(directory, PRESET, settings(), 6)
    assert done.action == "done" and "not its model.keras" in done.message
    assert runs.plan_run(directory, PRESET, settings(), 6, fresh=True).action == "start"


def test_a_finished_run_of_a_job_that_cannot_resume_names_stages_only_for_two_stage(tmp_path):
    one_stage = runs.plan_run(finished_run(tmp_path / "run"), PRESET, settings(), 6,
                              resumable=False)  # e.g. the sprites job
    assert one_stage.action == "done" and "already trained (6 epochs) in" in one_stage.message
    two_stage = presets.get_preset("mnist_two_stage")
    directory = tmp_path / "two_stage"
    directory.mkdir()
    runs.write_run(str(directory), "mnist_two_stage", runs.run_settings(two_stage), 1200,
                   finished=True)
    (directory / "model.keras").write_bytes(b"model")
    done = runs.plan_run(str(directory), "mnist_two_stage", runs.run_settings(two_stage), 1200,
                         resumable=False)
    assert "already trained (1200 epochs over both stages)" in done.message


def test_a_killed_run_resumes_from_its_backup(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    runs.write_run(str(directory), PRESET, settings(), 0)
    (directory / "backup").mkdir()
    (directory / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 2,
                                                                             "batch": 0}))
    plan = runs.plan_run(str(directory), PRESET, settings(), 6)
    assert (plan.action, plan.initial_epoch) == ("resume", 2)
    assert plan.message.startswith("resuming from epoch 2")


def test_other_presets_and_settings_are_refused_by_name(tmp_path):
    directory = finished_run(tmp_path / "run")
    with pytest.raises(runs.RunConflictError, match="holds a run of preset mnist_crvae_quickstart"):
        runs.plan_run(directory, "mnist_cvae", runs.run_settings(presets.get_preset("mnist_cvae")),
                      6)
    with pytest.raises(runs.RunConflictError,
                       match=r"base_channels=8 there, 4 now.*learning_rate=0.003 there, 0.001 now"):
        runs.plan_run(directory, PRESET, settings(base_channels=4, learning_rate=0.001), 6)
    # Epochs are not a setting: more or fewer never conflict.
    assert runs.plan_run(directory, PRESET, settings(epochs=2), 2).action == "done"


def test_a_setting_added_later_compares_as_the_value_older_runs_had():
    """A run folder from before a preset gained a setting (its run.json lacks the key) resumes
    where today's value is the one it trained with, and names the old value where it is not."""
    older = {"network": {"base_channels": 16}, "training": {"batch_size": 32}}

    def today(**network):
        return {"network": {"base_channels": 16, **network}, "training": {"batch_size": 32}}

    assert runs.setting_differences(older, today(discriminator_pooling="max")) == []
    assert runs.setting_differences(older, today(discriminator_pooling="average")) == [
        ("discriminator_pooling", "max", "average")]
    assert runs.setting_differences(older, today(minibatch_average=True)) == [
        ("minibatch_average", False, True)]
    # A key neither side has is no difference, and a real change is still one.
    assert runs.setting_differences(older, older) == []
    assert runs.setting_differences(older, today(base_channels=32)) == [("base_channels", 16, 32)]


def test_files_of_an_unknown_run_are_not_overwritten(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(runs.RunConflictError, match="without run.json"):
        runs.plan_run(str(tmp_path), PRESET, settings(), 6)
    (tmp_path / "notes.txt").write_text("mine")
    runs.clear_run(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # only our files go


def test_each_preset_has_its_own_default_folder():
    folders = {runs.default_output_dir(name) for name in presets.list_presets()}
    assert len(folders) == len(presets.list_presets())
    assert runs.default_output_dir(PRESET) == "crvae_run"


def test_typed_overrides_name_the_key_and_the_expected_type():
    assert presets.parse_overrides(["base_channels=4", "kl_weight=0.01"], preset=PRESET) == {
        "base_channels": 4, "kl_weight": 0.01}
    for item, message in [("base_channels=abc", "--set base_channels=abc: expected an integer"),
                          ("base_channels=2.5", "--set base_channels=2.5: expected an integer"),
                          ("learning_rate=nan", "--set learning_rate=nan: expected a finite"),
                          ("synchronized_batch_norm=maybe", "expected true or false"),
                          ("base_channels", "expected KEY=VALUE")]:
        with pytest.raises(ValueError, match=message):
            presets.parse_overrides([item], preset=PRESET)
    with pytest.raises(ValueError, match="base_channels='abc': expected an integer"):
        presets.get_preset(PRESET, base_channels="abc")  # the Python API checks types too


def test_a_trained_run_without_metrics_finishes_its_evaluation(tmp_path):
    """`finished` only once metrics.json is written: a run killed while it was scored is
    evaluated again, not called trained (issue 31)."""
    directory = tmp_path / "run"
    directory.mkdir()
    runs.write_run(str(directory), PRESET, settings(), 6, trained=True)
    (directory / "model.keras").write_bytes(b"model")
    plan = runs.plan_run(str(directory), PRESET, settings(), 6)
    assert (plan.action, plan.initial_epoch) == ("evaluate", 6)
    assert "final evaluation did not finish" in plan.message
    assert runs.plan_run(str(directory), PRESET, settings(), 9).action == "continue"
    # A job that cannot resume a killed training (Two-Stage, sprites) also finishes the
    # evaluation instead of retraining; asked for more epochs, it retrains.
    plan = runs.plan_run(str(directory), PRESET, settings(), 6, resumable=False)
    assert (plan.action, plan.initial_epoch) == ("evaluate", 6)
    plan = runs.plan_run(str(directory), PRESET, settings(), 9, resumable=False)
    assert plan.action == "start" and "retrains (9 epochs)" in plan.message


def test_fresh_sets_a_run_aside_and_puts_it_back(tmp_path):
    directory = tmp_path / "run"
    finished_run(directory)
    (directory / "notes.txt").write_text("mine")
    before = sorted(p.name for p in directory.iterdir())
    assert runs.set_aside(str(directory)) == str(directory / "previous")
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt", "previous"]
    (directory / "run.json").write_text("{}")  # the new run's first files
    assert runs.set_aside(str(directory))  # again (no first epoch yet): the new files go
    assert sorted(p.name for p in (directory / "previous").iterdir()) == ["model.keras",
                                                                          "run.json"]
    (directory / "history.csv").write_text("epoch\n")
    assert runs.restore_previous(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == before
    assert runs.read_run(str(directory))["finished"] is True
    runs.set_aside(str(directory))
    runs.discard_previous(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]



def test_a_light_state_resumes_where_no_backup_is_and_fresh_sets_it_aside(tmp_path):
    from keras_crvae.jobs import runs as job_runs  # the light state's file names

    directory = tmp_path / "run"
    directory.mkdir()
    runs.write_run(str(directory), PRESET, settings(), 4, trained=False)
    (directory / job_runs.RESUME_WEIGHTS).write_bytes(b"weights")
    (directory / job_runs.RESUME_INFO).write_text(json.dumps({"epochs_done": 4}))
    plan = runs.plan_run(str(directory), PRESET, settings(), 9)
    assert (plan.action, plan.initial_epoch) == ("resume_light", 4) and "light state" in plan.message
    # This machine's backup (full state) comes first.
    (directory / runs.BACKUP_DIR).mkdir()
    (directory / runs.BACKUP_DIR / "training_metadata.json").write_text('{"epoch": 5}')
    assert runs.plan_run(str(directory), PRESET, settings(), 9).initial_epoch == 5
    assert runs.plan_run(str(directory), PRESET, settings(), 9, resumable=False).action == "start"
    runs.set_aside(str(directory))  # --fresh: the old run's light state goes with it
    assert sorted(p.name for p in directory.iterdir()) == ["previous"]


def test_the_output_lock_is_exclusive_reentrant_and_leaves_no_folder(tmp_path):
    folder = tmp_path / "new"
    with runs.output_lock(str(folder)) as lock:
        record = json.loads((folder / runs.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert runs.output_lock(str(folder)) is lock  # the same process: re-entrant
        lock.release()
        assert (folder / runs.LOCK_FILE).exists()  # still held once
    assert not folder.exists()  # created by the lock, empty: removed on release
    # Another live process holds it: refused, naming it; a dead one's lock is taken over.
    folder.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (folder / runs.LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid,
                                                         "host": socket.gethostname()}))
        with pytest.raises(runs.RunLockedError, match=f"pid {sleeper.pid} on host"):
            runs.output_lock(str(folder))
    finally:
        sleeper.kill()
        sleeper.wait()
    with runs.output_lock(str(folder)) as lock:
        assert lock.took_over["pid"] == sleeper.pid
    assert sorted(os.listdir(folder)) == []
