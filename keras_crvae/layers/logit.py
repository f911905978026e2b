"""RealNVP's logit preprocessing of images in [0, 1) (Dinh et al. 2017, section 4.1):

    y = logit(alpha + (1 - 2 alpha) x),     log|det J| = sum_d [log(1 - 2 alpha) - log p_d - log(1 - p_d)]

with p = alpha + (1 - 2 alpha) x; alpha (0.05 in RealNVP, 1e-6 or so elsewhere) keeps the
logit away from the infinities at 0 and 1, so the flow models an unbounded variable."""

import math

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector, sum_over_event


@keras.saving.register_keras_serializable(package="keras_crvae")
class LogitTransform(Bijector):
    """`y = logit(alpha + (1 - 2 alpha) x)` element-wise for x in [0, 1] (module docstring).

    Input and output shape: `(batch, ...)`.

    Args:
        alpha: float in [0, 0.5), default 0.05.

    Reference: Dinh et al., "Density estimation using Real NVP", 2017, section 4.1.
    """

    def __init__(self, alpha=0.05, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(alpha) < 0.5:
            raise ValueError(f"`alpha` must be in [0, 0.5), got {alpha!r}.")
        self.alpha = float(alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def _log_det(self, y):
        # d p / d x = 1 - 2 alpha; d logit(p) / d p = 1 / (p (1 - p)) = 1 / (sigmoid(y) sigmoid(-y))
        return sum_over_event(math.log(1.0 - 2.0 * self.alpha) - ops.log_sigmoid(y)
                              - ops.log_sigmoid(-y))

    def forward_and_log_det(self, x, context=None, training=None):
        p = self.alpha + (1.0 - 2.0 * self.alpha) * x
        y = ops.log(p) - ops.log1p(-p)
        return y, self._log_det(y)

    def inverse_and_log_det(self, y, context=None, training=None):
        x = (ops.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)
        return x, -self._log_det(y)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config
