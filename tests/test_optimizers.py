"""MultiplierAdam: per-variable learning rates and gradient clipping chosen by variable path."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae.optimizers import MultiplierAdam

pytestmark = pytest.mark.portable

LR = 0.1
BETA_2 = 0.999
EPSILON = 1e-8


def two_dense_model():
    """Dense 'plain_dense' (3 -> 2) then Dense 'slow_recurrence' (2 -> 1); 4 variables."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, name="plain_dense")(inputs)
    outputs = keras.layers.Dense(1, name="slow_recurrence")(hidden)
    return keras.Model(inputs, outputs)


def values(variables):
    return [ops.convert_to_numpy(v).copy() for v in variables]


def first_adam_step(gradient, lr):
    """Exact first Adam update: lr * sqrt(1-b2)/(1-b1) * m / (sqrt(v) + eps), m=(1-b1)g, v=(1-b2)g^2."""
    return -lr * np.sqrt(1 - BETA_2) * gradient / (np.sqrt(1 - BETA_2) * np.abs(gradient) + EPSILON)


def test_variable_paths_select_the_multiplier():
    """Only the 'slow_recurrence' layer's variables contain the pattern."""
    model = two_dense_model()
    matched = [v.path for v in model.trainable_variables if "recurrence" in v.path]
    assert matched == ["slow_recurrence/kernel", "slow_recurrence/bias"]


def test_first_step_moves_matched_variables_by_lr_times_multiplier():
    """Adam's first step is ~lr * sign(g): lr for 'plain_dense', lr/8 for 'slow_recurrence'."""
    model = two_dense_model()
    variables = model.trainable_variables
    before = values(variables)
    rng = np.random.default_rng(0)
    gradients = [np.where(rng.random(v.shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 5.0, v.shape)
                 for v in before]
    gradients = [g.astype("float32") for g in gradients]
    optimizer = MultiplierAdam(LR, lr_multipliers={"recurrence": 0.125})
    optimizer.apply(gradients, variables)
    for variable, old, gradient in zip(variables, before, gradients):
        delta = ops.convert_to_numpy(variable) - old
        scale = 0.125 if "recurrence" in variable.path else 1.0
        np.testing.assert_allclose(delta, first_adam_step(gradient, LR * scale), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(np.abs(delta), LR * scale, rtol=1e-4)
        np.testing.assert_array_equal(np.sign(delta), -np.sign(gradient))
    assert int(optimizer.iterations) == 1


def test_multiplier_applies_inside_fit():
    """One compiled training step (graph / jit on every backend) honours the multipliers too."""
    model = two_dense_model()
    model.compile(optimizer=MultiplierAdam(LR, lr_multipliers={"recurrence": 0.125}), loss="mse")
    before = values(model.trainable_variables)
    x = np.random.default_rng(1).standard_normal((8, 3)).astype("float32")
    y = np.full((8, 1), 10.0, "float32")  # far from the outputs: every gradient is clearly nonzero
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for variable, old in zip(model.trainable_variables, before):
        scale = 0.125 if "recurrence" in variable.path else 1.0
        np.testing.assert_allclose(np.abs(ops.convert_to_numpy(variable) - old), LR * scale, rtol=1e-3)


def test_first_matching_pattern_wins():
    """With {'recurrence': 0.5, 'slow': 0.25} the path 'slow_recurrence/...' uses 0.5."""
    model = two_dense_model()
    variables = model.trainable_variables
    before = values(variables)
    optimizer = MultiplierAdam(LR, lr_multipliers={"recurrence": 0.5, "slow": 0.25})
    optimizer.apply([np.ones(v.shape, "float32") for v in variables], variables)
    for variable, old in zip(variables, before):
        scale = 0.5 if "recurrence" in variable.path else 1.0
        np.testing.assert_allclose(old - ops.convert_to_numpy(variable), LR * scale, rtol=1e-4)


def test_clip_values_clip_only_matched_gradients():
    """Two steps with a huge then a small gradient: the matched variable follows plain Adam on the
    element-wise clipped gradients, the other follows plain Adam on the raw gradients."""
    model = two_dense_model()
    variables = model.trainable_variables
    start = values(variables)
    huge = [np.full(v.shape, 1e6, "float32") for v in variables]
    small = [np.full(v.shape, -0.01, "float32") for v in variables]
    clip = 0.05
    optimizer = MultiplierAdam(LR, clip_values={"recurrence": clip})
    optimizer.apply(huge, variables)
    optimizer.apply(small, variables)

    # Reference: plain Adam on copies, fed the hand-clipped gradients where the pattern matches.
    copies = [keras.Variable(value, name=f"copy_{i}") for i, value in enumerate(start)]
    reference = keras.optimizers.Adam(LR, epsilon=EPSILON)
    matched = ["recurrence" in v.path for v in variables]
    for step in (huge, small):
        reference.apply([np.clip(g, -clip, clip) if m else g for g, m in zip(step, matched)], copies)
    # rtol 1e-5: on TensorFlow the update is one fused ResourceApplyAdam kernel, whose float32
    # rounding differs from Keras' op-by-op update by a few ulps of each 0.1-sized step.
    for variable, copy in zip(variables, copies):
        np.testing.assert_allclose(ops.convert_to_numpy(variable), ops.convert_to_numpy(copy),
                                   rtol=1e-5, atol=1e-6)
    # Clipping made a real difference: plain Adam on the raw gradients ends elsewhere for the
    # matched variable (and at the same place for the other one).
    raw_copies = [keras.Variable(value, name=f"raw_{i}") for i, value in enumerate(start)]
    raw = keras.optimizers.Adam(LR, epsilon=EPSILON)
    for step in (huge, small):
        raw.apply(step, raw_copies)
    for variable, copy, is_matched in zip(variables, raw_copies, matched):
        gap = np.abs(ops.convert_to_numpy(variable) - ops.convert_to_numpy(copy)).max()
        assert (gap > 1e-3) if is_matched else (gap < 1e-5)  # 1e-5: the fused kernel's rounding
    # First moments after the two steps: beta_1 * (1 - beta_1) * g1 + (1 - beta_1) * g2, g1 clipped.
    slow, plain = variables[2], variables[0]
    assert "recurrence" in slow.path and "recurrence" not in plain.path
    slow_index = optimizer._get_variable_index(slow)
    plain_index = optimizer._get_variable_index(plain)
    np.testing.assert_allclose(ops.convert_to_numpy(optimizer._momentums[slow_index]),
                               0.9 * 0.1 * clip + 0.1 * -0.01, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(optimizer._momentums[plain_index]),
                               0.9 * 0.1 * 1e6 + 0.1 * -0.01, rtol=1e-5)


def test_config_round_trip():
    """get_config/from_config and keras serialization keep multipliers, clips, lr and epsilon."""
    optimizer = MultiplierAdam(0.003, lr_multipliers={"lstm": 0.25}, clip_values={"lstm": 5.0},
                               beta_1=0.5)
    config = optimizer.get_config()
    assert config["lr_multipliers"] == {"lstm": 0.25} and config["clip_values"] == {"lstm": 5.0}
    clone = MultiplierAdam.from_config(config)
    assert clone.lr_multipliers == {"lstm": 0.25} and clone.clip_values == {"lstm": 5.0}
    assert clone.epsilon == 1e-8 and clone.beta_1 == 0.5
    assert float(ops.convert_to_numpy(clone.learning_rate)) == pytest.approx(0.003)
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, MultiplierAdam) and restored.lr_multipliers == {"lstm": 0.25}
    assert MultiplierAdam(epsilon=1e-4).epsilon == 1e-4


@pytest.mark.parametrize("kwargs, match", [
    ({"lr_multipliers": {"lstm": -1.0}}, "lr_multipliers"),
    ({"lr_multipliers": {"lstm": 0.0}}, "lr_multipliers"),
    ({"clip_values": {"lstm": 0.0}}, "clip_values"),
    ({"clip_values": {3: 1.0}}, "clip_values"),
])
def test_invalid_rules_are_rejected(kwargs, match):
    """Multipliers and clip values must map string patterns to positive floats."""
    with pytest.raises(ValueError, match=match):
        MultiplierAdam(**kwargs)


def test_step_offset_schedule_continues_a_schedule_and_round_trips():
    from keras_crvae import presets
    from keras_crvae.optimizers import StepOffsetSchedule

    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.25])
    offset = StepOffsetSchedule(schedule, 15)
    assert [float(offset(step)) for step in (0, 5, 6, 100)] == [0.5, 0.5, 0.25, 0.25]
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(offset))
    assert isinstance(restored, StepOffsetSchedule) and float(restored(6)) == 0.25
    with pytest.raises(ValueError, match="offset"):
        StepOffsetSchedule(schedule, -1)
    # make_optimizer(start_step=...) continues a preset's schedule; a constant rate stays a constant.
    training = presets.get_preset("mnist_mlp_vae", epochs=3280).training
    resumed = presets.make_optimizer(training, steps_per_epoch=100, start_step=100 * 4 + 1)
    assert float(resumed.learning_rate) == pytest.approx(5.2e-4)
    constant = presets.make_optimizer(presets.get_preset("mnist_vae").training, start_step=7)
    assert float(constant.learning_rate) == pytest.approx(
        presets.get_preset("mnist_vae").training.learning_rate)
