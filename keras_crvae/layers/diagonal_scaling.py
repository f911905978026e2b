"""NICE's diagonal scaling: the last layer of NICE, `y = x * exp(s)` with one trainable log-scale
per dimension, log|det J| = sum(s) (Dinh et al. 2014, section 3.3: it lets the volume-preserving
couplings weight each dimension; a large s_d marks a dimension the model treats as unimportant)."""

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for


@keras.saving.register_keras_serializable(package="keras_crvae")
class DiagonalScaling(Bijector):
    """`y = x * exp(log_scale)` element-wise, with a trainable `log_scale` of the event's shape.

    Input and output shape: `(batch, ...)`.

    Reference: Dinh, Krueger & Bengio, "NICE", 2014, section 3.3.
    """

    def build(self, input_shape):
        self.log_scale = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros",
                                         name="log_scale")
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        return x * ops.exp(self.log_scale), ops.ones((ops.shape(x)[0],)) * ops.sum(self.log_scale)

    def inverse_and_log_det(self, y, context=None, training=None):
        build_for(self, y)
        return (y * ops.exp(-self.log_scale),
                ops.ones((ops.shape(y)[0],)) * -ops.sum(self.log_scale))
