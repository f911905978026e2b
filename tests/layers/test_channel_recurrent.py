"""ChannelRecurrentLatent and the channel-block layout (Torch NCHW `View(T, w*w*C/T)`)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import ChannelRecurrentLatent, blocks_to_channels, channels_to_blocks

pytestmark = pytest.mark.portable


def coded_map(batch=1, height=2, width=2, channels=8):
    """x[b, r, c, k] = 1000*b + 100*k + 10*r + c, so every value names its own position."""
    b, r, c, k = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width),
                             np.arange(channels), indexing="ij")
    return (1000 * b + 100 * k + 10 * r + c).astype("float32")


def random_map(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# --- channels_to_blocks / blocks_to_channels -------------------------------------------------------

# Written out by hand from Torch semantics: an NCHW tensor viewed as (T, w*w*C/T) puts channels
# [t*C/T, (t+1)*C/T) in row t, each channel flattened row-major over (row, col).
EXPECTED_BLOCKS = {
    2: [[0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211, 300, 301, 310, 311],
        [400, 401, 410, 411, 500, 501, 510, 511, 600, 601, 610, 611, 700, 701, 710, 711]],
    4: [[0, 1, 10, 11, 100, 101, 110, 111],
        [200, 201, 210, 211, 300, 301, 310, 311],
        [400, 401, 410, 411, 500, 501, 510, 511],
        [600, 601, 610, 611, 700, 701, 710, 711]],
    8: [[0, 1, 10, 11], [100, 101, 110, 111], [200, 201, 210, 211], [300, 301, 310, 311],
        [400, 401, 410, 411], [500, 501, 510, 511], [600, 601, 610, 611], [700, 701, 710, 711]],
}


@pytest.mark.parametrize("num_blocks", [2, 4, 8])
def test_channels_to_blocks_follows_torch_nchw_view(num_blocks):
    """Block t of a (1, 2, 2, 8) map holds channels of block t flattened as (channel, row, col)."""
    x = coded_map()
    assert x[0, 1, 0, 3] == 310  # the code: 100*k + 10*r + c
    blocks = ops.convert_to_numpy(channels_to_blocks(ops.convert_to_tensor(x), num_blocks))
    assert blocks.shape == (1, num_blocks, 8 // num_blocks * 4)
    np.testing.assert_array_equal(blocks[0], np.array(EXPECTED_BLOCKS[num_blocks], "float32"))


def test_channels_to_blocks_non_square_map_and_batch_rows():
    """Rows and columns are not mixed up on a 2x3 map, and batch rows stay separate."""
    x = coded_map(batch=2, height=2, width=3, channels=2)
    blocks = ops.convert_to_numpy(channels_to_blocks(ops.convert_to_tensor(x), 2))
    np.testing.assert_array_equal(blocks[0], [[0, 1, 2, 10, 11, 12], [100, 101, 102, 110, 111, 112]])
    np.testing.assert_array_equal(blocks[1], blocks[0] + 1000)


@pytest.mark.parametrize("num_blocks", [2, 4, 8])
def test_blocks_to_channels_inverts_channels_to_blocks(num_blocks):
    """The inverse gives back the hand-built map exactly, and maps the hand-written blocks to it."""
    x = coded_map()
    blocks = channels_to_blocks(ops.convert_to_tensor(x), num_blocks)
    np.testing.assert_array_equal(ops.convert_to_numpy(blocks_to_channels(blocks, 2, 2)), x)
    written = ops.convert_to_tensor(np.array([EXPECTED_BLOCKS[num_blocks]], "float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(blocks_to_channels(written, 2, 2)), x)
    y = random_map((3, 4, 4, 16))
    back = blocks_to_channels(channels_to_blocks(ops.convert_to_tensor(y), num_blocks), 4, 4)
    np.testing.assert_array_equal(ops.convert_to_numpy(back), y)


def test_layout_helpers_reject_bad_sizes():
    """Non-dividing T (and block sizes that are not whole channels) are clear errors."""
    with pytest.raises(ValueError, match="time_steps"):
        channels_to_blocks(ops.zeros((1, 2, 2, 6)), 4)
    with pytest.raises(ValueError, match="height\\*width"):
        blocks_to_channels(ops.zeros((1, 2, 6)), 2, 2)


# --- shapes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("time_steps", [4, 8, 16])
@pytest.mark.parametrize("mean_head", ["conv", "dense"])
def test_inference_half_shapes(time_steps, mean_head):
    """h (2, 4, 4, 32) -> mean, log_var (2, 4, 4, 16); LSTM sizes are w*w*C/T, Dense to w*w*Z/T."""
    block = ChannelRecurrentLatent("inference", latent_channels=16, time_steps=time_steps,
                                   mean_head=mean_head)
    mean, log_var = block(random_map((2, 4, 4, 32)))
    assert tuple(mean.shape) == (2, 4, 4, 16) and tuple(log_var.shape) == (2, 4, 4, 16)
    assert block.compute_output_shape((None, 4, 4, 32)) == [(None, 4, 4, 16)] * 2
    block_size = hidden = 16 * 32 // time_steps
    assert tuple(block.lstms[0].cell.kernel.shape) == (block_size, 4 * hidden)
    assert tuple(block.lstms[1].cell.kernel.shape) == (hidden, 4 * hidden)
    assert tuple(block.step_projection.kernel.shape) == (hidden, 16 * 16 // time_steps)
    if mean_head == "conv":
        assert tuple(block.mean_projection.kernel.shape) == (3, 3, 32, 16)
    else:
        assert tuple(block.mean_projection.kernel.shape) == (16 * 32, 16 * 16)


@pytest.mark.parametrize("time_steps", [4, 8, 16])
def test_generation_half_shapes(time_steps):
    """z (2, 4, 4, 16) -> decoder input (2, 4, 4, 16); hidden_channels sets the LSTM size."""
    block = ChannelRecurrentLatent("generation", latent_channels=16, time_steps=time_steps,
                                   hidden_channels=32)
    out = block(random_map((2, 4, 4, 16)))
    assert tuple(out.shape) == (2, 4, 4, 16)
    assert block.compute_output_shape((None, 4, 4, 16)) == (None, 4, 4, 16)
    hidden = 16 * 32 // time_steps
    assert tuple(block.lstms[0].cell.kernel.shape) == (16 * 16 // time_steps, 4 * hidden)
    assert tuple(block.step_projection.kernel.shape) == (hidden, 16 * 16 // time_steps)
    assert block.mean_projection is None


def test_inference_mean_is_head_plus_bias_and_log_var_comes_from_the_recurrence():
    """mean = conv(h) + mu0 exactly; log_var is the reassembled per-step Dense of the LSTM."""
    block = ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4, lstm_layers=1)
    h = ops.convert_to_tensor(random_map((2, 4, 4, 8), seed=1))
    mean, log_var = block(h)
    expected_mean = ops.convert_to_numpy(block.mean_projection(h)) + ops.convert_to_numpy(block.bias.bias)
    np.testing.assert_allclose(ops.convert_to_numpy(mean), expected_mean, atol=1e-6)
    steps = block.step_projection(block.lstms[0](channels_to_blocks(h, 4)))
    np.testing.assert_allclose(ops.convert_to_numpy(log_var),
                               ops.convert_to_numpy(blocks_to_channels(steps, 4, 4)), atol=1e-6)


def test_log_variance_of_block_t_depends_only_on_feature_blocks_up_to_t():
    """The recurrence runs forward over channel blocks: changing channel block 3 of h leaves the
    log-variance of latent blocks 0..2 unchanged and moves block 3."""
    keras.utils.set_random_seed(0)
    block = ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4, lstm_layers=1)
    h = random_map((1, 2, 2, 8))
    changed = h.copy()
    changed[..., 6:8] += 1.0  # channels of block 3
    delta = np.abs(ops.convert_to_numpy(block(changed)[1]) - ops.convert_to_numpy(block(h)[1]))
    assert delta[..., :6].max() < 1e-6 and delta[..., 6:].max() > 1e-4


def test_recurrent_batch_norm_normalises_lstm_outputs_in_training():
    """With recurrent_batch_norm the layer owns a BatchNormalization whose moving stats update
    only in training mode, and training/inference outputs differ."""
    keras.utils.set_random_seed(0)
    block = ChannelRecurrentLatent("inference", latent_channels=16, time_steps=4,
                                   recurrent_batch_norm=True)
    h = random_map((4, 4, 4, 16), seed=2)
    _, inference = block(h, training=False)
    assert isinstance(block.batch_norm, keras.layers.BatchNormalization)
    moving_mean = ops.convert_to_numpy(block.batch_norm.moving_mean).copy()
    np.testing.assert_array_equal(moving_mean, 0.0)
    _, training = block(h, training=True)
    assert np.abs(ops.convert_to_numpy(block.batch_norm.moving_mean)).max() > 0
    assert np.abs(ops.convert_to_numpy(training) - ops.convert_to_numpy(inference)).max() > 1e-4
    plain = ChannelRecurrentLatent("inference", latent_channels=16, time_steps=4)
    plain(h)
    assert plain.batch_norm is None


def test_generation_return_u_gives_decoder_input_and_u():
    """return_u=True returns [u + b, u]; their difference is the learned bias weight."""
    block = ChannelRecurrentLatent("generation", latent_channels=16, time_steps=8,
                                   hidden_channels=32, return_u=True, bias_init_range=0.5)
    decoder_input, u = block(random_map((3, 4, 4, 16), seed=1))
    bias = ops.convert_to_numpy(block.bias.bias)
    assert bias.shape == (4, 4, 16) and np.abs(bias).max() > 0.01 and np.abs(bias).max() <= 0.5
    np.testing.assert_allclose(ops.convert_to_numpy(decoder_input) - ops.convert_to_numpy(u),
                               np.broadcast_to(bias, (3, 4, 4, 16)), atol=1e-6)


# --- errors ------------------------------------------------------------------------------------------

def test_time_steps_that_do_not_divide_channels_are_rejected():
    """T must divide latent_channels (constructor), hidden_channels, and the input channels (build)."""
    with pytest.raises(ValueError, match="time_steps"):
        ChannelRecurrentLatent("inference", latent_channels=10, time_steps=4)
    with pytest.raises(ValueError, match="time_steps"):
        ChannelRecurrentLatent("generation", latent_channels=8, time_steps=4, hidden_channels=6)
    block = ChannelRecurrentLatent("inference", latent_channels=8, time_steps=8)
    with pytest.raises(ValueError, match="time_steps"):
        block(ops.ones((1, 4, 4, 12)))
    with pytest.raises(ValueError, match="time_steps"):
        ChannelRecurrentLatent("inference", latent_channels=8, time_steps=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"role": "both"}, "role"),
    ({"role": "inference", "mean_head": "mlp"}, "mean_head"),
    ({"role": "inference", "lstm_bias_init": "ones"}, "lstm_bias_init"),
    ({"role": "inference", "lstm_layers": 0}, "lstm_layers"),
    ({"role": "inference", "return_u": True}, "return_u"),
])
def test_bad_arguments_are_named(kwargs, match):
    """Every invalid constructor argument raises a ValueError naming it."""
    with pytest.raises(ValueError, match=match):
        ChannelRecurrentLatent(**kwargs)


def test_unknown_spatial_size_is_rejected():
    """The layer needs a static (h, w, C) to size its LSTM."""
    block = ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4)
    with pytest.raises(ValueError, match="static"):
        block.build((None, None, None, 8))


# --- initialisation ------------------------------------------------------------------------------------

def test_forget_gate_bias_starts_at_one():
    """Keras LSTM bias is [i, f, c, o], each `units` long: f is 1, the others 0, in every layer."""
    block = ChannelRecurrentLatent("inference", latent_channels=8, time_steps=4, lstm_layers=2)
    block(ops.ones((1, 4, 4, 8)))
    for lstm in block.lstms:
        bias = ops.convert_to_numpy(lstm.cell.bias)
        units = lstm.units
        assert units == 4 * 4 * 8 // 4 and bias.shape == (4 * units,)
        np.testing.assert_array_equal(bias[:units], 0.0)
        np.testing.assert_array_equal(bias[units:2 * units], 1.0)
        np.testing.assert_array_equal(bias[2 * units:], 0.0)


def test_lstm_bias_init_zeros():
    """lstm_bias_init='zeros' starts every gate bias at 0."""
    block = ChannelRecurrentLatent("generation", latent_channels=8, time_steps=4,
                                   lstm_layers=1, lstm_bias_init="zeros")
    block(ops.ones((1, 4, 4, 8)))
    np.testing.assert_array_equal(ops.convert_to_numpy(block.lstms[0].cell.bias), 0.0)


# --- serialization -------------------------------------------------------------------------------------

def test_generation_half_round_trips(run_layer_test):
    """Generation + return_u: 2 LSTMs x (kernel, recurrent kernel, bias) + Dense (2) + b (1) = 9."""
    config = dict(role="generation", latent_channels=16, time_steps=8, hidden_channels=32,
                  return_u=True)
    layer, (decoder_input, u) = run_layer_test(ChannelRecurrentLatent, config,
                                               random_map((3, 4, 4, 16), seed=1),
                                               expected_trainable_weights=9)
    assert tuple(u.shape) == (3, 4, 4, 16)


def test_inference_half_with_batch_norm_round_trips(run_layer_test):
    """Dense head + BN: 6 LSTM + BN gamma/beta (2) + step Dense (2) + mean Dense (2) + mu0 (1) = 13
    trainable, BN moving mean/variance = 2 non-trainable."""
    config = dict(role="inference", latent_channels=16, time_steps=4, mean_head="dense",
                  recurrent_batch_norm=True)
    run_layer_test(ChannelRecurrentLatent, config, random_map((2, 4, 4, 16), seed=2),
                   expected_trainable_weights=13, expected_non_trainable_weights=2)


def test_inference_half_conv_head_single_lstm_round_trips(run_layer_test):
    """Conv head, one LSTM: 3 LSTM + step Dense (2) + conv (2) + mu0 (1) = 8."""
    config = dict(role="inference", latent_channels=8, time_steps=4, lstm_layers=1)
    run_layer_test(ChannelRecurrentLatent, config, random_map((2, 2, 2, 8), seed=3),
                   expected_trainable_weights=8, expected_non_trainable_weights=0)
