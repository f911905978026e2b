"""What the autoregressive families share: value likelihoods, CDF draws, the compiled sampler.

`PixelCNN` (models/pixelcnn.py) and `VLAE` (models/vlae.py) both turn PixelCNN logits
`(B, H, W, C, levels)` into log-likelihoods and samples; this module holds those pieces so that
neither family file imports the other (docs/design.md: model files import `base` and shared
helpers, never a sibling family).

Sampling draws the values one after the other: each step runs the network on the image drawn so far
and draws value i from `p(x_i | x_<i)` by inverting its CDF at a uniform `u_i`. All H*W*C steps run
in one compiled loop (`keras.ops.fori_loop` inside `tf.function` / `jax.jit`), so there is no
Python round trip per pixel; the uniforms are inputs, so the compiled loop and the plain per-pixel
loop (`AutoregressiveSampler.sample_naive`) give the same image for the same uniforms (tested).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_crvae.models.base import to_float32

DATA_KINDS = ("binary", "grey256", "categorical")
LOG_2 = math.log(2.0)


def network_inputs(values, data_kind, levels):
    """Values in data units `(B, H, W, C)` -> the network's input: binary values as they are,
    grey levels scaled to [0, 1], codes one-hot `(B, H, W, K)`."""
    values = ops.cast(values, "float32")
    if data_kind == "grey256":
        return values / 255.0
    if data_kind == "categorical":
        return ops.one_hot(ops.cast(values[..., 0], "int32"), levels)
    return values


def log_likelihood_per_value(logits, values, data_kind):
    """`log p(x_i | x_<i)` `(B, H, W, C)` from logits `(B, H, W, C, levels)` and the values."""
    logits = to_float32(logits)
    values = ops.cast(values, "float32")
    if data_kind == "binary":
        logit = logits[..., 0]
        return -(values * ops.softplus(-logit) + (1.0 - values) * ops.softplus(logit))
    log_probabilities = ops.log_softmax(logits, axis=-1)
    chosen = ops.one_hot(ops.cast(values, "int32"), logits.shape[-1])
    return ops.sum(chosen * log_probabilities, axis=-1)


def draw_values(logits, uniforms, data_kind, temperature=1.0):
    """One value per row by inverting the CDF: logits `(N, levels)`, uniforms `(N,)` in [0, 1) ->
    float32 values `(N,)` (the level index; for "binary" 1 iff `u < sigmoid(logit / T)`)."""
    logits = to_float32(logits) / temperature
    if data_kind == "binary":
        return ops.cast(uniforms < ops.sigmoid(logits[:, 0]), "float32")
    cumulative = ops.cumsum(ops.softmax(logits, axis=-1), axis=-1)
    below = ops.sum(ops.cast(cumulative < uniforms[:, None], "float32"), axis=-1)
    return ops.minimum(below, float(logits.shape[-1] - 1))  # rounding at the top of the CDF


class AutoregressiveSampler:
    """Draws images value by value from a PixelCNN network, compiled or naive.

    Args:
        network: `keras.Model`, network inputs (and optionally a condition) -> logits
            `(B, H, W, C, levels)`.
        data_kind: str, one of `DATA_KINDS`.

    `sample(uniforms, temperature, condition)`: uniforms `(B, H, W, C)` in [0, 1) -> values
    `(B, H, W, C)` in data units, all steps in one compiled loop. `sample_naive(...)`: the same
    function as a Python loop of one network call per value (the reference, and the benchmark's
    baseline). On JAX the compiled function takes the network's weights as arguments
    (`stateless_call`), so it never bakes in stale weights after further training.
    """

    def __init__(self, network, data_kind):
        self.network = network
        self.data_kind = data_kind
        self.value_shape = tuple(network.output_shape[1:4])
        self.levels = int(network.output_shape[-1])
        self._compiled = None

    def _logits(self, values, condition, call=None):
        inputs = network_inputs(values, self.data_kind, self.levels)
        inputs = inputs if condition is None else [inputs, ops.convert_to_tensor(condition,
                                                                                 "float32")]
        return (call or (lambda x: self.network(x, training=False)))(inputs)

    def _loop(self, uniforms, temperature, condition, call=None):
        count = int(np.prod(self.value_shape))
        batch = ops.shape(uniforms)[0]
        flat_uniforms = ops.reshape(uniforms, (batch, count))

        def step(index, canvas):
            logits = self._logits(ops.reshape(canvas, (batch,) + self.value_shape), condition,
                                  call)
            logits = ops.take(ops.reshape(logits, (batch, count, self.levels)), index, axis=1)
            value = draw_values(logits, ops.take(flat_uniforms, index, axis=1), self.data_kind,
                                temperature)
            return canvas + ops.one_hot(index, count)[None, :] * value[:, None]

        canvas = ops.fori_loop(0, count, step, ops.zeros((batch, count), "float32"))
        return ops.reshape(canvas, (batch,) + self.value_shape)

    def _compile(self):
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.function(self._loop)
        if backend == "jax":
            import jax

            network = self.network

            def stateless(trainable, non_trainable, uniforms, temperature, condition):
                def call(inputs):
                    return network.stateless_call(trainable, non_trainable, inputs,
                                                  training=False)[0]

                return self._loop(uniforms, temperature, condition, call)

            compiled = jax.jit(stateless)
            return lambda uniforms, temperature, condition: compiled(
                [v.value for v in network.trainable_variables],
                [v.value for v in network.non_trainable_variables], uniforms, temperature,
                condition)
        return self._loop

    def sample(self, uniforms, temperature=1.0, condition=None):
        """Values `(B, H, W, C)` (float32 tensor) for uniforms `(B, H, W, C)`: one compiled loop."""
        if self._compiled is None:
            self._compiled = self._compile()
        uniforms = ops.convert_to_tensor(uniforms, "float32")
        temperature = ops.convert_to_tensor(float(temperature), "float32")
        condition = None if condition is None else ops.convert_to_tensor(condition, "float32")
        return self._compiled(uniforms, temperature, condition)

    def sample_naive(self, uniforms, temperature=1.0, condition=None):
        """The same values as `sample`, one eager network call per value from Python."""
        uniforms = np.asarray(uniforms, "float32")
        batch = uniforms.shape[0]
        canvas = np.zeros((batch,) + self.value_shape, "float32")
        for row, column, colour in np.ndindex(*self.value_shape):
            logits = self._logits(ops.convert_to_tensor(canvas), condition)
            value = draw_values(logits[:, row, column, colour],
                                ops.convert_to_tensor(uniforms[:, row, column, colour]),
                                self.data_kind, temperature)
            canvas[:, row, column, colour] = ops.convert_to_numpy(value)
        return canvas


def check_data_kind(data_kind, levels):
    """Raises unless `data_kind` is known and fits the network's `levels` of logits."""
    if data_kind not in DATA_KINDS:
        raise ValueError(f"`data_kind` must be one of {DATA_KINDS}; got {data_kind!r}.")
    expected = {"binary": 1, "grey256": 256}.get(data_kind)
    if expected is not None and levels != expected:
        raise ValueError(f"`data_kind={data_kind!r}` needs a network with {expected} logits per "
                         f"value; this one has {levels}.")
    if data_kind == "categorical" and levels < 2:
        raise ValueError(f"`data_kind='categorical'` needs >= 2 logits per value; got {levels}.")


def value_range(data_kind, levels):
    """The `(low, high)` of valid values in data units."""
    return (0.0, 1.0) if data_kind == "binary" else (0.0, float(levels - 1))
