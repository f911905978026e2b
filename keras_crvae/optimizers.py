"""Optimizers with the reference's per-part learning rates and gradient clipping.

The crVAE MNIST reference (`train_test/train_test_lstm_mnist.lua` of WendyShang/crVAE) keeps one Adam
state per sub-network: the convolutional encoder/decoder learn at `LR`, the channel-recurrent parts
(`var_encoder`, `var_decoder`) at `LR / T`, and the recurrent parts' gradients are clamped element-wise
to `[-grad_clip, grad_clip]` (`-grad_clip 5`). Keras optimizers have one learning rate, so
`MultiplierAdam` applies per-variable learning-rate multipliers and clip values chosen by a substring
of each variable's path. It runs on every Keras backend (it only overrides `update_step`).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_crvae")
class StepOffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule continued from step `offset`: `rate(step) = schedule(step + offset)`.

    A run resumed from weights alone (a fresh optimizer whose step counter starts at 0 again, e.g.
    `tools/reproduce/reproduction.py` across sessions) keeps its place in the schedule this way, while Adam
    restarts its moments with their bias correction from step 0.

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule`.
        offset: int >= 0, the optimizer steps already taken.
    """

    def __init__(self, schedule, offset):
        if int(offset) < 0:
            raise ValueError(f"`offset` must be >= 0, got {offset}.")
        self.schedule = schedule
        self.offset = int(offset)

    def __call__(self, step):
        return self.schedule(step + self.offset)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_crvae")
class MultiplierAdam(keras.optimizers.Adam):
    """Adam whose learning rate and gradient clipping can differ per variable.

    A variable whose `path` contains `pattern` (the first matching pattern in insertion order wins)
    updates with `learning_rate * lr_multipliers[pattern]` and has its gradient clipped element-wise to
    `[-clip_values[pattern], clip_values[pattern]]`. Other variables behave as in plain Adam.

    Args:
        learning_rate: float or schedule, default 0.001.
        lr_multipliers: dict `{path_substring: float}`, default `{}`.
        clip_values: dict `{path_substring: float}`, default `{}`.
        **kwargs: passed to `keras.optimizers.Adam` (beta_1, beta_2, epsilon, ...).

    >>> optimizer = MultiplierAdam(3e-3, lr_multipliers={"recurrence": 1 / 8},
    ...                            clip_values={"recurrence": 5.0})

    Reference: the four Adam states of `train_test/train_test_lstm_mnist.lua` (WendyShang/crVAE).
    """

    def __init__(self, learning_rate=0.001, lr_multipliers=None, clip_values=None, **kwargs):
        kwargs.setdefault("epsilon", 1e-8)  # docs/design.md section 5: Adam eps=1e-8.
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self.clip_values = dict(clip_values or {})
        for name, table in (("lr_multipliers", self.lr_multipliers),
                            ("clip_values", self.clip_values)):
            for pattern, value in table.items():
                if not isinstance(pattern, str) or float(value) <= 0:
                    raise ValueError(
                        f"`{name}` maps path substrings to positive floats; got {pattern!r}: {value!r}."
                    )
        self._variable_rules = []

    @staticmethod
    def _lookup(table, path):
        for pattern, value in table.items():
            if pattern in path:
                return float(value)
        return None

    def build(self, var_list):
        if self.built:
            return
        # Resolved once here: on the TF backend update_step receives raw tf.Variables without `.path`.
        self._variable_rules = [
            (self._lookup(self.lr_multipliers, v.path), self._lookup(self.clip_values, v.path))
            for v in var_list
        ]
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        multiplier, clip_value = self._variable_rules[self._get_variable_index(variable)]
        if clip_value is not None:
            gradient = ops.clip(gradient, -clip_value, clip_value)
        if multiplier is not None:
            learning_rate = ops.cast(learning_rate, variable.dtype) * multiplier
        if self._fused_update_applies(gradient, variable):
            self._fused_update_step(gradient, variable, learning_rate)
        else:
            super().update_step(gradient, variable, learning_rate)

    def _fused_update_applies(self, gradient, variable):
        # TensorFlow's ResourceApplyAdam is Keras' Adam update in one kernel instead of about ten
        # elementwise ops: 7-10% of a bfloat16 training step of the MNIST presets
        # (docs/performance.md).
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return False
        from keras_crvae import tf_kernels

        index = self._get_variable_index(variable)
        return tf_kernels.adam_applies(
            gradient, (variable, self._momentums[index], self._velocities[index]))

    def _fused_update_step(self, gradient, variable, learning_rate):
        from keras_crvae import tf_kernels

        index = self._get_variable_index(variable)
        tf_kernels.resource_apply_adam(
            variable, self._momentums[index], self._velocities[index], gradient, learning_rate,
            self.beta_1, self.beta_2, self.epsilon, self.iterations + 1)

    def get_config(self):
        config = super().get_config()
        config.update({"lr_multipliers": self.lr_multipliers, "clip_values": self.clip_values})
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class ThresholdedAdam(MultiplierAdam):
    """Adam that skips a whole update when the discriminator is already too accurate.

    Supplement section D ("Optimization"; `adam_gan.lua` and `train_test/train_test_lstm.lua` of
    WendyShang/crVAE): the discriminator is not updated on a batch where its classification accuracy
    exceeds `threshold` (0.9: the reference's `-margin 0.1` on the error rate). A skipped step is an exact
    no-op: the variables, both Adam moments and `iterations` (hence the bias correction and any learning
    rate schedule) keep their values bit for bit.

    The gate is arithmetic (`ops.where` between the updated and the old value), never Python or `tf.cond`
    control flow, so it traces inside `tf.function`, compiles under XLA and runs under
    `tf.distribute.MirroredStrategy`, where `tf.cond` around `apply` fails. Pass the accuracy over the
    GLOBAL batch (all replicas) so every replica takes the same decision.

    Optional reference behaviour: `warmup=((10, 1 / 50), (30, 1 / 5))` scales the learning rate by 1/50
    for the first 10 applied updates and 1/5 until the 30th, as `adam_gan.lua` does (the reference counts
    calls, skipped ones included; we count applied updates so a skipped step stays a no-op).
    Per-variable multipliers and clipping work as in `MultiplierAdam` (e.g. the reference's
    discriminator trunk at LR/2: `lr_multipliers={"trunk": 0.5}`).

    Args:
        learning_rate: float or schedule, default 0.001.
        threshold: float in (0, 1], default 0.9. Skip when `accuracy > threshold`.
        warmup: sequence of `(updates, factor)` pairs sorted by `updates`, default `()`.
        lr_multipliers, clip_values: as `MultiplierAdam`.
        **kwargs: passed to `keras.optimizers.Adam`; `weight_decay`, `amsgrad`, `use_ema` and
            `gradient_accumulation_steps` are rejected because they would update state on skipped steps.

    >>> optimizer = ThresholdedAdam(1e-3, threshold=0.9)
    >>> # in a train step:  updated = optimizer.apply_thresholded(grads, variables, accuracy)
    """

    def __init__(self, learning_rate=0.001, threshold=0.9, warmup=(), lr_multipliers=None,
                 clip_values=None, **kwargs):
        for name in ("weight_decay", "use_ema", "gradient_accumulation_steps", "amsgrad"):
            if kwargs.get(name):
                raise ValueError(f"ThresholdedAdam does not support `{name}` (it would change state on "
                                 "a skipped step).")
        super().__init__(learning_rate=learning_rate, lr_multipliers=lr_multipliers,
                         clip_values=clip_values, **kwargs)
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"`threshold` must be in (0, 1], got {threshold!r}.")
        self.threshold = float(threshold)
        self.warmup = tuple((int(updates), float(factor)) for updates, factor in warmup)
        if any(b[0] <= a[0] for a, b in zip(self.warmup, self.warmup[1:])) or any(
                updates <= 0 or factor <= 0 for updates, factor in self.warmup):
            raise ValueError("`warmup` must be `(updates, factor)` pairs with increasing positive "
                             f"`updates` and positive factors, got {warmup!r}.")

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Only the first replica's value is kept: every replica computes the same global decision.
        self._update_gate = self.add_variable(
            shape=(), initializer="ones", dtype="float32", aggregation="only_first_replica",
            name="update_gate")

    def update_decision(self, accuracy):
        """1.0 where `accuracy <= threshold` (update), else 0.0 (skip); float32 scalar."""
        return ops.cast(ops.less_equal(ops.cast(accuracy, "float32"), self.threshold), "float32")

    def apply_thresholded(self, grads, trainable_variables, accuracy):
        """Apply `grads` unless `accuracy > threshold`; returns the decision (1.0 updated, 0.0 skipped).

        Args:
            grads: list of gradient tensors, one per variable.
            trainable_variables: list of variables.
            accuracy: scalar in [0, 1], the discriminator's accuracy on the global batch.
        """
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        decision = self.update_decision(accuracy)
        self._update_gate.assign(decision)
        self.apply(grads, trainable_variables)
        # `apply` always counts one iteration; take it back on a skipped step (exact: int64).
        self._iterations.assign_sub(ops.cast(1.0 - decision, self._iterations.dtype))
        # Back to "update" so a skipped step leaves every optimizer variable as it found it.
        self._update_gate.assign(1.0)
        return decision

    def _warmup_factor(self, dtype):
        factor = ops.cast(1.0, dtype)
        iterations = ops.convert_to_tensor(self.iterations)
        for updates, value in reversed(self.warmup):
            factor = ops.where(ops.less(iterations, updates), ops.cast(value, dtype), factor)
        return factor

    def update_step(self, gradient, variable, learning_rate):
        multiplier, clip_value = self._variable_rules[self._get_variable_index(variable)]
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if clip_value is not None:
            gradient = ops.clip(gradient, -clip_value, clip_value)
        lr = ops.cast(learning_rate, dtype) * self._warmup_factor(dtype)
        if multiplier is not None:
            lr = lr * multiplier
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        momentum_variable = self._momentums[self._get_variable_index(variable)]
        velocity_variable = self._velocities[self._get_variable_index(variable)]
        # Plain tensors for the arithmetic (JAX's `where` refuses Variable objects).
        momentum = ops.convert_to_tensor(momentum_variable)
        velocity = ops.convert_to_tensor(velocity_variable)
        old_value = ops.convert_to_tensor(variable)
        new_momentum = momentum + (gradient - momentum) * (1 - self.beta_1)
        new_velocity = velocity + (ops.square(gradient) - velocity) * (1 - self.beta_2)
        new_value = old_value - new_momentum * alpha / (ops.sqrt(new_velocity) + self.epsilon)

        update = ops.greater(ops.convert_to_tensor(self._update_gate), 0.5)
        # `where`, not arithmetic blending: a skipped step stays exact even for non-finite gradients.
        self.assign(momentum_variable, ops.where(update, new_momentum, momentum))
        self.assign(velocity_variable, ops.where(update, new_velocity, velocity))
        self.assign(variable, ops.where(update, new_value, old_value))

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "warmup": [list(w) for w in self.warmup]})
        return config
