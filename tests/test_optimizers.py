"""MultiplierAdam: per-variable learning rates and clipping (the reference's LR/T for LSTMs)."""

import keras
import numpy as np
import pytest

from keras_crvae.optimizers import MultiplierAdam

pytestmark = pytest.mark.portable


def _two_variables():
    keep = keras.Variable(np.zeros(3, "float32"), name="plain")
    slow = keras.Variable(np.zeros(3, "float32"), name="slow_recurrence")
    return keep, slow


def test_first_adam_step_is_scaled_by_the_multiplier():
    keep, slow = _two_variables()
    optimizer = MultiplierAdam(0.1, lr_multipliers={"recurrence": 0.125})
    gradient = np.array([1.0, -2.0, 3.0], "float32")
    optimizer.apply([gradient, gradient], [keep, slow])
    # Adam's first step is lr * g / (|g| + eps') ~ lr * sign(g).
    np.testing.assert_allclose(keep.numpy(), -0.1 * np.sign(gradient), rtol=1e-4)
    np.testing.assert_allclose(slow.numpy(), -0.0125 * np.sign(gradient), rtol=1e-4)


def test_clipping_applies_only_to_matched_variables():
    keep, slow = _two_variables()
    optimizer = MultiplierAdam(0.1, clip_values={"recurrence": 0.5})
    big = np.array([100.0, -100.0, 0.1], "float32")
    optimizer.apply([big, big], [keep, slow])
    slow_index = optimizer._get_variable_index(slow)
    keep_index = optimizer._get_variable_index(keep)
    # First moment after one step = (1 - beta_1) * clipped gradient.
    np.testing.assert_allclose(optimizer._momentums[slow_index].numpy(), 0.1 * np.clip(big, -0.5, 0.5),
                               rtol=1e-5)
    np.testing.assert_allclose(optimizer._momentums[keep_index].numpy(), 0.1 * big, rtol=1e-5)


def test_config_round_trip_and_validation():
    optimizer = MultiplierAdam(0.003, lr_multipliers={"lstm": 0.25}, clip_values={"lstm": 5.0})
    clone = MultiplierAdam.from_config(optimizer.get_config())
    assert clone.lr_multipliers == {"lstm": 0.25} and clone.clip_values == {"lstm": 5.0}
    assert clone.epsilon == 1e-8
    with pytest.raises(ValueError, match="lr_multipliers"):
        MultiplierAdam(lr_multipliers={"lstm": -1.0})
