"""A convolution with the inference BatchNormalization and the activation that follow it, in one layer.

In inference a BatchNormalization is a per-channel affine map with its moving statistics,
`y = (x - mean) * gamma / sqrt(var + eps) + beta`, so after a linear layer it can be folded into that
layer's kernel and bias (Jacob et al. 2018, "Quantization and Training of Integer-Arithmetic-Only
Inference", section 3.2):

    kernel' = kernel * s,   bias' = (bias - mean) * s + beta,   s = gamma / sqrt(var + eps)

with `s` along the kernel's output-channel axis (the last for `Conv2D` and `Dense`, the third for
`Conv2DTranspose`'s `(kh, kw, filters, in)`). The fold is computed in float32 from the layers' live
variables at every call, so the folded layer is never stale after training or `load_weights`.

Why: a decoder's bfloat16 inference on a CPU spent a third of its time in BatchNormalization, the
separate bias adds of the transposed convolutions and LeakyReLU (`tools/benchmarks/benchmark_decode.py`,
docs/performance.md). After the fold, TensorFlow's graph optimiser fuses convolution + bias +
activation into one oneDNN kernel; a 4x4 stride-2 "same" transposed convolution is computed as its
four output phases (`layers/transposed_conv.py`) with bias and activation applied before the
interleave, which is the same function (both are per-channel or elementwise) and fuses the same way
(where that pays: on JAX, and in bfloat16 on CPUs with AMX; `FoldedConvolution`'s `phases`).
"""

import keras
from keras import ops

from keras_crvae import precision
from keras_crvae.layers.transposed_conv import (
    PhaseConv2DTranspose,
    interleave_phases,
    phase_kernel,
    supports_phases,
)

# Exactly these classes (subclasses may compute something else, e.g. equalized learning rates).
LINEAR_LAYERS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, PhaseConv2DTranspose,
                 keras.layers.Dense)


def is_foldable_linear(layer):
    """Whether `layer` is one of LINEAR_LAYERS (exactly), channels-last, with a linear activation."""
    return (type(layer) in LINEAR_LAYERS
            and getattr(layer, "data_format", "channels_last") == "channels_last"
            and getattr(layer.activation, "__name__", None) == "linear")


@keras.saving.register_keras_serializable(package="keras_crvae")
class FoldedConvolution(keras.layers.Layer):
    """`activation(batch_norm(linear(x), training=False))` as one convolution (module docstring).

    The layer holds the three layers it replaces (their variables, not copies), so it computes the
    same function as they do at any time. Built by `keras_crvae.networks.inference_network`.

    Args:
        linear: a `keras.layers.Conv2D`, `Conv2DTranspose` (or `PhaseConv2DTranspose`) or `Dense`
            with a linear activation.
        batch_norm: optional `keras.layers.BatchNormalization` over the last axis, applied to the
            linear layer's output (with its moving statistics).
        activation: optional elementwise layer (e.g. `keras.layers.LeakyReLU`) applied last.
        phases: "auto" (default), True or False: compute a 4x4 / stride-2 / "same" transposed
            convolution as four output phases. "auto": on JAX, and on TensorFlow in bfloat16 on a
            CPU with AMX (`precision.cpu_has_amx`), where the phase form with its fused bias and
            activation is faster than the native op; the native op elsewhere (float32, and
            AVX512-BF16 CPUs without AMX, where the phases' 2.25x multiply-adds cost more than the
            fusion saves: `tools/benchmarks/benchmark_decode.py`, docs/performance.md section 0).

    Input shape: the linear layer's. Output shape: the linear layer's output shape; dtype: the
    linear layer's compute dtype.

    Reference: the conv -> BN -> LeakyReLU blocks of WendyShang/crVAE `models/*.lua`
    (`networks/blocks.py`).
    """

    def __init__(self, linear, batch_norm=None, activation=None, phases="auto", **kwargs):
        kwargs.setdefault("dtype", linear.dtype_policy)
        super().__init__(**kwargs)
        if not is_foldable_linear(linear):
            raise ValueError(
                "`linear` must be a channels-last keras Conv2D, Conv2DTranspose or Dense layer "
                f"with a linear activation; got {type(linear).__name__} {linear.name!r}.")
        if phases not in ("auto", True, False):
            raise ValueError(f"`phases` must be 'auto', True or False; got {phases!r}.")
        self.linear = linear
        self.batch_norm = batch_norm
        self.activation = activation
        self.phases = phases

    def build(self, input_shape):
        # Layers deserialized from a config come unbuilt; the network's own layers are built.
        if not self.linear.built:
            self.linear.build(input_shape)
        output_shape = self.linear.compute_output_shape(input_shape)
        for layer in (self.batch_norm, self.activation):
            if layer is not None and not layer.built:
                layer.build(output_shape)
        self.built = True

    def _uses_phases(self):
        if not isinstance(self.linear, keras.layers.Conv2DTranspose) or not supports_phases(
                self.linear):
            return False
        if self.phases == "auto":
            if keras.backend.backend() == "jax":
                return True
            # Measured per CPU kind (tools/benchmarks/benchmark_decode.py): in bfloat16 the phase
            # form decodes 1.18-1.35x faster than the native op on AMX, 0.75-0.82x as fast on
            # AVX512-BF16 without AMX; in float32 0.74-0.77x on both.
            return (keras.backend.standardize_dtype(self.compute_dtype) == "bfloat16"
                    and precision.cpu_has_amx())
        return bool(self.phases)

    def folded_weights(self):
        """`(kernel, bias)` in float32 with the BatchNormalization folded in (module docstring)."""
        linear = self.linear
        kernel = ops.cast(linear.kernel, "float32")
        output_axis = 2 if isinstance(linear, keras.layers.Conv2DTranspose) else len(kernel.shape) - 1
        channels = kernel.shape[output_axis]
        bias = (ops.cast(linear.bias, "float32") if linear.use_bias
                else ops.zeros((channels,), "float32"))
        norm = self.batch_norm
        if norm is not None:
            scale = ops.rsqrt(ops.cast(norm.moving_variance, "float32") + norm.epsilon)
            if norm.scale:
                scale = scale * ops.cast(norm.gamma, "float32")
            bias = (bias - ops.cast(norm.moving_mean, "float32")) * scale
            if norm.center:
                bias = bias + ops.cast(norm.beta, "float32")
            shape = [1] * len(kernel.shape)
            shape[output_axis] = channels
            kernel = kernel * ops.reshape(scale, shape)
        return kernel, bias

    def call(self, inputs):
        linear = self.linear
        kernel, bias = self.folded_weights()
        kernel = ops.cast(kernel, self.compute_dtype)
        bias = ops.cast(bias, self.compute_dtype)
        interleave = None
        if isinstance(linear, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        elif isinstance(linear, keras.layers.Conv2DTranspose):
            if self._uses_phases():
                outputs = ops.conv(inputs, phase_kernel(kernel), strides=1, padding="same")
                bias = ops.tile(bias, (4,))  # phase channels are (phase_row, phase_col, filter)
                interleave = linear.filters
            else:
                outputs = ops.conv_transpose(
                    inputs, kernel, strides=linear.strides, padding=linear.padding,
                    output_padding=linear.output_padding, data_format=linear.data_format,
                    dilation_rate=linear.dilation_rate)
        else:
            outputs = linear.convolution_op(inputs, kernel)
        # A (channels,) bias on the last axis: TensorFlow's BiasAdd, which its graph optimiser fuses
        # with the convolution and the activation (keras' `add` on TensorFlow).
        outputs = ops.add(outputs, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        if interleave is not None:
            outputs = interleave_phases(outputs, interleave)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.linear.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            linear=keras.saving.serialize_keras_object(self.linear),
            batch_norm=(None if self.batch_norm is None
                        else keras.saving.serialize_keras_object(self.batch_norm)),
            activation=(None if self.activation is None
                        else keras.saving.serialize_keras_object(self.activation)),
            phases=self.phases)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("linear", "batch_norm", "activation"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
