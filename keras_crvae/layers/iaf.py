"""Inverse autoregressive flow steps (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling,
"Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS 2016, section 4 and
Algorithm 1).

One step on a latent `z` flattened to `D` values, with a MADE (`keras_crvae.layers.made.MADE`)
that sees `z` autoregressively and the encoder's context `h` unmasked:

    [m, s] = MADE(z, h)                     m_d, s_d depend on z_<d (in the step's ordering) and h
    sigma  = sigmoid(s + gate_bias)          (the numerically stable update of section 4 / Alg. 1)
    z'     = sigma * z + (1 - sigma) * m
    log|det dz'/dz| = sum_d log sigma_d     (the Jacobian is triangular)

`gate_bias` (default 1.0, the paper's "forget gate bias" of 1 or 2) starts sigma near 1, so a
fresh step is close to the identity. Consecutive steps reverse the ordering (`ordering=
"right_to_left"` on every other step, as the paper reverses z between steps) so that each
coordinate gets to depend on every other. The inverse is sequential: D passes of the MADE, each
fixing one more coordinate in the ordering (cheap in the forward direction, which is the one a
posterior samples with; the inverse is for tests and density evaluation of given z).
"""

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.made import MADE, ORDERINGS


@keras.saving.register_keras_serializable(package="keras_crvae")
class InverseAutoregressiveFlow(Bijector):
    """One IAF step `z' = sigma z + (1 - sigma) m` with `[m, s] = MADE(z, context)`.

    Input shape: `(batch, ...)`, any event shape (flattened to `D` values inside); output: the
    same. `context` `(batch, context_dim)` when `context_dim > 0` (flattened if it has more axes).

    Args:
        hidden_units: sequence of ints, the MADE's hidden widths (each >= D - 1).
        context_dim: int, default 0. Width of the conditioning input h (0: none).
        ordering: str, "left_to_right" (default) or "right_to_left" (every other step).
        gate_bias: float, default 1.0. Added to `s` before the sigmoid.
        activation: str, default "elu". The MADE's hidden activation.
        **kwargs: `keras.layers.Layer` arguments.

    >>> step = InverseAutoregressiveFlow([8])
    >>> y, log_det = step.forward_and_log_det(keras.ops.ones((2, 3)))
    >>> tuple(y.shape), tuple(log_det.shape)
    ((2, 3), (2,))

    Reference: Kingma et al. 2016, section 4, eqs. 10-14 and Algorithm 1.
    """

    def __init__(self, hidden_units, context_dim=0, ordering="left_to_right", gate_bias=1.0,
                 activation="elu", **kwargs):
        super().__init__(**kwargs)
        if ordering not in ORDERINGS:
            raise ValueError(f"`ordering` must be one of {ORDERINGS}, got {ordering!r}.")
        self.hidden_units = [int(units) for units in hidden_units]
        self.context_dim = int(context_dim)
        self.ordering = ordering
        self.gate_bias = float(gate_bias)
        self.activation = activation
        # A small output layer: m and s start near 0, so sigma ~ sigmoid(gate_bias) everywhere.
        self.made = MADE(self.hidden_units, num_params=2, ordering=ordering,
                         context_dim=self.context_dim, activation=activation,
                         output_kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                         dtype=self.dtype_policy, name="made")

    def build(self, input_shape):
        dim = 1
        for size in input_shape[1:]:
            dim *= int(size)
        self.dim = dim
        self.made.build((None, dim))
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _shift_and_gate(self, flat_z, context):
        if self.context_dim:
            if context is None:
                raise ValueError(f"InverseAutoregressiveFlow {self.name!r} has context_dim="
                                 f"{self.context_dim} and needs a `context`.")
            context = ops.reshape(context, (ops.shape(context)[0], -1))
        outputs = self.made(flat_z, context=context)
        shift, gate = outputs[..., 0], outputs[..., 1]
        return shift, ops.sigmoid(gate + self.gate_bias), ops.log_sigmoid(gate + self.gate_bias)

    def forward_and_log_det(self, x, context=None, training=None):
        z = ops.reshape(x, (ops.shape(x)[0], -1))
        shift, sigma, log_sigma = self._shift_and_gate(z, context)
        y = sigma * z + (1.0 - sigma) * shift
        return ops.reshape(y, ops.shape(x)), ops.sum(log_sigma, axis=-1)

    def inverse_and_log_det(self, y, context=None, training=None):
        flat_y = ops.reshape(y, (ops.shape(y)[0], -1))
        z = ops.zeros_like(flat_y)
        # After pass i the first i + 1 coordinates (in the ordering) are exact: their shift and
        # gate depend only on the coordinates before them, which were exact already.
        for _ in range(self.dim):
            shift, sigma, _ = self._shift_and_gate(z, context)
            z = (flat_y - (1.0 - sigma) * shift) / sigma
        _, _, log_sigma = self._shift_and_gate(z, context)
        return ops.reshape(z, ops.shape(y)), -ops.sum(log_sigma, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_units": list(self.hidden_units), "context_dim": self.context_dim,
                       "ordering": self.ordering, "gate_bias": self.gate_bias,
                       "activation": self.activation})
        return config
