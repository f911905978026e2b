"""Data pipelines: embedded subset, conversions, static/dynamic binarization, TFDS (mocked)."""

import hashlib
import os
import pathlib

import numpy as np
import pytest

from keras_crvae import data

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"


def test_embedded_subset_matches_its_documented_provenance():
    with np.load(data.mnist.EMBEDDED_PATH) as archive:
        assert hashlib.md5(archive["x_train"].tobytes()).hexdigest() == "3b1134527863a2810c134121a397e522"
        assert hashlib.md5(archive["x_test"].tobytes()).hexdigest() == "1524e1bd745c8715b390a8741bb5a6d3"
    embedded = data.load_embedded_mnist()
    assert embedded["x_train"].shape == (10000, 28, 28, 1) and embedded["x_test"].shape == (1000, 28, 28, 1)
    assert embedded["x_train"].dtype == np.float32 and 0.0 <= embedded["x_train"].min() <= embedded["x_train"].max() <= 1.0


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="shared/data/mnist.npz is not present")
def test_embedded_subset_is_the_first_images_of_official_mnist():
    with np.load(SHARED_MNIST) as full, np.load(data.mnist.EMBEDDED_PATH) as subset:
        np.testing.assert_array_equal(full["x_train"][:10000], subset["x_train"])
        np.testing.assert_array_equal(full["y_test"][:1000], subset["y_test"])


def test_to_unit_images_scales_uint8_and_rejects_bad_input():
    images = data.to_unit_images(np.full((2, 28, 28), 255, np.uint8))
    assert images.shape == (2, 28, 28, 1) and images.max() == 1.0
    with pytest.raises(ValueError, match="images.*shape"):
        data.to_unit_images(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.to_unit_images(np.full((2, 28, 28), 3.0, np.float32))
    with pytest.raises(ValueError, match="empty"):
        data.to_unit_images(np.zeros((0, 28, 28), np.uint8))


def test_static_binarization_is_binary_reproducible_and_unbiased():
    grey = np.full((200, 28, 28), 0.3, np.float32)
    first, second = data.static_binarize(grey, seed=5), data.static_binarize(grey, seed=5)
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) <= {0.0, 1.0}
    assert abs(first.mean() - 0.3) < 0.01


@pytest.mark.parametrize("seed", [None, 3])
def test_dynamic_tf_data_pipeline_redraws_every_epoch_and_drops_the_remainder(seed):
    """Also under a global seed, which freezes plain tf.random ops inside tf.data maps."""
    import keras

    keras.utils.set_random_seed(0)
    grey = np.full((70, 28, 28), 0.5, np.float32)
    dataset = data.binarized_dataset(grey, batch_size=32, shuffle=False, seed=seed)
    epoch1 = [batch.numpy() for batch in dataset]
    epoch2 = [batch.numpy() for batch in dataset]
    assert [b.shape for b in epoch1] == [(32, 28, 28, 1)] * 2
    assert set(np.unique(epoch1[0])) == {0.0, 1.0}
    assert not np.array_equal(epoch1[0], epoch2[0])
    with pytest.raises(ValueError, match="batch_size"):
        data.binarized_dataset(grey, batch_size=100)


def test_static_pipeline_is_the_same_draw_every_epoch():
    grey = np.full((64, 28, 28), 0.5, np.float32)
    dataset = data.binarized_dataset(grey, batch_size=64, shuffle=False, binarize="static", seed=1)
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), next(iter(dataset)).numpy())
    with pytest.raises(ValueError, match="binarize"):
        data.binarized_dataset(grey, batch_size=8, binarize="sometimes")


@pytest.mark.portable
def test_numpy_sequence_binarizes_and_reshuffles():
    grey = np.linspace(0, 1, 50 * 784, dtype=np.float32).reshape(50, 28, 28)
    sequence = data.BinarizedSequence(grey, batch_size=16, seed=0)
    assert len(sequence) == 3 and sequence[0].shape == (16, 28, 28, 1)
    first_order = sequence.order.copy()
    sequence.on_epoch_end()
    assert not np.array_equal(first_order, sequence.order)
    assert set(np.unique(sequence[1])) <= {0.0, 1.0}


@pytest.mark.portable
def test_training_data_is_tf_data_on_tensorflow_and_numpy_on_other_backends():
    import keras

    grey = np.full((64, 28, 28), 0.25, np.float32)
    batches = data.training_data(grey, batch_size=32, seed=0)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert isinstance(batches, tf.data.Dataset)
        epoch1, epoch2 = ([b.numpy() for b in batches] for _ in range(2))
    else:
        assert isinstance(batches, data.BinarizedSequence)
        epoch1 = [batches[i] for i in range(len(batches))]
        batches.on_epoch_end()
        epoch2 = [batches[i] for i in range(len(batches))]
    assert [b.shape for b in epoch1] == [(32, 28, 28, 1)] * 2
    # Dynamic: fresh Bernoulli(0.25) pixels every epoch (50,176 draws an epoch: sd of the mean 0.002).
    assert not np.array_equal(epoch1[0], epoch2[0])
    for epoch in (epoch1, epoch2):
        assert set(np.unique(epoch)) == {0.0, 1.0} and abs(np.mean(epoch) - 0.25) < 0.01


def test_npz_loading_by_key(tmp_path):
    path = tmp_path / "images.npz"
    np.savez(path, x_valid=np.ones((3, 28, 28), np.uint8), other=np.zeros(2))
    assert data.load_npz_images(f"{path}:x_valid").shape == (3, 28, 28, 1)
    with pytest.raises(KeyError, match="x_missing"):
        data.load_npz_images(f"{path}:x_missing")
    with pytest.raises(FileNotFoundError):
        data.load_images(os.fspath(tmp_path / "absent.npz"))
    assert data.load_images("embedded:test").shape == (1000, 28, 28, 1)


def test_tfds_mnist_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        dataset = data.tfds_mnist("mnist", batch_size=16, seed=0)
        batch = next(iter(dataset)).numpy()
    assert batch.shape == (16, 28, 28, 1)
    assert set(np.unique(batch)) <= {0.0, 1.0}


def test_tfds_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build"):
        data.tfds_mnist("binarized_mnist", data_dir=os.fspath(tmp_path))


def test_one_shape_rule_from_data_to_evaluation():
    """(N, 28, 28) is accepted wherever (N, 28, 28, 1) is: the data functions, fit, the model's
    methods and the evaluators, with the same results."""
    import keras_crvae
    from keras_crvae import evaluation

    images = data.static_binarize(np.random.default_rng(0).random((6, 28, 28)), seed=0)
    assert images.shape == (6, 28, 28, 1)
    model = keras_crvae.from_preset("mnist_cvae", base_channels=2, seed=0)
    model.fit(data.binarized_dataset(images[..., 0], batch_size=3, seed=0), epochs=1, verbose=0)
    with_axis = evaluation.importance_sampled_nll(model, images, num_samples=3, seed=0, verbose=0)
    without = evaluation.importance_sampled_nll(model, images[..., 0], num_samples=3, seed=0,
                                                verbose=0)
    np.testing.assert_allclose(without.mean, with_axis.mean, rtol=1e-5)
    mean, _ = model.encode(images[..., 0])
    assert tuple(mean.shape)[0] == 6
    with pytest.raises(ValueError, match=r"must have shape \(batch, 28, 28, 1\); got \(6, 28\)"):
        model.encode(images[:, 0, :, 0])


def test_binarization_sources_find_the_grey_image_each_binary_image_was_drawn_from():
    grey = data.load_embedded_mnist()["x_test"][:400]
    drawn_from = np.random.default_rng(1).permutation(400)[:60]
    binary = data.static_binarize(grey[drawn_from], seed=3)
    np.testing.assert_array_equal(data.binarization_sources(binary, grey, chunk=7), drawn_from)
    # Integer grey levels give the same answer; a grey image is not a binarization.
    np.testing.assert_array_equal(
        data.binarization_sources(binary, np.round(grey * 255).astype("uint8")), drawn_from)
    with pytest.raises(ValueError, match="only 0 and 1"):
        data.binarization_sources(grey[:2], grey)


def test_binarization_sources_cache_is_keyed_by_the_arrays_and_read_back(tmp_path):
    grey = data.load_embedded_mnist()["x_test"][:300]
    binary = data.static_binarize(grey[:40], seed=5)
    computed = data.binarization_sources(binary, grey, return_log_likelihood=True,
                                         cache_dir=str(tmp_path))
    (cache_file,) = tmp_path.glob("binarization_sources_*.npz")
    np.testing.assert_array_equal(computed[0], data.binarization_sources(binary, grey))
    # A second call reads the file (planted values come back) and other arrays get another key.
    np.savez(cache_file, sources=np.arange(40), log_likelihoods=np.zeros(40, "float32"))
    np.testing.assert_array_equal(
        data.binarization_sources(binary, grey, cache_dir=str(tmp_path)), np.arange(40))
    data.binarization_sources(binary[:30], grey, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("binarization_sources_*.npz"))) == 2
    assert not list(tmp_path.glob("*.partial*"))


def test_binarization_sources_score_real_sources_far_above_other_images():
    grey = data.load_embedded_mnist()["x_test"]
    binary = data.static_binarize(grey[:50], seed=4)
    _, own = data.binarization_sources(binary, grey[:50], return_log_likelihood=True)
    _, other = data.binarization_sources(binary, grey[50:], return_log_likelihood=True)
    assert np.median(own) > -100 > np.median(other)
