"""The base distributions of the flows: standard Gaussian (RealNVP, Glow) and standard logistic
(NICE), factorized over every element of the event.

    Gaussian:  log p(z) = sum_d [-z_d^2 / 2 - log(2 pi) / 2]
    logistic:  log p(z) = sum_d [-softplus(z_d) - softplus(-z_d)]     (NICE, section 3.4)

`sample(shape, temperature, seed)` draws with the spread scaled by `temperature` (Glow section
5.2: T < 1 trades diversity for quality): a Gaussian with standard deviation T, a logistic with
scale T. They hold no weights; they are layers so that a model serializes them with its config.
"""

import math

import keras
from keras import ops

from keras_crvae.layers.bijector import sum_over_event


class _Prior(keras.layers.Layer):
    """A factorized base distribution: `log_prob(z) -> (batch,)`, `sample(shape, temperature,
    seed)`; `call` is `log_prob`."""

    def log_prob(self, z):
        """`log p(z)` summed over every axis but the batch axis -> `(batch,)`."""
        return sum_over_event(self.log_prob_elements(ops.cast(z, "float32")))

    def call(self, z):
        return self.log_prob(z)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


@keras.saving.register_keras_serializable(package="keras_crvae")
class StandardGaussian(_Prior):
    """N(0, I) over the event. Input `(batch, ...)`; `log_prob` -> `(batch,)`.

    Reference: Dinh et al. 2017 (RealNVP), section 3.1; Kingma & Dhariwal 2018 (Glow).
    """

    def log_prob_elements(self, z):
        return -0.5 * ops.square(z) - 0.5 * math.log(2.0 * math.pi)

    def sample(self, shape, temperature=1.0, seed=None):
        """`shape` draws of N(0, temperature^2 I)."""
        return float(temperature) * keras.random.normal(tuple(shape), seed=seed)


@keras.saving.register_keras_serializable(package="keras_crvae")
class StandardLogistic(_Prior):
    """Logistic(0, 1) per element: p(z) = sigmoid(z) sigmoid(-z). Input `(batch, ...)`;
    `log_prob` -> `(batch,)`.

    Reference: Dinh, Krueger & Bengio, "NICE", 2014, section 3.4 (the prior of their MNIST model).
    """

    def log_prob_elements(self, z):
        return -ops.softplus(z) - ops.softplus(-z)

    def sample(self, shape, temperature=1.0, seed=None):
        """`shape` draws of Logistic(0, temperature): T * (log u - log(1 - u)), u ~ U(0, 1)."""
        tiny = 1e-6  # keeps log u and log(1 - u) finite in float32
        uniform = keras.random.uniform(tuple(shape), minval=tiny, maxval=1.0 - tiny, seed=seed)
        return float(temperature) * (ops.log(uniform) - ops.log1p(-uniform))
