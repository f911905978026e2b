"""Glow's invertible 1x1 convolution, LU-parametrised.

A 1x1 convolution with a C x C matrix W mixes the channels of every pixel: y = W x per pixel, and
log|det J| = H * W_pixels * log|det W|. Parametrised as

    W = P L (U + diag(sign * exp(log_scale)))

with P a fixed permutation, L unit lower-triangular, U strictly upper-triangular (both trainable)
and the diagonal's signs fixed, the log-determinant is `sum(log_scale)` per pixel: O(C) instead of
the O(C^3) of a determinant (Kingma & Dhariwal 2018, section 3.2). W starts as a random rotation.
"""

import keras
import numpy as np
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for, positions_per_example


def lu_decomposition(matrix):
    """`(P, L, U)` with `matrix = P @ L @ U`: LU with partial pivoting in NumPy (float64).

    L is unit lower-triangular, U upper-triangular, P a permutation matrix.
    """
    upper = np.array(matrix, dtype=np.float64)
    size = upper.shape[0]
    lower, order = np.eye(size), np.arange(size)
    for column in range(size):
        pivot = column + int(np.argmax(np.abs(upper[column:, column])))
        upper[[column, pivot]] = upper[[pivot, column]]
        lower[[column, pivot], :column] = lower[[pivot, column], :column]
        order[[column, pivot]] = order[[pivot, column]]
        factors = upper[column + 1:, column] / upper[column, column]
        lower[column + 1:, column] = factors
        upper[column + 1:] -= factors[:, None] * upper[column]
    permutation = np.eye(size)[order].T  # row i of `matrix` is row order^-1(i) of L @ U
    return permutation, lower, np.triu(upper)


@keras.saving.register_keras_serializable(package="keras_crvae")
class InvertibleConv1x1(Bijector):
    """LU-parametrised invertible 1x1 convolution (module docstring).

    Input and output shape: `(batch, ..., channels)`; each position's channel vector is multiplied
    by W (`y = x @ W^T`).

    Args:
        seed: int or None, default None. Seed of the initial random rotation.

    Reference: Kingma & Dhariwal, "Glow", 2018, section 3.2 ("LU decomposition").
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def build(self, input_shape):
        channels = int(input_shape[-1])
        rotation, _ = np.linalg.qr(np.random.default_rng(self.seed).normal(
            size=(channels, channels)))
        permutation, lower, upper = lu_decomposition(rotation)
        diagonal = np.diag(upper)

        def constant(value):
            return keras.initializers.Constant(np.asarray(value, np.float32))

        self.permutation = self.add_weight(shape=(channels, channels), trainable=False,
                                           initializer=constant(permutation), name="permutation")
        self.lower = self.add_weight(shape=(channels, channels),
                                     initializer=constant(np.tril(lower, -1)), name="lower")
        self.upper = self.add_weight(shape=(channels, channels),
                                     initializer=constant(np.triu(upper, 1)), name="upper")
        self.log_scale = self.add_weight(shape=(channels,),
                                         initializer=constant(np.log(np.abs(diagonal))),
                                         name="log_scale")
        self.sign = self.add_weight(shape=(channels,), trainable=False,
                                    initializer=constant(np.sign(diagonal)), name="sign")
        self.strictly_lower = np.tril(np.ones((channels, channels), np.float32), -1)
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def weight_matrix(self):
        """W = P L (U + diag(sign exp(log_scale))), `(C, C)`."""
        channels = self.strictly_lower.shape[0]
        lower = self.lower * self.strictly_lower + ops.eye(channels)
        upper = (self.upper * ops.transpose(self.strictly_lower)
                 + ops.diag(self.sign * ops.exp(self.log_scale)))
        return ops.matmul(self.permutation, ops.matmul(lower, upper))

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        y = ops.einsum("...c,dc->...d", x, self.weight_matrix())
        log_det = positions_per_example(x) * ops.sum(self.log_scale)
        return y, ops.ones((ops.shape(x)[0],)) * log_det

    def inverse_and_log_det(self, y, context=None, training=None):
        build_for(self, y)
        x = ops.einsum("...c,dc->...d", y, ops.inv(self.weight_matrix()))
        log_det = -positions_per_example(y) * ops.sum(self.log_scale)
        return x, ops.ones((ops.shape(y)[0],)) * log_det

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
