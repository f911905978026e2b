"""BatchNormalization whose training step is one fused kernel on TensorFlow.

Keras' `BatchNormalization` computes a mixed-precision batch's statistics with about a dozen
separate ops (casts to float32, two means, a squared difference, the normalisation, casts back, and
their gradients). On a 2-core CPU those elementwise passes were 29% of a `mnist_crvae` bfloat16
training step (`tools/benchmarks/profile_step.py`, docs/performance.md). TensorFlow's
`FusedBatchNormV3` (oneDNN's batch normalisation on x86) does the same arithmetic in one pass with
float32 statistics for a bfloat16 input, and its gradient in one more.
"""

import keras
from keras import ops

# Inputs whose statistics the fused kernel takes in float32 (bfloat16 and float16 are normalised in
# float32 inside the kernel, like Keras' upcast).
_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="keras_crvae")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the same weights, arguments and arithmetic, run as
    TensorFlow's fused kernel where it applies.

    Why the same class name as Keras' layer: Keras' weight files (`.weights.h5`, the weights inside
    `.keras`, `BackupAndRestore` checkpoints) address a layer by its class name (`batch_normalization_3`),
    not its `name`. Keeping the name lets every checkpoint written with `keras.layers.BatchNormalization`
    (running Table 1 rows, shipped models) load into networks built with this layer and back; it
    serializes as `keras_crvae>BatchNormalization`.

    Input shape: `(batch, height, width, channels)` (any rank falls back to the Keras layer).
    Output shape: the input's; dtype: the layer's compute dtype.

    The fused path is taken on the TensorFlow backend for a rank-4 channels-last input without a
    mask, with `center`, `scale`, no renormalisation and no synchronised statistics; everything
    else (other backends, other ranks and options) runs `keras.layers.BatchNormalization.call`
    unchanged. Both paths normalise with the batch's biased variance in training and update the
    moving statistics as Keras does (`moving = moving * momentum + batch * (1 - momentum)`, the
    biased variance: the kernel's Bessel-corrected one is scaled back by `(n - 1) / n`), so a model
    trains and loads the same with either; tests/test_normalization.py compares values, gradients
    and the moving statistics.

    Args: those of `keras.layers.BatchNormalization`.

    Reference: Ioffe and Szegedy, "Batch Normalization", ICML 2015; the crVAE networks use it after
    every convolution (`networks/mnist.py`, `networks/blocks.py`).
    """

    def _fused_applies(self, inputs, mask):
        if keras.backend.backend() != "tensorflow" or mask is not None:
            return False
        if self.renorm or self.synchronized or not (self.center and self.scale):
            return False
        if len(inputs.shape) != 4 or self.axis not in (3, -1):
            return False
        return ops.dtype(inputs) in _FUSED_DTYPES

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        from keras_crvae import tf_kernels  # TF-only (docs/design.md)

        # float32 island: the statistics, scale and offset stay float32 for a bfloat16 input.
        gamma = ops.cast(self.gamma.value, "float32")
        beta = ops.cast(self.beta.value, "float32")
        if training and self.trainable:
            outputs, mean, variance = tf_kernels.fused_batch_norm(inputs, gamma, beta, self.epsilon)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            outputs = tf_kernels.fused_batch_norm(
                inputs, gamma, beta, self.epsilon,
                mean=ops.cast(self.moving_mean.value, "float32"),
                variance=ops.cast(self.moving_variance.value, "float32"))
        return ops.cast(outputs, self.compute_dtype)


def batch_norm_layers(network):
    """Every `keras.layers.BatchNormalization` inside `network` (this library's subclass included),
    nested layers and models searched, each once."""
    return [layer for layer in network._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def average_batch_norm_statistics(network, batches, call=None):
    """Re-estimates the moving mean and variance of every BatchNorm of `network` as the plain
    average of its batch statistics over `batches` ("precise BN").

    With a decay near 1 (the Two-Stage VAE's 0.999) a short run's moving statistics are still
    mostly their initial values; with a Keras momentum of 0.1 (the 64x64 presets') they are about
    the last batch's. Whether the average serves a network better than either is a measurement
    (docs/faces.md, "BatchNorm statistics at scoring time": for two face GANs it did not).

    This calls `call(batch)` once per batch, eagerly, each layer's momentum set to `i / (i + 1)`
    for the i-th batch, so after the last one the moving statistics are the mean of the
    `len(batches)` batch means and (biased) variances, then restores the momenta. Trainable weights
    do not change; a layer that updates state in training mode besides BatchNorm (spectral
    normalisation's power iteration, dropout's RNG) does. Not in the crVAE reference, which
    evaluates with its running statistics.

    Args:
        network: a `keras.Model` or layer; its BatchNorm layers are re-estimated.
        batches: iterable of inputs, each called once.
        call: callable `batch -> outputs` that runs `network` in training mode once (default
            `network(batch, training=True)`); e.g. a model's encoder followed by its decoder.

    Returns:
        int, the number of BatchNorm layers re-estimated (0: nothing to do, nothing was called).
    """
    norms = batch_norm_layers(network)
    if not norms:
        return 0
    call = call if call is not None else (lambda batch: network(batch, training=True))
    momenta = [layer.momentum for layer in norms]
    try:
        for index, batch in enumerate(batches):
            for layer in norms:
                layer.momentum = index / (index + 1.0)
            call(batch)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return len(norms)
