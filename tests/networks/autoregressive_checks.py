"""Shared exactness checks of autoregressive networks: which input values each output depends on.

`dependency_matrix(function, inputs)` differentiates, with the backend's autodiff
(`tf.GradientTape` / `jax.grad`), a random projection of the logits of every generated value
`(pixel, colour)` with respect to the whole input image, in one backward pass (the image is tiled
once per output value; the rows of a batch are independent, so row b's gradient is output b's).
A zero entry means "does not depend on" exactly: masked taps contribute exact zeros.
"""

import keras
import numpy as np
from keras import ops


def input_gradients(function, inputs, weights):
    """d/d inputs of `sum(weights * function(inputs))`, as float64 NumPy."""
    inputs = ops.convert_to_tensor(inputs, "float32")
    weights = ops.convert_to_tensor(weights, "float32")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(inputs)
            objective = tf.reduce_sum(weights * function(inputs))
        gradient = tape.gradient(objective, inputs)
    else:
        import jax

        gradient = jax.grad(lambda x: (weights * function(x)).sum())(inputs)
    return ops.convert_to_numpy(gradient).astype("float64")


def dependency_matrix(function, image, levels, seed=0):
    """`(N, N)` boolean: entry `[i, j]` says output value i's logits depend on input value j.

    Args:
        function: images `(B, H, W, C)` -> logits `(B, H, W, C, levels)`.
        image: `(H, W, C)` NumPy, the point at which the Jacobian is taken.
        levels: int, the logits per value.

    Values are numbered in generation order: `i = (row * W + column) * C + colour`.
    """
    height, width, channels = image.shape
    count = height * width * channels
    rng = np.random.default_rng(seed)
    weights = np.zeros((count, count, levels), "float32")
    weights[np.arange(count), np.arange(count)] = rng.normal(size=(count, levels))
    weights = weights.reshape((count, height, width, channels, levels))
    batch = np.repeat(image[None], count, axis=0).astype("float32")
    gradients = input_gradients(function, batch, weights)
    return np.abs(gradients.reshape(count, count)) > 0.0


def strictly_earlier(height, width, channels):
    """`(N, N)` boolean: value j comes before value i in generation order (`j < i`)."""
    order = np.arange(height * width * channels)
    return order[None, :] < order[:, None]


def gated_receptive_field(height, width, radius):
    """`(N, N)` boolean for one colour: the pixels the Gated PixelCNN's pixel i can see: its row,
    `radius` columns to the left; `radius + 1` rows above, `radius` columns either side."""
    rows, columns = np.divmod(np.arange(height * width), width)
    row_i, column_i = rows[:, None], columns[:, None]
    row_j, column_j = rows[None, :], columns[None, :]
    same_row = (row_j == row_i) & (column_j < column_i) & (column_j >= column_i - radius)
    above = ((row_j < row_i) & (row_j >= row_i - 1 - radius)
             & (np.abs(column_j - column_i) <= radius))
    return same_row | above
