"""ThresholdedAdam: Adam when the discriminator's accuracy is <= threshold, an exact no-op otherwise."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.optimizers import ThresholdedAdam


def make_problem():
    variable = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"), name="weights")
    gradient = ops.convert_to_tensor(np.array([0.5, -1.0, 2.0], "float32"))
    return variable, gradient


def adam_steps(gradient, steps, lr, factors=None):
    """Closed-form Adam with a constant gradient: returns the variable change after `steps`."""
    g = np.asarray(gradient, "float64")
    m = v = np.zeros_like(g)
    total = np.zeros_like(g)
    for t in range(1, steps + 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step_lr = lr * (factors[t - 1] if factors else 1.0)
        total -= step_lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-8)
    return total


@pytest.mark.portable
def test_updates_like_adam_when_accuracy_is_at_most_threshold():
    variable, gradient = make_problem()
    optimizer = ThresholdedAdam(0.1, threshold=0.9)
    for _ in range(2):
        assert float(optimizer.apply_thresholded([gradient], [variable], 0.9)) == 1.0
    expected = np.array([1.0, -2.0, 3.0]) + adam_steps(ops.convert_to_numpy(gradient), 2, 0.1)
    np.testing.assert_allclose(ops.convert_to_numpy(variable), expected, rtol=1e-5)
    assert int(optimizer.iterations) == 2


@pytest.mark.portable
def test_skipped_step_leaves_variables_moments_and_counter_bit_identical():
    variable, gradient = make_problem()
    optimizer = ThresholdedAdam(0.1, threshold=0.9)
    optimizer.apply_thresholded([gradient], [variable], 0.5)
    before = [ops.convert_to_numpy(v).copy() for v in [variable] + optimizer.variables]
    nan_gradient = ops.convert_to_tensor(np.array([np.nan, 1.0, 1e30], "float32"))
    for grad in (gradient, nan_gradient):
        assert float(optimizer.apply_thresholded([grad], [variable], 0.91)) == 0.0
    after = [ops.convert_to_numpy(v) for v in [variable] + optimizer.variables]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # The next allowed step continues Adam exactly where it stopped (step 2, not 4).
    optimizer.apply_thresholded([gradient], [variable], 0.0)
    expected = np.array([1.0, -2.0, 3.0]) + adam_steps(ops.convert_to_numpy(gradient), 2, 0.1)
    np.testing.assert_allclose(ops.convert_to_numpy(variable), expected, rtol=1e-5)


@pytest.mark.portable
def test_warmup_divides_the_learning_rate_by_applied_updates():
    variable, gradient = make_problem()
    optimizer = ThresholdedAdam(0.1, warmup=((1, 1 / 50), (2, 1 / 5)))
    for accuracy in (0.1, 1.0, 0.1, 0.1):  # the skipped call does not advance the warm-up
        optimizer.apply_thresholded([gradient], [variable], accuracy)
    expected = np.array([1.0, -2.0, 3.0]) + adam_steps(
        ops.convert_to_numpy(gradient), 3, 0.1, factors=[1 / 50, 1 / 5, 1.0])
    np.testing.assert_allclose(ops.convert_to_numpy(variable), expected, rtol=1e-5)


def test_works_inside_tf_function_with_xla():
    import tensorflow as tf

    variable, gradient = make_problem()
    optimizer = ThresholdedAdam(0.1)

    @tf.function(jit_compile=True)
    def step(accuracy):
        return optimizer.apply_thresholded([gradient], [variable], accuracy)

    assert float(step(tf.constant(0.2))) == 1.0
    snapshot = variable.numpy().copy()
    assert float(step(tf.constant(0.95))) == 0.0
    np.testing.assert_array_equal(variable.numpy(), snapshot)
    assert int(optimizer.iterations) == 1


@pytest.mark.portable
def test_config_round_trip_and_argument_errors():
    optimizer = ThresholdedAdam(0.01, threshold=0.8, warmup=((10, 0.02), (30, 0.2)),
                                lr_multipliers={"trunk": 0.5})
    clone = ThresholdedAdam.from_config(optimizer.get_config())
    assert clone.threshold == 0.8 and clone.warmup == ((10, 0.02), (30, 0.2))
    assert clone.lr_multipliers == {"trunk": 0.5}
    with pytest.raises(ValueError, match="threshold"):
        ThresholdedAdam(threshold=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        ThresholdedAdam(weight_decay=1e-4)
    with pytest.raises(ValueError, match="warmup"):
        ThresholdedAdam(warmup=((30, 0.2), (10, 0.02)))
