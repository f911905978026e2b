"""TensorFlow's fused CPU kernels behind the fast paths of `layers.BatchNormalization` and
`optimizers.MultiplierAdam` (docs/performance.md section 0). TF-only (docs/design.md): imported by
those classes only on the TensorFlow backend.
"""

import tensorflow as tf


def fused_batch_norm(x, gamma, beta, epsilon, mean=None, variance=None):
    """`FusedBatchNormV3` on a channels-last `(batch, h, w, c)` input with float32 `gamma`, `beta`.

    Training (`mean`, `variance` None): returns `(y, batch_mean, biased_batch_variance)`, the
    kernel's Bessel-corrected variance scaled back by `(n - 1) / n` (Keras' moving-statistics
    update uses the biased one). Inference: returns `y` normalised with `mean`, `variance`.
    """
    if mean is None:
        empty = tf.constant([], dtype="float32")
        y, batch_mean, unbiased = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)[:3]
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
        return y, batch_mean, unbiased * ((count - 1.0) / tf.maximum(count, 1.0))
    return tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta, mean=mean, variance=variance, epsilon=epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=False)[0]


def tf_variable(variable):
    """The `tf.Variable` behind a Keras variable, or `variable` itself."""
    inner = getattr(variable, "_value", None)
    return inner if inner is not None and hasattr(inner, "handle") else variable


def adam_applies(gradient, slots):
    """Whether `resource_apply_adam` can update: dense gradient, no distribution strategy, every
    slot (variable, m, v) a float32 resource variable."""
    if tf.distribute.has_strategy() or isinstance(gradient, tf.IndexedSlices):
        return False
    return all(hasattr(tf_variable(slot), "handle") for slot in slots) and (
        slots[0].dtype == "float32")


def resource_apply_adam(variable, m, v, gradient, learning_rate, beta_1, beta_2, epsilon, step):
    """Keras' Adam update (`alpha = lr sqrt(1 - b2^t) / (1 - b1^t)`, epsilon outside the root) as one
    `ResourceApplyAdam`; `step` is the 1-based update count."""
    dtype = variable.dtype
    step = tf.cast(step, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=tf_variable(variable).handle, m=tf_variable(m).handle, v=tf_variable(v).handle,
        beta1_power=tf.pow(tf.cast(beta_1, dtype), step),
        beta2_power=tf.pow(tf.cast(beta_2, dtype), step),
        lr=tf.cast(learning_rate, dtype), beta1=tf.cast(beta_1, dtype),
        beta2=tf.cast(beta_2, dtype), epsilon=tf.cast(epsilon, dtype),
        grad=tf.cast(gradient, dtype))
