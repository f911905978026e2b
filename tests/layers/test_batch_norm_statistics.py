"""`average_batch_norm_statistics`: moving statistics re-estimated as plain averages ("precise BN")."""

import keras
import numpy as np
import pytest

from keras_crvae import layers


def network():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="dense"),
                             layers.BatchNormalization(momentum=0.1, name="bn"),
                             keras.Sequential([keras.layers.BatchNormalization(name="inner_bn")],
                                              name="nested")])


@pytest.mark.portable
def test_moving_statistics_become_the_average_of_the_batch_statistics():
    model = network()
    batches = [np.random.default_rng(seed).normal(seed, 1 + seed, (5, 3)).astype("float32")
               for seed in range(3)]
    kernel_before = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    assert layers.average_batch_norm_statistics(model, batches) == 2  # the nested one found too
    dense = [keras.ops.convert_to_numpy(model.get_layer("dense")(b)).astype("float64")
             for b in batches]
    norm = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_mean),
                               np.mean([d.mean(0) for d in dense], 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_variance),
                               np.mean([d.var(0) for d in dense], 0), rtol=1e-4, atol=1e-6)
    assert norm.momentum == 0.1 and model.get_layer("nested").layers[0].momentum == 0.99
    np.testing.assert_array_equal(kernel_before,
                                  keras.ops.convert_to_numpy(model.get_layer("dense").kernel))


@pytest.mark.portable
def test_momenta_are_restored_when_a_call_fails_and_nothing_runs_without_batch_norm():
    model = network()

    def failing(batch):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        layers.average_batch_norm_statistics(model, [np.zeros((2, 3), "float32")], call=failing)
    assert [n.momentum for n in layers.batch_norm_layers(model)] == [0.1, 0.99]
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert layers.average_batch_norm_statistics(plain, [None], call=failing) == 0
