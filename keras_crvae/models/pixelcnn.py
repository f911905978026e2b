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

Sampling draws the values one after the other in one compiled loop
(`models.autoregressive.AutoregressiveSampler`: `fori_loop` under `tf.function` / `jax.jit`, no
Python round trip per pixel; the same images as the per-pixel loop for the same uniforms).
"""

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute, losses
from keras_crvae.models.autoregressive import (DATA_KINDS, LOG_2,  # noqa: F401
                                               AutoregressiveSampler, check_data_kind,
                                               draw_values, log_likelihood_per_value,
                                               network_inputs, value_range)
from keras_crvae.models.base import (OptimizerBuiltBeforeTracing, to_float32, validate_images,
                                     with_deserialized)

@keras.saving.register_keras_serializable(package="keras_crvae")
class PixelCNN(OptimizerBuiltBeforeTracing, keras.Model):
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
