"""inference_network folds BatchNormalization chains into their linear layers: the same function as
the network in inference mode, on the network's own variables, on every backend."""

import keras
import numpy as np
import pytest

from keras_crvae.layers import BatchNormalization, FoldedConvolution, PhaseConv2DTranspose, SliceCropping2D
from keras_crvae.models.base import run_network
from keras_crvae.networks import InferenceNetwork, inference_network
from keras_crvae.networks.inference import fold_plan, folding

pytestmark = pytest.mark.portable


def _network():
    """Every chain the rewrite handles, and the ones it must leave alone."""
    inputs = keras.Input((5, 5, 3), name="x")
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = BatchNormalization(name="bn_conv")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="act_conv")(x)
    x = PhaseConv2DTranspose(4, 4, strides=2, padding="same", name="deconv")(x)  # 10x10
    x = keras.layers.BatchNormalization(name="bn_deconv")(x)
    x = keras.layers.ReLU(name="act_deconv")(x)
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="valid", name="deconv_valid")(x)
    x = SliceCropping2D(((1, 2), (2, 1)), name="crop")(x)  # 22x22 -> 19x19
    x = BatchNormalization(name="bn_crop")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="act_crop")(x)
    # A convolution with its own nonlinearity: its BatchNormalization cannot be folded.
    x = keras.layers.Conv2D(3, 3, activation="tanh", name="conv_tanh")(x)
    x = BatchNormalization(name="bn_tanh")(x)
    # A convolution read twice: left alone.
    shared = keras.layers.Conv2D(3, 1, name="conv_twice")(x)
    x = keras.layers.Add(name="add")([BatchNormalization(name="bn_twice")(shared), shared])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(7, name="dense")(x)
    # The network's output: folded, no activation.
    outputs = keras.layers.BatchNormalization(name="bn_dense")(x)
    return keras.Model(inputs, outputs, name="net")


def _randomize(network, seed=1):
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        for variable in layer.weights:
            if isinstance(layer, keras.layers.BatchNormalization):
                spread = "variance" in variable.path or "gamma" in variable.path
                value = rng.uniform(0.5, 1.5, variable.shape) if spread else rng.normal(
                    0, 0.5, variable.shape)
            else:
                value = rng.normal(0, 0.3, variable.shape)
            variable.assign(value.astype("float32"))


def _images(count=4, seed=0):
    return np.random.default_rng(seed).standard_normal((count, 5, 5, 3)).astype("float32")


def test_the_plan_folds_exactly_the_foldable_chains():
    plan = {linear.name: (norm.name, activation.name if activation else None)
            for linear, norm, activation in fold_plan(_network())}
    assert plan == {"conv": ("bn_conv", "act_conv"), "deconv": ("bn_deconv", "act_deconv"),
                    "deconv_valid": ("bn_crop", "act_crop"), "dense": ("bn_dense", None)}


@pytest.mark.parametrize("phases", [True, False, "auto"])
def test_the_folded_network_computes_the_network_in_inference_mode(phases):
    network = _network()
    _randomize(network)
    folded = InferenceNetwork(network, phases=phases)
    assert [layer.name for layer in folded.folded] == [
        "conv_folded", "deconv_folded", "deconv_valid_folded", "dense_folded"]
    x = _images()
    expected = keras.ops.convert_to_numpy(network(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(x)), expected, atol=2e-4,
                               rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded.predict_on_batch(x)), expected,
                               atol=2e-4, rtol=1e-4)


@pytest.fixture
def folded_everywhere():
    """`run_network` folds on TensorFlow by default; these tests check the fold on every backend."""
    with folding(True):
        yield


def test_the_folded_network_reads_the_live_variables(folded_everywhere):
    network = _network()
    _randomize(network)
    x = _images()
    run_network(network, x)  # builds and compiles the inference network
    _randomize(network, seed=7)  # as training or load_weights would
    np.testing.assert_allclose(keras.ops.convert_to_numpy(run_network(network, x)),
                               keras.ops.convert_to_numpy(network(x, training=False)),
                               atol=2e-4, rtol=1e-4)
    assert {id(v) for v in inference_network(network).weights} == {id(v) for v in network.weights}


def test_run_network_folds_once_and_can_be_switched_off():
    network = _network()
    # By default only TensorFlow folds (docs/performance.md: on JAX it is no faster).
    assert (inference_network(network) is network) == (keras.backend.backend() == "jax")
    with folding(True):
        assert inference_network(network) is inference_network(network)
        assert isinstance(inference_network(network), InferenceNetwork)
    with folding(False):
        assert inference_network(network) is network
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert inference_network(plain) is plain  # nothing to fold


def test_weight_files_are_unchanged_by_inference(tmp_path, folded_everywhere):
    network = _network()
    _randomize(network)
    run_network(network, _images())
    network.save_weights(tmp_path / "net.weights.h5")
    fresh = _network()
    fresh.load_weights(tmp_path / "net.weights.h5")
    for saved, loaded in zip(network.weights, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved),
                                      keras.ops.convert_to_numpy(loaded))
    import h5py

    with h5py.File(tmp_path / "net.weights.h5") as saved_file:
        names = []
        saved_file.visit(names.append)
    assert not any("inference" in name or "folded" in name for name in names)


def test_mixed_bfloat16_stays_within_bfloat16_rounding(folded_everywhere):
    network = _network()
    _randomize(network)
    x = _images()
    exact = keras.ops.convert_to_numpy(network(x, training=False))
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _network()
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(network.get_weights())
    unfolded = keras.ops.convert_to_numpy(keras.ops.cast(mixed(x, training=False), "float32"))
    folded = keras.ops.convert_to_numpy(run_network(mixed, x))
    scale = np.abs(exact).mean()
    # The fold must not be less accurate than the unfolded bfloat16 path by more than a rounding.
    assert np.abs(folded - exact).mean() <= 2.0 * np.abs(unfolded - exact).mean() + 0.01 * scale


def test_folded_convolution_round_trips_through_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(4, 3, padding="same")
    norm = keras.layers.BatchNormalization()
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, FoldedConvolution(conv, norm, keras.layers.LeakyReLU(0.1))(inputs))
    norm.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("float32")
    model.save(tmp_path / "folded.keras")
    loaded = keras.models.load_model(tmp_path / "folded.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-6)


def test_folded_convolution_refuses_what_it_cannot_fold():
    with pytest.raises(ValueError, match="linear activation"):
        FoldedConvolution(keras.layers.Conv2D(2, 3, activation="relu"))
    with pytest.raises(ValueError, match="Conv2D, Conv2DTranspose or Dense"):
        FoldedConvolution(keras.layers.DepthwiseConv2D(3))
    with pytest.raises(ValueError, match="phases"):
        FoldedConvolution(keras.layers.Conv2D(2, 3), phases="sometimes")


@pytest.mark.parametrize("amx", [True, False])
@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "float32"])
def test_auto_phases_follow_the_backend_the_precision_and_the_cpu_kind(monkeypatch, amx, dtype):
    """docs/performance.md section 0: the phase form pays on JAX, and on TensorFlow only in bfloat16
    on AMX; on AVX512-BF16 without AMX and in float32 the native transposed convolution is faster."""
    from keras_crvae import precision

    monkeypatch.setattr(precision, "cpu_has_amx", lambda: amx)
    transposed = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", dtype=dtype)
    folded = FoldedConvolution(transposed, keras.layers.BatchNormalization(dtype=dtype),
                               keras.layers.LeakyReLU(0.1, dtype=dtype), dtype=dtype)
    folded.build((2, 5, 5, 3))
    expected = keras.backend.backend() == "jax" or (dtype == "mixed_bfloat16" and amx)
    assert folded._uses_phases() == expected
    # Explicit choices win; a convolution that is not a transposed 4x4/2 one never takes phases.
    assert FoldedConvolution(transposed, phases=True, dtype=dtype)._uses_phases()
    assert not FoldedConvolution(transposed, phases=False, dtype=dtype)._uses_phases()
    assert not FoldedConvolution(keras.layers.Conv2D(4, 3, dtype=dtype), dtype=dtype)._uses_phases()
