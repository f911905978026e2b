"""Layers: the channel-block layout against Torch's NCHW View, shapes, errors, serialization."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import layers
from keras_crvae.layers import sampling

pytestmark = pytest.mark.portable


def assert_layer_round_trips(layer, inputs, tmp_path, expected_trainable_weights):
    """Builds and calls `layer`, checks weight count, `from_config` and a `.keras` round trip."""
    outputs = layer(inputs)
    assert len(layer.trainable_weights) == expected_trainable_weights
    clone = layer.__class__.from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(outputs), keras.tree.flatten(clone(inputs))):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-6)
    model_input = keras.Input(tuple(inputs.shape[1:]))
    model = keras.Model(model_input, layer.__class__.from_config(layer.get_config())(model_input))
    model.set_weights(layer.get_weights())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(keras.tree.flatten(model(inputs)), keras.tree.flatten(loaded(inputs))):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-6)
    return outputs


def test_channel_blocks_follow_torch_nchw_view():
    """x[r, c, k] = 100*k + 10*r + c; block t must hold channels 2t, 2t+1 flattened (k, r, c)."""
    x = np.zeros((1, 2, 2, 8), "float32")
    for r in range(2):
        for c in range(2):
            for k in range(8):
                x[0, r, c, k] = 100 * k + 10 * r + c
    blocks = ops.convert_to_numpy(layers.channels_to_blocks(ops.convert_to_tensor(x), 4))
    expected = [
        [0, 1, 10, 11, 100, 101, 110, 111],
        [200, 201, 210, 211, 300, 301, 310, 311],
        [400, 401, 410, 411, 500, 501, 510, 511],
        [600, 601, 610, 611, 700, 701, 710, 711],
    ]
    np.testing.assert_array_equal(blocks[0], np.array(expected, "float32"))
    back = layers.blocks_to_channels(ops.convert_to_tensor(blocks), 2, 2)
    np.testing.assert_array_equal(ops.convert_to_numpy(back), x)


@pytest.mark.parametrize("time_steps", [4, 8, 16])
@pytest.mark.parametrize("mean_head", ["conv", "dense"])
def test_inference_half_shapes(time_steps, mean_head):
    block = layers.ChannelRecurrentLatent("inference", latent_channels=32, time_steps=time_steps,
                                          mean_head=mean_head)
    mean, log_var = block(ops.ones((2, 4, 4, 64)))
    assert tuple(mean.shape) == (2, 4, 4, 32) and tuple(log_var.shape) == (2, 4, 4, 32)
    # LSTM input/hidden size w*w*C/T, per-step Dense to w*w*Z/T (DESIGN.md section 4).
    assert tuple(block.lstms[0].cell.kernel.shape) == (16 * 64 // time_steps, 4 * 16 * 64 // time_steps)
    assert tuple(block.step_projection.kernel.shape) == (16 * 64 // time_steps, 16 * 32 // time_steps)


def test_log_variance_of_block_t_depends_only_on_feature_blocks_up_to_t():
    """The recurrence runs forward over channel blocks: changing block 3 of h cannot move the
    log-variance of latent blocks 0..2, and must move block 3."""
    keras.utils.set_random_seed(0)
    block = layers.ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4,
                                          lstm_layers=1)
    h = np.random.default_rng(0).standard_normal((1, 2, 2, 8)).astype("float32")
    changed = h.copy()
    changed[..., 6:8] += 1.0  # channels of block 3
    _, base = block(h)
    _, moved = block(changed)
    delta = np.abs(ops.convert_to_numpy(moved) - ops.convert_to_numpy(base))
    assert delta[..., :6].max() < 1e-6 and delta[..., 6:].max() > 1e-4


def test_generation_half_returns_u_and_bias(tmp_path):
    block = layers.ChannelRecurrentLatent("generation", latent_channels=16, time_steps=8,
                                          hidden_channels=32, return_u=True)
    z = ops.convert_to_tensor(np.random.default_rng(1).standard_normal((3, 4, 4, 16)), "float32")
    decoder_input, u = block(z)
    np.testing.assert_allclose(ops.convert_to_numpy(decoder_input - u),
                               np.broadcast_to(ops.convert_to_numpy(block.bias.bias), (3, 4, 4, 16)),
                               atol=1e-6)
    # 2 LSTMs x (kernel, recurrent kernel, bias) + Dense (2) + bias (1) = 9.
    assert_layer_round_trips(block, z, tmp_path, expected_trainable_weights=9)


def test_inference_half_round_trips_with_batch_norm(tmp_path):
    block = layers.ChannelRecurrentLatent("inference", latent_channels=16, time_steps=4,
                                          mean_head="dense", recurrent_batch_norm=True)
    h = ops.convert_to_tensor(np.random.default_rng(2).standard_normal((2, 4, 4, 16)), "float32")
    # 6 LSTM + BN gamma/beta 2 + Dense 2 + mean Dense 2 + mu0 1 = 13.
    assert_layer_round_trips(block, h, tmp_path, expected_trainable_weights=13)


def test_forget_gate_bias_starts_at_one():
    block = layers.ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4)
    block(ops.ones((1, 4, 4, 8)))
    bias = ops.convert_to_numpy(block.lstms[0].cell.bias)
    units = bias.shape[0] // 4  # Keras gate order: input, forget, cell, output
    np.testing.assert_array_equal(bias[units:2 * units], 1.0)
    np.testing.assert_array_equal(bias[:units], 0.0)


def test_time_steps_that_do_not_divide_channels_are_rejected():
    with pytest.raises(ValueError, match="time_steps"):
        layers.ChannelRecurrentLatent("inference", latent_channels=10, time_steps=4)
    block = layers.ChannelRecurrentLatent("inference", latent_channels=8, time_steps=8)
    with pytest.raises(ValueError, match="time_steps"):
        block(ops.ones((1, 4, 4, 12)))
    with pytest.raises(ValueError, match="role"):
        layers.ChannelRecurrentLatent("both")


def test_concatenated_relu_by_hand(tmp_path):
    x = ops.convert_to_tensor([[[[1.0, -2.0]]]])
    out = assert_layer_round_trips(layers.ConcatenatedReLU(), x, tmp_path, 0)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [[[[1.0, 0.0, 0.0, 2.0]]]])


def test_elementwise_bias(tmp_path):
    layer = layers.ElementwiseBias(0.01)
    out = assert_layer_round_trips(layer, ops.zeros((2, 3, 4)), tmp_path, 1)
    bias = ops.convert_to_numpy(layer.bias)
    assert bias.shape == (3, 4) and np.abs(bias).max() <= 0.01 and np.abs(bias).max() > 0
    np.testing.assert_array_equal(ops.convert_to_numpy(out)[1], bias)


def test_sampler_kl_matches_closed_form_and_samples_have_the_right_moments(tmp_path):
    mean = np.tile(np.array([[1.0, -2.0, 0.5]], "float32"), (4000, 1))
    log_var = np.tile(np.array([[0.0, -1.0, 1.0]], "float32"), (4000, 1))
    sampler = layers.GaussianSampler(seed=3)
    z, kl = sampler([ops.convert_to_tensor(mean), ops.convert_to_tensor(log_var)])
    expected_kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var)
    np.testing.assert_allclose(ops.convert_to_numpy(kl), expected_kl, rtol=1e-5)
    z = ops.convert_to_numpy(z)
    np.testing.assert_allclose(z.mean(0), mean[0], atol=0.1)
    np.testing.assert_allclose(z.std(0), np.exp(0.5 * log_var[0]), rtol=0.06)
    again = layers.GaussianSampler(seed=3)([ops.convert_to_tensor(mean), ops.convert_to_tensor(log_var)])
    np.testing.assert_array_equal(ops.convert_to_numpy(again[0]), z)
    assert layers.GaussianSampler.from_config(sampler.get_config()).seed == 3


def test_sampler_round_trips_through_a_keras_file(tmp_path):
    mean_input, log_var_input = keras.Input((3,)), keras.Input((3,))
    z, kl = layers.GaussianSampler(seed=5, use_tfp=False)([mean_input, log_var_input])
    model = keras.Model([mean_input, log_var_input], [z, kl])
    model.save(tmp_path / "sampler.keras")
    loaded = keras.saving.load_model(tmp_path / "sampler.keras")
    sampler = [layer for layer in loaded.layers if isinstance(layer, layers.GaussianSampler)][0]
    assert sampler.seed == 5 and sampler.use_tfp is False
    inputs = [np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")]
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(inputs)[1]), 0.5, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TFP path is TensorFlow-only")
def test_tfp_and_keras_ops_paths_give_the_same_numbers():
    rng = np.random.default_rng(1)
    mean = ops.convert_to_tensor(rng.standard_normal((8, 4, 4, 6)), "float32")
    log_var = ops.convert_to_tensor(rng.standard_normal((8, 4, 4, 6)), "float32")
    with_tfp = layers.GaussianSampler(seed=7, use_tfp=True)
    assert with_tfp.uses_tfp
    z_tfp, kl_tfp = with_tfp([mean, log_var])
    z_ops, kl_ops = layers.GaussianSampler(seed=7, use_tfp=False)([mean, log_var])
    np.testing.assert_allclose(ops.convert_to_numpy(z_tfp), ops.convert_to_numpy(z_ops), atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(kl_tfp), ops.convert_to_numpy(kl_ops), atol=1e-5)
    assert type(kl_tfp).__module__.startswith("tensorflow")
    np.testing.assert_allclose(
        ops.convert_to_numpy(sampling.gaussian_kl_to_standard_normal(mean, log_var, use_tfp=True)),
        ops.convert_to_numpy(sampling.gaussian_kl_to_standard_normal(mean, log_var)), atol=1e-5)


def test_tfp_on_another_backend_is_a_clear_error():
    if keras.backend.backend() == "tensorflow":
        pytest.skip("only meaningful off the TensorFlow backend")
    with pytest.raises(ValueError, match="use_tfp"):
        layers.GaussianSampler(use_tfp=True)
