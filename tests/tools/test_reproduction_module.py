"""`tools/reproduce/reproduction.py` loads the library lazily and names the run files as the library does."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

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


# --- The final NLL in parts (`score_nll_in_parts`): resumable across sessions ---


@pytest.fixture
def scoring_flags(monkeypatch):
    """The reproduction flags, parsed with the defaults (defined once per process), and a tiny
    VAE with 6 binary images."""
    import keras

    from keras_crvae import models, networks

    if "score_part_images" not in reproduction.FLAGS:
        reproduction.define_flags("unused", reproduction.RunSettings(1, 3, 0, 0),
                                  reproduction.RunSettings(1, 3, 0, 0), max_decoder_batch=64,
                                  steps_per_execution=1)
    if not reproduction.FLAGS.is_parsed():
        reproduction.FLAGS.mark_as_parsed()
    for name, value in {"eval_batch_size": 2, "max_decoder_batch": 64, "seed": 0, "rescore": False,
                        "stop_after_minutes": 0.0, "score_part_images": 2}.items():
        monkeypatch.setattr(reproduction.FLAGS, name, value)
    keras.utils.set_random_seed(0)
    config = dict(base_channels=2, latent_channels=8)
    model = models.VAE(networks.build_mnist_encoder("dense", **config),
                       networks.build_mnist_decoder("dense", **config), seed=1)
    images = (np.random.default_rng(0).random((6, 28, 28, 1)) < 0.3).astype("float32")
    return model, images, reproduction.RunSettings(epochs=1, num_samples=3, num_valid=0,
                                                   num_train=0)


def test_one_part_is_the_whole_set_scoring(scoring_flags, tmp_path, monkeypatch):
    model, images, settings = scoring_flags
    monkeypatch.setattr(reproduction.FLAGS, "score_part_images", 0)
    parts, _ = reproduction.score_nll_in_parts(model, images, settings, tmp_path, "nll")
    whole = reproduction.score_nll(model, images, settings)
    np.testing.assert_array_equal(parts.per_example, whole.per_example)
    assert parts.mean == pytest.approx(whole.mean) and parts.num_images == 6


def test_a_stopped_scoring_resumes_at_its_first_missing_part(scoring_flags, tmp_path,
                                                             monkeypatch):
    from keras_crvae import evaluation

    model, images, settings = scoring_flags
    reference, _ = reproduction.score_nll_in_parts(model, images, settings, tmp_path, "nll")
    calls = []
    score = evaluation.importance_sampled_nll

    def scored_part(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 1:  # a SIGTERM while part 0 is scored: it finishes, then the stop
            os.kill(os.getpid(), signal.SIGTERM)
        return score(*args, **kwargs)

    monkeypatch.setattr(evaluation, "importance_sampled_nll", scored_part)
    folder = tmp_path / "b"
    folder.mkdir()
    with pytest.raises(reproduction._longrun().TimeLimitReached, match="1 of 3 parts of nll"):
        reproduction.score_nll_in_parts(model, images, settings, folder, "nll")
    assert sorted(json.loads((folder / "score_parts.json").read_text())["nll"]["parts"]) == ["0"]
    resumed, seconds = reproduction.score_nll_in_parts(model, images, settings, folder, "nll")
    assert calls == [0, 1, 2]  # part i's noise from --seed + i; part 0 not scored again
    np.testing.assert_array_equal(resumed.per_example, reference.per_example)
    # The scoring seconds count every kept part, the earlier invocation's part 0 included.
    kept = json.loads((folder / "score_parts.json").read_text())["nll"]["parts"]
    assert seconds == pytest.approx(sum(part["seconds"] for part in kept.values()), abs=0.11)
    # Other weights: the kept parts are not theirs, and every part is scored again.
    model.decoder.weights[0].assign(model.decoder.weights[0] + 0.5)
    again, _ = reproduction.score_nll_in_parts(model, images, settings, folder, "nll")
    assert calls == [0, 1, 2, 0, 1, 2]
    assert not np.allclose(again.per_example, reference.per_example)


def test_the_time_budget_stops_before_a_part(scoring_flags, tmp_path, monkeypatch):
    model, images, settings = scoring_flags
    monkeypatch.setattr(reproduction.FLAGS, "stop_after_minutes", 0.001)
    monkeypatch.setattr(reproduction, "_STARTED", time.time() - 60)
    with pytest.raises(reproduction._longrun().TimeLimitReached,
                       match="--stop_after_minutes=0.001 with 0 of 3 parts"):
        reproduction.score_nll_in_parts(model, images, settings, tmp_path, "nll")


def test_a_queues_deadline_stops_the_scoring_and_is_reported_to_the_queue(scoring_flags, tmp_path,
                                                                          monkeypatch):
    """Under `tools/reproduce/run_queue.py` a row stopped between score parts must say so
    (CRVAE_STOP_FILE), or the queue would count it finished and never resume it."""
    from keras_crvae.jobs import longrun

    model, images, settings = scoring_flags
    stops = tmp_path / "stops.txt"
    monkeypatch.setenv(longrun.DEADLINE_ENV, repr(time.time() - 1.0))
    monkeypatch.setenv(longrun.STOP_FILE_ENV, str(stops))
    with pytest.raises(longrun.TimeLimitReached, match="queue's deadline .* 0 of 3 parts"):
        reproduction.score_nll_in_parts(model, images, settings, tmp_path, "nll")
    assert f"{tmp_path}: stopped by the queue's deadline" in stops.read_text()
    monkeypatch.delenv(longrun.DEADLINE_ENV)
    scored, _ = reproduction.score_nll_in_parts(model, images, settings, tmp_path, "nll")
    assert scored.num_images == 6
