"""tools/studies/batch_norm_inputs.py: per-layer batch-to-batch movement of BatchNorm inputs."""

import pathlib
import sys

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import batch_norm_inputs  # noqa: E402


def test_channel_statistics_by_hand():
    means = np.array([[0.0, 1.0], [2.0, 1.0]])  # channel 0 moves by 2, channel 1 not at all
    variances = np.array([[1.0, 4.0], [1.0, 4.0]])
    ratios, offsets = batch_norm_inputs.channel_statistics(means, variances, np.array([3.0, 1.0]))
    np.testing.assert_allclose(ratios, [1.0, 0.0], atol=1e-9)  # std of (0, 2) is 1; within 1, 2
    np.testing.assert_allclose(offsets, [2.0, 0.0], atol=1e-9)  # |3 - 1| / 1, |1 - 1| / 2
    np.testing.assert_allclose(batch_norm_inputs.variance_ratios(variances, np.array([2.0, 1.0])),
                               [2.0, 0.25], atol=1e-9)


def test_measure_pass_reads_each_batch_and_restores_the_momentum():
    inputs = keras.Input((3,))
    network = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.9)(inputs))
    rng = np.random.default_rng(0)
    # Batch k: channel 0 offset by 10 k (moves), channels 1-2 the same distribution every batch.
    batches = [np.concatenate([rng.standard_normal((64, 1)) + 10.0 * k,
                               rng.standard_normal((64, 2))], axis=1).astype("float32")
               for k in range(4)]
    rows = batch_norm_inputs.measure_pass(network, batches,
                                          lambda batch: network(batch, training=True))
    (row,) = rows
    assert row["channels"] == 3
    assert row["ratio_max"] > 5  # channel 0: batch means 0, 10, 20, 30 (std ~11) against std ~1
    assert row["ratio_median"] < 0.5  # channels 1-2: ~1/sqrt(64) of movement
    assert network.layers[-1].momentum == 0.9
    # The moving variance is still its initial 1: the ratios are 1 / the mean (biased) batch variance.
    expected = 1.0 / np.mean([batch.var(axis=0) for batch in batches], axis=0)
    assert abs(row["variance_ratio_max"] - expected.max()) < 1e-3
    assert abs(row["variance_ratio_min"] - expected.min()) < 1e-3
