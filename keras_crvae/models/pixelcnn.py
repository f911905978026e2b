"""PixelCNN models: exact log-likelihoods of discrete images and a compiled sampler.

A (Gated) PixelCNN network (`keras_crvae.networks.pixelcnn`) gives, for every value `x_i` of an
image (pixels in raster order, colours R, G, B inside a pixel), the logits of `p(x_i | x_<i)`; the
model turns them into

    log p(x) = sum_i log p(x_i | x_<i)        (nats of the discrete image, exact)
    bits/dim = -log p(x) / (D ln 2)           (D = H * W * C values)

for three kinds of data (`data_kind`), in the units of the `likelihood` job:

    "binary"       values in {0, 1}; one logit per value, `p(x_i = 1) = sigmoid(logit)`
                   (binarized MNIST: nats per image, van den Oord et al. 2016a, table 4).
    "grey256"      integer grey levels 0..255 held as float32; a 256-way softmax per value
                   (2016a, section 3.1: "discrete softmax"; bits/dim).
    "categorical"  integer codes 0..K-1 `(B, H, W, 1)` (a VQ-VAE code map); a K-way softmax per
                   code, the network reads the codes one-hot.

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

from keras_crvae import distribute, losses
from keras_crvae.models.base import to_float32, validate_images, with_deserialized

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


@keras.saving.register_keras_serializable(package="keras_crvae")
class PixelCNN(keras.Model):
    """An autoregressive image model: exact `log p(x)`, trained with `fit(images)`.

    Args:
        network: `keras.Model` from `networks.build_pixelcnn` or `build_gated_pixelcnn`: network
            inputs `(B, H, W, input_channels)` (and, for a conditional network, a condition as a
            second input) -> logits `(B, H, W, C, levels)`.
        data_kind: str, default "binary". "binary", "grey256" or "categorical" (module docstring).

    Inputs of `fit` / `log_likelihood`: images `(B, H, W, C)` in data units (binary {0, 1}, grey
    levels 0..255, or codes 0..K-1); a conditional model takes `(images, condition)`.

    Metrics: `nll` (nats per image, `-log p(x)`) and `bits_per_dim` (`nll / (D ln 2)`); the loss
    is the mean `nll`.

    >>> from keras_crvae import networks
    >>> model = PixelCNN(networks.build_gated_pixelcnn((8, 8, 1), filters=4, num_layers=2))
    >>> tuple(model.sample(2, seed=0).shape)
    (2, 8, 8, 1)

    Reference: van den Oord et al., "Pixel Recurrent Neural Networks", ICML 2016 (PixelCNN,
    section 3.4; the softmax over 256 levels, section 3.1); "Conditional Image Generation with
    PixelCNN Decoders", NeurIPS 2016 (Gated PixelCNN).
    """

    # The serving contract: `sample` returns images in [0, 1].
    image_range = (0.0, 1.0)

    def __init__(self, network, data_kind="binary", **kwargs):
        super().__init__(**kwargs)
        levels = int(network.output_shape[-1])
        check_data_kind(data_kind, levels)
        # === Layers ===
        self.network = network
        # === Config ===
        self.data_kind = data_kind
        self.levels = levels
        self.image_shape = tuple(network.output_shape[1:4])
        self.num_values = int(np.prod(self.image_shape))
        self.conditional = len(network.inputs) > 1
        # === Metrics ===
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bits_tracker = keras.metrics.Mean(name="bits_per_dim")
        self.sampler = AutoregressiveSampler(network, data_kind)
        self.built = True

    def _split(self, inputs):
        if self.conditional:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError("A conditional PixelCNN takes (images, condition).")
            return inputs[0], inputs[1]
        return inputs, None

    def call(self, inputs, training=None):
        """Logits `(B, H, W, C, levels)` of every value given the values before it."""
        images, condition = self._split(inputs)
        network_input = network_inputs(images, self.data_kind, self.levels)
        if condition is not None:
            network_input = [network_input, ops.cast(condition, "float32")]
        return to_float32(self.network(network_input, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean `-log p(x)` in nats per image; updates `nll` and `bits_per_dim`."""
        images, _ = self._split(x)
        nll = -losses.sum_per_example(log_likelihood_per_value(y_pred, images, self.data_kind))
        self.nll_tracker.update_state(nll)
        self.bits_tracker.update_state(nll / (self.num_values * LOG_2))
        loss = ops.mean(nll) + (ops.sum(ops.stack(self.losses)) if self.losses else 0.0)
        return distribute.scale_loss_for_replicas(loss)

    def log_likelihood(self, images, condition=None):
        """`log p(x)` in nats `(B,)` float32 for images `(B, H, W, C)` in data units."""
        images = validate_images(images, self.image_shape,
                                 value_range=value_range(self.data_kind, self.levels))
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        inputs = images if condition is None else (images, ops.convert_to_tensor(condition))
        logits = self(inputs, training=False)
        return losses.sum_per_example(log_likelihood_per_value(logits, images, self.data_kind))

    def sample_values(self, num_samples, temperature=1.0, seed=None, condition=None):
        """`num_samples` images `(N, H, W, C)` in data units (0/1, grey levels, codes)."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        if not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        if self.conditional and condition is None:
            raise ValueError("A conditional PixelCNN needs a `condition` to sample.")
        uniforms = keras.random.uniform((int(num_samples),) + self.image_shape, seed=seed)
        return self.sampler.sample(uniforms, temperature, condition)

    def sample(self, num_samples, temperature=1.0, seed=None, condition=None):
        """`num_samples` images `(N, H, W, C)` in [0, 1] display units (grey levels / 255, codes /
        (K - 1)), drawn in one compiled loop (module docstring)."""
        values = self.sample_values(num_samples, temperature, seed, condition)
        return values / value_range(self.data_kind, self.levels)[1]

    def get_config(self):
        return {"name": self.name, "network": keras.saving.serialize_keras_object(self.network),
                "data_kind": self.data_kind}

    @classmethod
    def from_config(cls, config):
        return cls(**with_deserialized(config, "network"))
