"""The backend's reverse-mode autodiff behind one function (TensorFlow and JAX).

Layers stay in `keras.ops`; what Keras does not expose portably, the vector-Jacobian product of an
arbitrary function (RevNet's recomputing backward pass, `layers/reversible.py`), lives here
(docs/design.md, section 3).
"""

import keras


def vector_jacobian_product(function, primals, cotangent):
    """`(function(*primals), cotangent^T d function / d primals)` with the backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(primals)
            outputs = function(*primals)
        gradients = tape.gradient(outputs, primals, output_gradients=cotangent,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return outputs, list(gradients)
    import jax

    outputs, pullback = jax.vjp(function, *primals)
    return outputs, list(pullback(cotangent))
