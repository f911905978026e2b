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
        kwargs.setdefault("epsilon", 1e-8)  # DESIGN.md section 5: Adam eps=1e-8.
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
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"lr_multipliers": self.lr_multipliers, "clip_values": self.clip_values})
        return config
