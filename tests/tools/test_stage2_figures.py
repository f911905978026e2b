"""`tools/studies/stage2_figures.py`: Stage2 against bilinear and bicubic enlargement, by MSE and
FID, on a tiny untrained Stage2 (numbers checked by hand, not quality)."""

import pathlib
import sys

import keras
import numpy as np
import pytest

from keras_crvae import evaluation
from tests.models.test_super_resolution import tiny_stage2

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "studies"))
import stage2_figures as tool  # noqa: E402  (a script, not a package)


def pooled_colours():
    """A toy feature network: the mean colour of each 32x32 quarter (12 features; not a FID)."""
    return keras.Sequential([keras.Input((64, 64, 3)), keras.layers.AveragePooling2D(32),
                             keras.layers.Flatten()], name="pooled_colours")


def test_measure_against_hand_computed_enlargements():
    model = tiny_stage2(with_features=False)
    rng = np.random.default_rng(0)
    # Faces of one colour each: down-sampling and enlarging them is exact, so both enlargements of
    # the real faces have no error and the same features as the faces (FID 0).
    flat = np.broadcast_to(rng.uniform(-0.8, 0.8, (6, 1, 1, 3)), (6, 64, 64, 3)).astype("float32")
    result = tool.measure(model, flat, extractor=pooled_colours(), num_samples=5, batch_size=4)
    real = result["real_downsampled"]
    assert real["bilinear_mse"]["mean"] == pytest.approx(0.0, abs=1e-10)
    assert real["bicubic_mse"]["mean"] == pytest.approx(0.0, abs=1e-10)
    assert result["fid"]["real_downsampled_bicubic"] == pytest.approx(0.0, abs=1e-6)
    assert (result["input_size"], result["output_size"], result["num_faces"]) == (32, 64, 6)

    # Stage1's decodes: the MSEs are those of the generator's output and of keras' resizes.
    faces = rng.uniform(-1, 1, (6, 64, 64, 3)).astype("float32")
    result = tool.measure(model, faces, batch_size=4)
    assert "fid" not in result
    inputs = tool.generator_inputs(model, faces)
    assert inputs.shape == (6, 32, 32, 3)
    outputs = keras.ops.convert_to_numpy(model.generator(inputs, training=False))
    bicubic = np.clip(keras.ops.convert_to_numpy(keras.ops.image.resize(
        inputs, (64, 64), interpolation="bicubic")), -1, 1)
    per_face = lambda images: ((images - faces) ** 2).reshape(6, -1).mean(1)  # noqa: E731
    decode = result["stage1_decode"]
    assert decode["stage2_mse"]["mean"] == pytest.approx(per_face(outputs).mean(), rel=1e-5)
    assert decode["bicubic_mse"]["mean"] == pytest.approx(per_face(bicubic).mean(), rel=1e-5)
    assert decode["bicubic_mse"]["standard_error"] == pytest.approx(
        per_face(bicubic).std(ddof=1) / np.sqrt(6), rel=1e-4)
    assert decode["stage2_wins_vs_bicubic"] == pytest.approx(
        np.mean(per_face(outputs) < per_face(bicubic)))


def test_enlargements():
    low = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    nearest = tool.enlarge(low, 64, "nearest")
    np.testing.assert_array_equal(nearest[:, ::2, ::2], low)
    np.testing.assert_array_equal(nearest[:, 1::2, 1::2], low)
    bilinear, bicubic = tool.enlarge(low, 64, "bilinear"), tool.enlarge(low, 64, "bicubic")
    assert bicubic.shape == bilinear.shape == (2, 64, 64, 3)
    assert bicubic.min() >= -1 and bicubic.max() <= 1  # clipped: bicubic overshoots
    assert np.abs(bicubic - bilinear).max() > 0.05


def test_fids_are_against_the_held_out_faces():
    model = tiny_stage2(with_features=False)
    faces = np.random.default_rng(1).uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    extractor = pooled_colours()
    result = tool.measure(model, faces, extractor=extractor, num_samples=6, seed=3, batch_size=4)
    reference = evaluation.feature_statistics(faces, extractor)
    prior = tool.prior_inputs(model, 6, 3)
    expected = evaluation.frechet_distance(*evaluation.feature_statistics(
        tool.enlarge(prior, 64, "bicubic"), extractor), *reference)
    assert result["fid"]["samples_bicubic"] == pytest.approx(expected, rel=1e-5)
    assert result["fid"]["num_samples"] == 6
    for key in ("reconstructions_stage2", "reconstructions_bicubic", "samples_stage2"):
        assert np.isfinite(result["fid"][key]) and result["fid"][key] >= 0


def test_figures_are_written(tmp_path):
    model = tiny_stage2(with_features=False)
    faces = np.random.default_rng(2).uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    tool.save_figures(model, faces, str(tmp_path), "tiny", seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_before_after.png",
                                                           "tiny_samples.png"]
