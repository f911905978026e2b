"""Bounded memory (issue 31): `crvae sample` and `crvae complete` work in batches, a PNG grid has a
cap, more samples go to an `.npz` written batch by batch; the streaming pieces themselves
(`evaluation.sample_batches`, `io.NpzArrayWriter`, `completion.complete_batches`).

The peak memory of the full-size commands (100,000 samples, 10,000 evaluated images) is measured
outside the test suite (docs/guide.md, "Memory"); these tests check the mechanism at small counts.
"""

import json

import numpy as np
import pytest

from test_cli import _crvae  # the console-script helper of this checkout


def _assert_one_line_usage_error(result, message):
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def _tiny_vae():
    import keras

    from keras_crvae import networks
    from keras_crvae.models import VAE

    keras.utils.set_random_seed(0)
    return VAE(networks.build_mlp_gaussian((8, 8, 1), 4, hidden_units=(16,), name="encoder"),
               networks.build_mlp_bernoulli_decoder(4, hidden_units=(16,), image_shape=(8, 8, 1)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("memory")
    _tiny_vae().save(directory / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(directory / "digits.npz", x=(rng.random((70, 8, 8)) * 255).astype(np.uint8))
    return directory


# === Through the console script ===


def test_sample_writes_an_npz_batch_by_batch(workdir):
    result = _crvae("sample", "--model=model.keras", "--num_images=10", "--batch_size=4",
                    "--output=samples.npz", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(workdir / "samples.npz") as archive:
        assert list(archive.keys()) == ["x"]
        samples = archive["x"]
    assert samples.shape == (10, 8, 8, 1) and samples.dtype == np.uint8
    # Three batches (4 + 4 + 2) with three seeds: no batch repeats another.
    assert not np.array_equal(samples[:2], samples[4:6])
    assert "samples.npz" in result.stdout and not list(workdir.glob(".tmp-*"))


def test_a_png_grid_has_a_cap(workdir):
    result = _crvae("sample", "--model=model.keras", "--num_images=257", "--output=grid.png",
                    cwd=workdir)
    _assert_one_line_usage_error(result, "--num_images=257: expected at most 256 for a PNG grid")
    assert ".npz" in result.stderr and not (workdir / "grid.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--num_images=10000000000000", "--output=s.npz"],
     "--num_images=10000000000000: expected at most 10,000,000 samples in one .npz"),
    (["--batch_size=0", "--output=s.npz"], "--batch_size=0: expected an integer >= 1"),
    (["--output=s.txt"], "--output=s.txt: expected a file path ending in .png or .npz"),
    (["--traversals", "--output=t.npz"], "--output=t.npz: expected a path ending in .png"),
])
def test_sample_errors_are_one_line(workdir, args, message):
    _assert_one_line_usage_error(_crvae("sample", "--model=model.keras", *args, cwd=workdir),
                                 message)


def test_complete_writes_an_npz_batch_by_batch(workdir):
    result = _crvae("complete", "--model=model.keras", "--images=digits.npz", "--num_images=5",
                    "--batch_size=2", "--steps=3", "--output=completed.npz", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(workdir / "completed.npz") as archive:
        completed = archive["x"]
    assert completed.shape == (5, 8, 8, 1) and completed.dtype == np.uint8
    summary = json.loads((workdir / "completed.json").read_text())
    assert summary["num_images"] == 5 and len(summary["loss_curve"]) == 3
    # The observed pixels are the originals' (the centre mask hides rows and columns 2..5).
    originals = np.load(workdir / "digits.npz")["x"][:5, :, :, None]
    assert np.abs(completed[:, :2].astype(int) - originals[:, :2]).max() <= 1


def test_a_completion_grid_has_a_cap(workdir):
    result = _crvae("complete", "--model=model.keras", "--images=digits.npz", "--num_images=65",
                    "--output=grid.png", cwd=workdir)
    _assert_one_line_usage_error(result, "--num_images=65: expected at most 64 images in a PNG "
                                         "grid")


# === The streaming pieces ===


class _RecordingModel:
    """A stand-in with `sample(n, seed)` that records each call."""

    def __init__(self):
        self.calls = []

    def sample(self, num_samples, seed=None, stage=None):
        self.calls.append((num_samples, seed, stage))
        return np.full((num_samples, 2, 2, 1), len(self.calls), np.float32)


def test_sample_batches_never_asks_for_more_than_the_batch_size():
    from keras_crvae.evaluation import sample_batches

    model = _RecordingModel()
    batches = list(sample_batches(model, 10, batch_size=4, seed=3, stage=1))
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [count for count, _, _ in model.calls] == [4, 4, 2]
    assert len({seed for _, seed, _ in model.calls}) == 3
    assert {stage for _, _, stage in model.calls} == {1}
    # A generator: nothing is drawn before the caller asks for it.
    model = _RecordingModel()
    stream = sample_batches(model, 10 ** 9, batch_size=5, seed=0)
    next(stream)
    assert model.calls == [(5, 0, None)]
    with pytest.raises(ValueError, match="batch_size"):
        next(sample_batches(model, 3, batch_size=0))


def test_sample_batches_of_a_real_model_start_with_its_own_sample():
    import keras

    from keras_crvae.evaluation import sample_batches

    model = _tiny_vae()
    first = next(sample_batches(model, 6, batch_size=6, seed=0))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(model.sample(6, seed=0)))


def test_npz_writer_streams_and_keeps_nothing_half_written(tmp_path):
    from keras_crvae.io import NpzArrayWriter

    path = tmp_path / "a.npz"
    with NpzArrayWriter(path, "x", (7, 3, 2), np.uint8) as writer:
        assert not path.exists()  # the archive appears only when complete
        for start in range(0, 7, 3):
            writer.write(np.full((min(3, 7 - start), 3, 2), start, np.uint8))
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["x"][:, 0, 0], [0, 0, 0, 3, 3, 3, 6])
    with pytest.raises(ValueError, match="2 of 7 rows"):
        with NpzArrayWriter(tmp_path / "b.npz", "x", (7, 3, 2), np.uint8) as writer:
            writer.write(np.zeros((2, 3, 2)))
    with pytest.raises(KeyboardInterrupt):
        with NpzArrayWriter(tmp_path / "c.npz", "x", (7, 3, 2), np.uint8) as writer:
            writer.write(np.zeros((2, 3, 2)))
            raise KeyboardInterrupt
    with pytest.raises(ValueError, match="shape"):
        with NpzArrayWriter(tmp_path / "d.npz", "x", (7, 3, 2), np.uint8) as writer:
            writer.write(np.zeros((2, 2, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_complete_batches_equals_one_call_for_a_model_without_discriminator():
    from keras_crvae import completion

    model = _tiny_vae()
    images = np.random.default_rng(1).random((5, 8, 8, 1)).astype(np.float32)
    whole = completion.complete(model, images, "centre", steps=4)
    parts = list(completion.complete_batches(model, images, "centre", batch_size=2, steps=4))
    assert [start for start, _, _ in parts] == [0, 2, 4]
    assert max(len(batch) for _, batch, _ in parts) == 2
    joined = np.concatenate([result.completed for _, _, result in parts])
    np.testing.assert_allclose(joined, whole.completed, atol=1e-5)
    summary = completion.merge_summaries(
        completion.completion_summary(batch, result, (0.0, 1.0)) for _, batch, result in parts)
    expected = completion.completion_summary(images, whole, (0.0, 1.0))
    assert summary["num_images"] == 5
    np.testing.assert_allclose(summary["masked_mse"], expected["masked_mse"], rtol=1e-4)
    np.testing.assert_allclose(summary["loss_curve"], expected["loss_curve"], rtol=1e-4)
