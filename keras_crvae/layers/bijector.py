"""The interface of every invertible layer (normalizing flows, reversible blocks).

A bijector is an invertible map y = f(x) of one example's tensor (all axes after the batch axis),
with the log-absolute-determinant of its Jacobian, one value per example:

    log p_X(x) = log p_Y(f(x)) + log |det df/dx (x)|          (change of variables)

which is what a flow's maximum-likelihood objective, a flow posterior's density and a flow sampler
need (the lecture, "Normalizing flows"; Rezende & Mohamed 2015, section 3; Dinh et al. 2014,
section 2). Subclasses implement two methods and get the rest:

    forward_and_log_det(x, context=None, training=None) -> (y, log_det)   log_det: (batch,)
    inverse_and_log_det(y, context=None, training=None) -> (x, log_det)   log_det of the inverse,
                                                                          = -log|det df/dx (x)|

`context` is an optional conditioning tensor (an IAF step's encoder features); unconditioned
bijectors ignore it. Everything is `keras.ops`: TensorFlow and JAX.
"""

import copy

import keras
from keras import ops


def sum_over_event(values):
    """Sums `values` over every axis but the first: `(batch, ...) -> (batch,)`."""
    if len(values.shape) == 1:
        return values
    return ops.sum(values, axis=tuple(range(1, len(values.shape))))


@keras.saving.register_keras_serializable(package="keras_crvae")
class Bijector(keras.layers.Layer):
    """Base class of the invertible layers: `forward`, `inverse`, `log_det_jacobian`.

    Input shape: `(batch, ...)`; output shape: the input's (bijectors keep the number of
    elements; `Squeeze` changes the shape, not the size). `call(x)` is `forward(x)`, so a bijector
    drops into a functional model like any layer.

    Subclasses implement `forward_and_log_det` and `inverse_and_log_det` (module docstring).
    """

    def forward_and_log_det(self, x, context=None, training=None):
        """Returns `(f(x), log|det df/dx|)`, the second of shape `(batch,)`."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_and_log_det")

    def inverse_and_log_det(self, y, context=None, training=None):
        """Returns `(f^-1(y), log|det df^-1/dy|)`, the second of shape `(batch,)`."""
        raise NotImplementedError(f"{type(self).__name__} must implement inverse_and_log_det")

    def forward(self, x, context=None, training=None):
        """Returns `f(x)`, the input's shape."""
        return self.forward_and_log_det(x, context=context, training=training)[0]

    def inverse(self, y, context=None, training=None):
        """Returns `f^-1(y)`, the input's shape."""
        return self.inverse_and_log_det(y, context=context, training=training)[0]

    def log_det_jacobian(self, x, context=None, training=None):
        """Returns `log|det df/dx (x)|`, shape `(batch,)`."""
        return self.forward_and_log_det(x, context=context, training=training)[1]

    def call(self, inputs, context=None, training=None):
        return self.forward(inputs, context=context, training=training)


@keras.saving.register_keras_serializable(package="keras_crvae")
class BijectorChain(Bijector):
    """A composition of bijectors: `forward` applies them in order, `inverse` in reverse order.

    The log-determinants add up (chain rule). Input and output shapes: those of the bijectors.

    Args:
        bijectors: list of `Bijector` layers, applied first to last in `forward`.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, bijectors, **kwargs):
        super().__init__(**kwargs)
        self.bijectors = list(bijectors)
        if not all(isinstance(bijector, Bijector) for bijector in self.bijectors):
            raise TypeError("bijectors: every element must be a keras_crvae Bijector; got "
                            f"{[type(bijector).__name__ for bijector in self.bijectors]}")

    def build(self, input_shape):
        shape = input_shape
        for bijector in self.bijectors:
            if not bijector.built:
                bijector.build(shape)
            shape = bijector.compute_output_shape(shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for bijector in self.bijectors:
            shape = bijector.compute_output_shape(shape)
        return shape

    def forward_and_log_det(self, x, context=None, training=None):
        total = ops.zeros((ops.shape(x)[0],), dtype="float32")
        for bijector in self.bijectors:
            x, log_det = bijector.forward_and_log_det(x, context=context, training=training)
            total = total + ops.cast(log_det, "float32")
        return x, total

    def inverse_and_log_det(self, y, context=None, training=None):
        total = ops.zeros((ops.shape(y)[0],), dtype="float32")
        for bijector in reversed(self.bijectors):
            y, log_det = bijector.inverse_and_log_det(y, context=context, training=training)
            total = total + ops.cast(log_det, "float32")
        return y, total

    def get_config(self):
        config = super().get_config()
        config["bijectors"] = [keras.saving.serialize_keras_object(b) for b in self.bijectors]
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing nested objects edits their dicts
        config["bijectors"] = [keras.saving.deserialize_keras_object(b)
                               for b in config["bijectors"]]
        return cls(**config)
