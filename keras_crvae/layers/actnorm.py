"""Glow's activation normalization: a per-channel affine map whose parameters start from the data.

    y = (x + b) * exp(s)       per channel (last axis)     log|det J| = (H*W) * sum_c s_c

The first training batch sets b = -mean and s = -log(std) per channel (Kingma & Dhariwal 2018,
section 3.1), so that the post-actnorm activations of that batch have zero mean and unit variance.

How the data-dependent initialisation works under `fit()` on every backend: the trainable `bias`
and `log_scale` start at 0 and are *offsets* added to non-trainable `initial_bias` /
`initial_log_scale`, which a training call fills from its batch while the non-trainable flag
`initialized` is 0 (then sets it to 1). Non-trainable state written in the forward pass is what
Keras' JAX trainer carries between steps (as for BatchNorm's moving statistics); a trainable weight
assigned inside the step would be lost. The initial values are weights, so they are saved in
`.keras` files and a loaded model does not initialise again. Only calls with `training=True`
initialise; before that the layer is the identity.
"""

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for, positions_per_example


@keras.saving.register_keras_serializable(package="keras_crvae")
class ActNorm(Bijector):
    """Per-channel affine normalization with data-dependent initialisation (module docstring).

    Input and output shape: `(batch, ..., channels)`.

    Args:
        epsilon: float, default 1e-6. Added to the standard deviation at initialisation.

    Reference: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", 2018,
    section 3.1.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.bias = self.add_weight(shape=channels, initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=channels, initializer="zeros", name="log_scale")
        self.initial_bias = self.add_weight(shape=channels, initializer="zeros", trainable=False,
                                            name="initial_bias")
        self.initial_log_scale = self.add_weight(shape=channels, initializer="zeros",
                                                 trainable=False, name="initial_log_scale")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           name="initialized")
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _parameters(self, x, training):
        """`(bias, log_scale)` per channel; a training call first initialises from `x` if needed."""
        initial_bias = ops.convert_to_tensor(self.initial_bias)
        initial_log_scale = ops.convert_to_tensor(self.initial_log_scale)
        if training:
            axes = tuple(range(len(x.shape) - 1))
            mean = ops.stop_gradient(ops.mean(x, axis=axes))
            std = ops.stop_gradient(ops.std(x, axis=axes))
            fresh = ops.equal(ops.convert_to_tensor(self.initialized), 0.0)
            initial_bias = ops.where(fresh, -mean, initial_bias)
            initial_log_scale = ops.where(fresh, -ops.log(std + self.epsilon), initial_log_scale)
            self.initial_bias.assign(initial_bias)
            self.initial_log_scale.assign(initial_log_scale)
            self.initialized.assign(1.0)
        return initial_bias + self.bias, initial_log_scale + self.log_scale

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        bias, log_scale = self._parameters(x, training)
        log_det = positions_per_example(x) * ops.sum(log_scale)
        return (x + bias) * ops.exp(log_scale), ops.ones((ops.shape(x)[0],)) * log_det

    def inverse_and_log_det(self, y, context=None, training=None):
        build_for(self, y)
        bias, log_scale = self.initial_bias + self.bias, self.initial_log_scale + self.log_scale
        log_det = -positions_per_example(y) * ops.sum(log_scale)
        return y * ops.exp(-log_scale) - bias, ops.ones((ops.shape(y)[0],)) * log_det

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
