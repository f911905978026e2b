"""Shared exactness checks of the flow layers (`keras_crvae.layers.bijector.Bijector`).

`assert_invertible(bijector, x)`: inverse(forward(x)) == x to float32 precision, and the inverse's
log-determinant is minus the forward's.
`assert_log_det_matches_autodiff(bijector, x)`: the forward log-determinant equals
log|det J| of the autodiff Jacobian of `forward`, per example, computed in float64 by NumPy from
the backend's own Jacobian (TensorFlow: `GradientTape.batch_jacobian`; JAX: `jax.jacfwd`).
Use small inputs: the Jacobian is (event size)^2 per example.
"""

import keras
import numpy as np
from keras import ops


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value), dtype=np.float64)


def assert_invertible(bijector, x, context=None, atol=1e-5):
    """Checks f^-1(f(x)) = x and log|det df^-1| = -log|det df| (both to `atol`)."""
    y, forward_log_det = bijector.forward_and_log_det(x, context=context)
    x_back, inverse_log_det = bijector.inverse_and_log_det(y, context=context)
    np.testing.assert_allclose(_numpy(x_back), _numpy(x), atol=atol, rtol=1e-5)
    np.testing.assert_allclose(_numpy(inverse_log_det), -_numpy(forward_log_det),
                               atol=atol * 10, rtol=1e-5)
    assert tuple(forward_log_det.shape) == (x.shape[0],)


def autodiff_jacobians(function, x):
    """The Jacobian of `function` (batch-wise: example i's output depends on example i only) at x.

    Returns a float64 NumPy array of shape (batch, event_size_out, event_size_in).
    """
    backend = keras.backend.backend()
    batch = x.shape[0]
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        jacobian = tape.batch_jacobian(y, x)
    elif backend == "jax":
        import jax

        def single(example):
            return function(example[None])[0]

        jacobian = jax.vmap(jax.jacfwd(single))(x)
    else:  # pragma: no cover - the project tests TensorFlow and JAX
        raise NotImplementedError(backend)
    jacobian = _numpy(jacobian)
    return jacobian.reshape(batch, -1, int(np.prod(x.shape[1:])))


def assert_log_det_matches_autodiff(bijector, x, context=None, atol=1e-4):
    """Checks `log_det_jacobian(x)` against log|det| of the autodiff Jacobian of `forward`."""
    jacobians = autodiff_jacobians(lambda value: bijector.forward(value, context=context), x)
    _, expected = np.linalg.slogdet(jacobians)
    actual = _numpy(bijector.log_det_jacobian(x, context=context))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=1e-4)
