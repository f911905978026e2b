"""The shipped models (`saved_models/`) and `keras_crvae.load_pretrained` / `list_pretrained`."""

import json
import os

import keras
import numpy as np
import pytest

import keras_crvae
from keras_crvae import data, pretrained

# The narrow 6-epoch crVAE, with a .keras file and a SavedModel (the Table 1 rows: further down).
SHIPPED = os.path.join(pretrained._source_tree_models(), "mnist_crvae_narrow")
needs_checkout = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHIPPED, "model.keras")),
    reason="saved_models/mnist_crvae_narrow is not beside this keras_crvae (not a checkout)")


@needs_checkout
@pytest.mark.portable
def test_load_pretrained_samples_images():
    assert "mnist_crvae_narrow" in keras_crvae.list_pretrained()
    model = keras_crvae.load_pretrained("mnist_crvae_narrow")
    assert model.image_shape == (28, 28, 1) and model.latent_shape == (4, 4, 64)
    images = keras.ops.convert_to_numpy(model.sample(4, seed=0))
    assert images.shape == (4, 28, 28, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
    # Trained, it reconstructs real digits: per-pixel error well below the 0.26 of predicting the
    # mean image's 0.13 everywhere (0.13 * 0.87 * 2, the Bernoulli mean absolute deviation).
    digits = data.static_binarize(data.load_embedded_mnist()["x_test"][:16], seed=0)
    reconstructions = keras.ops.convert_to_numpy(model.reconstruct(digits))
    assert np.abs(reconstructions - digits).mean() < 0.1


@needs_checkout
def test_shipped_saved_model_matches_the_keras_file():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares with the TensorFlow backend's outputs")
    model = keras_crvae.load_pretrained("mnist_crvae_narrow")
    loaded = tf.saved_model.load(os.path.join(SHIPPED, "saved_model", "1"))
    z = np.random.default_rng(0).standard_normal((3, 4, 4, 64)).astype("float32")
    served = loaded.signatures["sample"](z=tf.constant(z))
    np.testing.assert_allclose(served["images"].numpy(),
                               keras.ops.convert_to_numpy(model.decode(z)), atol=1e-5)


@needs_checkout
def test_model_card_metrics_are_complete():
    with open(os.path.join(SHIPPED, "metrics.json")) as handle:
        metrics = json.load(handle)
    nll, elbo = metrics["nll"], metrics["elbo"]
    assert nll["num_samples"] >= 100 and nll["standard_error"] > 0
    # The importance-sampled NLL is a tighter bound than -ELBO on the same images.
    assert nll["mean"] < -elbo["mean"]
    for name in ("README.md", "samples.png"):
        assert os.path.getsize(os.path.join(SHIPPED, name)) > 0


IWAE_TABLE_MODELS = ["mnist_mlp_vae", "mnist_mlp_iwae", "mnist_mlp_vae_2layer",
                     "mnist_mlp_iwae_2layer"]
ROWS = os.path.join(os.path.dirname(pretrained._source_tree_models()), "reproductions",
                    "iwae_table")


@needs_checkout
@pytest.mark.portable
@pytest.mark.parametrize("name", [  # JAX loads the largest one (tests/conftest.py)
    name if name == "mnist_mlp_iwae_2layer"
    else pytest.param(name, marks=pytest.mark.tensorflow_variant) for name in IWAE_TABLE_MODELS])
def test_iwae_table_models_ship_the_committed_weights(name):
    """Each IWAE-table row loads as its committed final weights, samples digits and scores them."""
    assert set(IWAE_TABLE_MODELS) <= set(keras_crvae.list_pretrained())
    model = keras_crvae.load_pretrained(name)
    two_layers = name.endswith("_2layer")
    assert type(model).__name__ == ("HierarchicalVAE" if two_layers else "VAE")
    with np.load(os.path.join(ROWS, name, "final_weights.npz")) as committed:
        weights = [committed[f"arr_{i}"] for i in range(len(committed.files))]
    assert len(weights) == len(model.weights)
    for stored, array in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(stored, array)

    samples = keras.ops.convert_to_numpy(model.sample(3, seed=0))
    assert samples.shape == (3, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 1
    digits = data.static_binarize(data.load_embedded_mnist()["x_test"][:16], seed=0)
    posterior = model.encode(digits)
    z = posterior[0][0] if two_layers else posterior[0]
    log_likelihood = keras.ops.convert_to_numpy(model.log_likelihood(digits, z))
    assert log_likelihood.shape == (16,)
    # Trained: log p(x|z) at the posterior mean is about -57 nats on these digits, against about
    # -198 for the training pixels' mean image (an untrained decoder's output bias).
    assert -80 < log_likelihood.mean() < 0

    with open(os.path.join(pretrained._source_tree_models(), name, "metrics.json")) as handle:
        metrics = json.load(handle)
    with open(os.path.join(ROWS, name, "result.json")) as handle:
        result = json.load(handle)
    assert metrics["nll"] == result["nll"] and metrics["nll"]["num_samples"] == 5000
    assert metrics["weights"]["dtype"] == "float32" and metrics["reload_check"]["weights_identical"]
    card = open(os.path.join(pretrained._source_tree_models(), name, "README.md")).read()
    assert f"**{result['nll']['mean']:.2f} +- {result['nll']['standard_error']:.2f}**" in card
    assert f"--rescore --presets={name} --epochs=3280" in card


TABLE1_ROWS = os.path.join(os.path.dirname(pretrained._source_tree_models()), "reproductions",
                           "table1")
# The Table 1 rows shipped so far (the crVAE's joins when its score is done).
TABLE1_MODELS = [name for name in ("mnist_vae", "mnist_crvae")
                 if os.path.isfile(os.path.join(TABLE1_ROWS, name, "result.json"))
                 and os.path.isfile(os.path.join(pretrained._source_tree_models(), name,
                                                 "weights.npz"))]


@needs_checkout
@pytest.mark.tensorflow_variant  # 16 M parameters each: the TensorFlow leg only
@pytest.mark.parametrize("name", TABLE1_MODELS)
def test_table1_models_ship_the_rows_float16_weights_and_scores(name):
    """A Table 1 row ships in the npz form: its committed float16 `final_weights.npz` byte for
    byte, loaded as float32 variables, with the row's committed scores on its card."""
    shipped = os.path.join(pretrained._source_tree_models(), name)
    with open(os.path.join(shipped, "weights.npz"), "rb") as handle:
        with open(os.path.join(TABLE1_ROWS, name, "final_weights.npz"), "rb") as row:
            assert handle.read() == row.read()
    model = keras_crvae.load_pretrained(name)
    assert model.compute_dtype == "float32"
    with np.load(os.path.join(TABLE1_ROWS, name, "final_weights.npz")) as committed:
        weights = [committed[f"arr_{i}"] for i in range(len(committed.files))]
    assert any(array.dtype == np.float16 for array in weights)
    for stored, array in zip(model.get_weights(), weights):
        assert stored.dtype == np.float32
        np.testing.assert_array_equal(stored, array.astype(np.float32))
    # Trained: log p(x|z) at the posterior mean of real digits is far above the mean image's.
    digits = data.static_binarize(data.load_embedded_mnist()["x_test"][:16], seed=0)
    log_likelihood = keras.ops.convert_to_numpy(model.log_likelihood(digits,
                                                                     model.encode(digits)[0]))
    assert log_likelihood.shape == (16,) and -80 < log_likelihood.mean() < 0
    with open(os.path.join(shipped, "metrics.json")) as handle:
        metrics = json.load(handle)
    with open(os.path.join(TABLE1_ROWS, name, "result.json")) as handle:
        result = json.load(handle)
    assert metrics["nll"] == result["nll"] and metrics["nll"]["num_samples"] == 5000
    assert metrics["weights"]["dtype"] == "float16"
    assert abs(metrics["float16_check"]["difference_mean"]) < 0.05
    card = open(os.path.join(shipped, "README.md")).read()
    assert f"**{result['nll']['mean']:.2f} +- {result['nll']['standard_error']:.2f}**" in card


@pytest.mark.portable
def test_missing_model_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_source_tree_models", lambda: str(tmp_path / "absent"))
    monkeypatch.delenv(pretrained.MODELS_ENVIRONMENT_VARIABLE, raising=False)
    assert keras_crvae.list_pretrained() == []
    with pytest.raises(FileNotFoundError, match="KERAS_CRVAE_MODELS"):
        keras_crvae.load_pretrained("mnist_crvae")
    with pytest.raises(ValueError, match="`name`"):
        keras_crvae.load_pretrained("../etc")


@pytest.mark.portable
def test_environment_variable_and_directory_are_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_source_tree_models", lambda: str(tmp_path / "absent"))
    model = keras_crvae.from_preset("mnist_cvae", base_channels=1, latent_channels=2, compile=False)
    os.makedirs(tmp_path / "mine" / "tiny")
    model.save(tmp_path / "mine" / "tiny" / "model.keras")
    assert keras_crvae.list_pretrained(directory=tmp_path / "mine") == ["tiny"]
    monkeypatch.setenv(pretrained.MODELS_ENVIRONMENT_VARIABLE, str(tmp_path / "mine"))
    loaded = keras_crvae.load_pretrained("tiny")
    z = np.zeros((1,) + model.latent_shape, np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.decode(z)),
                               keras.ops.convert_to_numpy(model.decode(z)), atol=1e-6)
