"""Planar and radial flows (Rezende & Mohamed, "Variational Inference with Normalizing Flows",
ICML 2015, section 4.1 and appendix A).

Both act on one example's latent flattened to a vector `z` of size `D` (any event shape is
flattened and restored), with `h = tanh`:

    planar   f(z) = z + u_hat * h(w.z + b)
             log|det df/dz| = log|1 + u_hat . psi(z)|,   psi(z) = h'(w.z + b) * w
             u_hat = u + (m(w.u) - w.u) * w / |w|^2,   m(a) = -1 + softplus(a)
             (appendix A: then w.u_hat > -1, so f is invertible)
    radial   f(z) = z + beta_hat * h(alpha, r) * (z - z0),   r = |z - z0|,   h = 1 / (alpha + r)
             log|det df/dz| = (D - 1) log(1 + beta_hat h) + log(1 + beta_hat h + beta_hat h' r)
             alpha = softplus(alpha_raw) > 0,  beta_hat = -alpha + softplus(beta_raw) > -alpha
             (appendix A: beta >= -alpha makes f invertible)

Inverses (no closed form is given in the paper):
- planar: with `a = w.z + b` and `k = w.u_hat >= -1`, `w.y + b = a + k tanh(a)` is a monotone
  scalar equation in `a`; its root lies in `[c - |k|, c + |k|]` (`c = w.y + b`, `|tanh| <= 1`).
  A fixed number of bracketed Newton steps (a bisection step whenever Newton leaves the bracket)
  finds it to float32 precision; then `z = y - u_hat tanh(a)`.
- radial: `|y - z0| = r (1 + beta_hat / (alpha + r))` is the quadratic
  `r^2 + (alpha + beta_hat - |y - z0|) r - alpha |y - z0| = 0` whose non-negative root is `r`;
  then `z - z0 = (y - z0) / (1 + beta_hat / (alpha + r))`.

Amortisation (`context_dim > 0`): the paper's VAE experiments compute the flow parameters from
the data (its Figure 2: the inference network outputs `mu`, `sigma` and the flow parameters
`lambda`). Here a Dense layer maps the conditioning input `context` `(batch, context_dim)` to each
example's parameters; without context the parameters are free weights shared by all examples.
"""

import math

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector

# Bracketed Newton steps of the planar inverse: the bracket has width 2|k|; 40 steps reach float32
# precision even when every step falls back to bisection for |k| < 2^15.
PLANAR_INVERSE_STEPS = 40


def _flatten_event(x):
    return ops.reshape(x, (ops.shape(x)[0], -1))


class _ParameterisedFlow(Bijector):
    """Shared parameter handling of the planar and radial flows: free weights, or a Dense layer of
    the context (amortised). Subclasses list their raw parameters in `_parameter_sizes(dim)`."""

    def __init__(self, context_dim=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(context_dim, bool) or int(context_dim) < 0:
            raise ValueError(f"`context_dim` must be an integer >= 0, got {context_dim!r}.")
        self.context_dim = int(context_dim)

    def _parameter_sizes(self, dim):
        raise NotImplementedError

    def build(self, input_shape):
        self.event_shape = tuple(input_shape[1:])
        self.dim = int(math.prod(self.event_shape))
        sizes = self._parameter_sizes(self.dim)
        self._sizes = [size for _, size in sizes]
        if self.context_dim:
            # Small initial weights: the flow starts close to the identity for every example.
            self.parameter_net = keras.layers.Dense(
                sum(self._sizes), kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                dtype=self.dtype_policy, name="parameter_net")
            self.parameter_net.build((None, self.context_dim))
        else:
            self.raw_parameters = [
                self.add_weight(shape=(size,), name=name,
                                initializer=keras.initializers.RandomNormal(stddev=0.01))
                for name, size in sizes]
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _raw_parameters(self, context, batch):
        """The raw parameters, each `(batch or 1, size)`."""
        if not self.context_dim:
            return [ops.expand_dims(ops.convert_to_tensor(p), 0) for p in self.raw_parameters]
        if context is None:
            raise ValueError(f"{type(self).__name__} {self.name!r} has context_dim="
                             f"{self.context_dim} and needs a `context` (batch, {self.context_dim}).")
        flat = self.parameter_net(_flatten_event(ops.cast(context, self.compute_dtype)))
        pieces, start = [], 0
        for size in self._sizes:
            pieces.append(flat[:, start:start + size])
            start += size
        return pieces

    def get_config(self):
        config = super().get_config()
        config["context_dim"] = self.context_dim
        return config


@keras.saving.register_keras_serializable(package="keras_crvae")
class PlanarFlow(_ParameterisedFlow):
    """One planar flow step `f(z) = z + u_hat tanh(w.z + b)` (module docstring).

    Input shape: `(batch, ...)`, any event shape (flattened to `D` values inside); output: the
    same. `context` `(batch, context_dim)` when `context_dim > 0`.

    Args:
        context_dim: int, default 0. 0: `u`, `w`, `b` are weights shared by all examples;
            > 0: a Dense layer of the context gives each example its own (amortised, as in the
            paper's VAE experiments).
        **kwargs: `keras.layers.Layer` arguments.

    >>> flow = PlanarFlow()
    >>> y, log_det = flow.forward_and_log_det(keras.ops.zeros((2, 3)))
    >>> tuple(y.shape), tuple(log_det.shape)
    ((2, 3), (2,))

    Reference: Rezende & Mohamed 2015, section 4.1 (eqs. 10-12) and appendix A.
    """

    def _parameter_sizes(self, dim):
        return [("u", dim), ("w", dim), ("b", 1)]

    def _parameters(self, context, batch):
        """`(u_hat, w, b)`: `(batch or 1, D)`, `(batch or 1, D)`, `(batch or 1, 1)`."""
        u, w, b = self._raw_parameters(context, batch)
        w_dot_u = ops.sum(w * u, axis=-1, keepdims=True)
        squared_norm = ops.sum(ops.square(w), axis=-1, keepdims=True) + 1e-12
        # Appendix A: m(a) = -1 + softplus(a) keeps w.u_hat > -1 (invertibility).
        u_hat = u + (-1.0 + ops.softplus(w_dot_u) - w_dot_u) * w / squared_norm
        return u_hat, w, b

    def forward_and_log_det(self, x, context=None, training=None):
        z = _flatten_event(x)
        u_hat, w, b = self._parameters(context, ops.shape(z)[0])
        activation = ops.tanh(ops.sum(w * z, axis=-1, keepdims=True) + b)
        y = z + u_hat * activation
        # psi(z) . u_hat = (1 - tanh^2) (w . u_hat), >= -1 + something > -1 by construction.
        w_dot_u_hat = ops.sum(w * u_hat, axis=-1)
        log_det = ops.log(ops.abs(1.0 + (1.0 - ops.square(activation[:, 0])) * w_dot_u_hat))
        return ops.reshape(y, ops.shape(x)), log_det

    def inverse_and_log_det(self, y, context=None, training=None):
        flat_y = _flatten_event(y)
        u_hat, w, b = self._parameters(context, ops.shape(flat_y)[0])
        slope = ops.sum(w * u_hat, axis=-1)          # k = w.u_hat >= -1
        target = ops.sum(w * flat_y, axis=-1) + b[:, 0]  # c = w.y + b = a + k tanh(a)
        low, high = target - ops.abs(slope), target + ops.abs(slope)
        a = target
        for _ in range(PLANAR_INVERSE_STEPS):
            tanh_a = ops.tanh(a)
            residual = a + slope * tanh_a - target
            # Keep the bracket around the root (the residual increases with a).
            low = ops.where(residual < 0, a, low)
            high = ops.where(residual > 0, a, high)
            derivative = 1.0 + slope * (1.0 - ops.square(tanh_a))
            newton = a - residual / ops.maximum(derivative, 1e-12)
            inside = ops.logical_and(newton > low, newton < high)
            a = ops.where(inside, newton, 0.5 * (low + high))
        activation = ops.tanh(a)
        z = flat_y - u_hat * activation[:, None]
        log_det = -ops.log(ops.abs(1.0 + (1.0 - ops.square(activation)) * slope))
        return ops.reshape(z, ops.shape(y)), log_det


@keras.saving.register_keras_serializable(package="keras_crvae")
class RadialFlow(_ParameterisedFlow):
    """One radial flow step `f(z) = z + beta_hat (z - z0) / (alpha + |z - z0|)` (module docstring).

    Input shape: `(batch, ...)`, any event shape (flattened to `D` values inside); output: the
    same. `context` `(batch, context_dim)` when `context_dim > 0`.

    Args:
        context_dim: int, default 0. 0: `z0`, `alpha`, `beta` are weights shared by all examples;
            > 0: a Dense layer of the context gives each example its own (amortised).
        **kwargs: `keras.layers.Layer` arguments.

    Reference: Rezende & Mohamed 2015, section 4.1 (eqs. 13-14) and appendix A.
    """

    def _parameter_sizes(self, dim):
        return [("z0", dim), ("alpha", 1), ("beta", 1)]

    def _parameters(self, context, batch):
        """`(z0, alpha, beta_hat)`: `(batch or 1, D)`, `(batch or 1, 1)`, `(batch or 1, 1)`."""
        z0, alpha_raw, beta_raw = self._raw_parameters(context, batch)
        alpha = ops.softplus(alpha_raw)
        beta_hat = -alpha + ops.softplus(beta_raw)  # appendix A: beta >= -alpha
        return z0, alpha, beta_hat

    def forward_and_log_det(self, x, context=None, training=None):
        z = _flatten_event(x)
        z0, alpha, beta_hat = self._parameters(context, ops.shape(z)[0])
        offset = z - z0
        radius = ops.sqrt(ops.sum(ops.square(offset), axis=-1, keepdims=True))
        h = 1.0 / (alpha + radius)
        y = z + beta_hat * h * offset
        return ops.reshape(y, ops.shape(x)), self._log_det(alpha, beta_hat, radius)

    def _log_det(self, alpha, beta_hat, radius):
        """`log|det df/dz|` at a point at distance `radius` from z0, `(batch,)`."""
        h = 1.0 / (alpha + radius)
        scale = 1.0 + beta_hat * h
        # h'(r) r = -r / (alpha + r)^2 = -r h^2
        return ((self.dim - 1) * ops.log(scale)
                + ops.log(scale - beta_hat * radius * ops.square(h)))[:, 0]

    def inverse_and_log_det(self, y, context=None, training=None):
        flat_y = _flatten_event(y)
        z0, alpha, beta_hat = self._parameters(context, ops.shape(flat_y)[0])
        offset_y = flat_y - z0
        radius_y = ops.sqrt(ops.sum(ops.square(offset_y), axis=-1, keepdims=True))
        # r^2 + B r - alpha r_y = 0, B = alpha + beta_hat - r_y: the non-negative root, in the form
        # that avoids cancellation for either sign of B.
        linear = alpha + beta_hat - radius_y
        root = ops.sqrt(ops.square(linear) + 4.0 * alpha * radius_y)
        radius = ops.where(linear > 0,
                           2.0 * alpha * radius_y / ops.maximum(linear + root, 1e-30),
                           0.5 * (root - linear))
        z = z0 + offset_y / (1.0 + beta_hat / (alpha + radius))
        return ops.reshape(z, ops.shape(y)), -self._log_det(alpha, beta_hat, radius)
