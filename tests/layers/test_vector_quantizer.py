"""VectorQuantizer: nearest codes, the straight-through gradient, the commitment loss, one EMA
step and a dead-code restart by hand, perplexity by hand, and the `.keras` round trip."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import VectorQuantizer, codebook_statistics
from tests.networks.autoregressive_checks import input_gradients

pytestmark = pytest.mark.portable

CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], "float32")


def quantizer_with_codebook(codebook=CODEBOOK, **kwargs):
    layer = VectorQuantizer(len(codebook), **kwargs)
    layer.build((None, codebook.shape[1]))
    layer.codebook.assign(codebook)
    layer.ema_sum.assign(codebook)
    return layer


def test_nearest_codes_quantized_values_and_commitment_by_hand():
    layer = quantizer_with_codebook(commitment_cost=0.5)
    inputs = np.array([[[0.1, 0.2], [0.9, 0.3]], [[0.2, 1.4], [-1.0, 0.0]]], "float32")
    quantized, codes, commitment = layer(inputs)
    np.testing.assert_array_equal(ops.convert_to_numpy(codes), [[0, 1], [2, 0]])
    expected = CODEBOOK[[[0, 1], [2, 0]]]
    np.testing.assert_allclose(ops.convert_to_numpy(quantized), expected, atol=1e-6)
    squared = ((inputs - expected) ** 2).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(ops.convert_to_numpy(commitment), 0.5 * squared, rtol=1e-5)


def test_straight_through_and_commitment_gradients():
    layer = quantizer_with_codebook(commitment_cost=0.25)
    inputs = np.array([[0.1, 0.2], [0.9, 0.3], [0.2, 1.4]], "float32")
    weights = np.random.default_rng(0).normal(size=inputs.shape).astype("float32")
    # d/dz sum(w * quantized) = w exactly: the quantization step is skipped backwards.
    gradient = input_gradients(lambda z: layer(z)[0], inputs, weights)
    np.testing.assert_allclose(gradient, weights, rtol=1e-6)
    # d/dz beta * ||z - sg(e)||^2 = 2 beta (z - e): the codebook receives no gradient.
    gradient = input_gradients(lambda z: layer(z)[2], inputs, np.ones(3, "float32"))
    expected = 2 * 0.25 * (inputs - CODEBOOK[[0, 1, 2]])
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)


def test_one_ema_step_by_hand():
    decay, epsilon = 0.9, 1e-5
    layer = quantizer_with_codebook(decay=decay, epsilon=epsilon, restart_threshold=0.0)
    inputs = np.array([[0.2, 0.1], [0.4, -0.1], [0.8, 0.2], [0.1, 1.8]], "float32")  # 0, 0, 1, 2
    layer(inputs, training=True)
    counts = np.array([2.0, 1.0, 1.0])
    sums = np.stack([inputs[:2].sum(0), inputs[2], inputs[3]])
    count = decay * 1.0 + (1 - decay) * counts
    ema_sum = decay * CODEBOOK + (1 - decay) * sums
    total = count.sum()
    smoothed = (count + epsilon) / (total + 3 * epsilon) * total
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_count), count, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_sum), ema_sum, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.codebook), ema_sum / smoothed[:, None],
                               rtol=1e-5, atol=1e-7)
    # Inference leaves the codebook alone.
    before = ops.convert_to_numpy(layer.codebook)
    layer(inputs, training=False)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.codebook), before)


def test_dead_codes_restart_on_batch_vectors():
    codebook = np.array([[0.0, 0.0], [50.0, 50.0], [-50.0, 50.0]], "float32")  # 1, 2 never used
    layer = quantizer_with_codebook(codebook, decay=0.5, restart_threshold=0.8, seed=3)
    inputs = np.random.default_rng(0).normal(size=(6, 2)).astype("float32")
    layer(inputs, training=True)
    new = ops.convert_to_numpy(layer.codebook)
    count = ops.convert_to_numpy(layer.ema_count)
    # Codes 1 and 2: count 0.5 * 1 + 0.5 * 0 = 0.5 < 0.8 -> restarted onto batch vectors.
    for code in (1, 2):
        assert np.abs(inputs - new[code]).sum(axis=1).min() < 1e-6
        assert count[code] == pytest.approx(0.8)
        np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_sum)[code], 0.8 * new[code],
                                   rtol=1e-6)
    assert count[0] == pytest.approx(0.5 + 0.5 * 6)  # the live code keeps its EMA
    _, codes, _ = layer(inputs)
    assert len(np.unique(ops.convert_to_numpy(codes))) > 1  # the restarted codes are used now


def test_perplexity_and_usage_by_hand():
    codes = np.array([0, 0, 1, 3, 3, 3, 3, 3])
    p = np.array([2, 1, 0, 5]) / 8
    perplexity, usage = codebook_statistics(codes, 4)
    expected = math.exp(-sum(x * math.log(x) for x in p if x > 0))
    assert float(perplexity) == pytest.approx(expected, rel=1e-5)
    assert float(usage) == pytest.approx(0.75)
    uniform, usage = codebook_statistics(np.arange(8) % 4, 4)
    assert float(uniform) == pytest.approx(4.0, rel=1e-5) and float(usage) == 1.0


def test_round_trip(run_layer_test):
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    layer, _ = run_layer_test(VectorQuantizer, dict(num_codes=8, seed=1), inputs,
                              expected_trainable_weights=0, expected_non_trainable_weights=3)
    assert {w.name for w in layer.non_trainable_weights} >= {"codebook", "ema_count", "ema_sum"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_codes=1), "num_codes"), (dict(num_codes=4, decay=1.0), "decay"),
    (dict(num_codes=4, commitment_cost=-1), "commitment_cost"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**kwargs)
