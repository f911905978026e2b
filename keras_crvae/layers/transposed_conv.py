"""A 4x4 stride-2 transposed convolution that XLA:CPU can differentiate quickly.

The networks up-sample with 4x4 stride-2 transposed convolutions (Torch `SpatialFullConvolution(4, 4,
2, 2, 1, 1)`). JAX lowers them to convolutions with an input dilation, and XLA:CPU differentiates
those with a generic loop: one forward+backward pass of each of the MNIST crVAE decoder's three
transposed convolutions took 9.5-14 s at batch 128 on 2 cores (`KERAS_BACKEND=jax python
tools/benchmarks/profile_layers.py --native_transposed_conv`; jax-ml/jax#23783, #31662; docs/performance.md).

The same function written as four output phases: output pixel `(2m + a, 2n + b)` only sees input
pixels `m - 1 .. m + 1` / `n - 1 .. n + 1` through kernel taps that depend on the phase `(a, b)`:

    phase a = 0:  x[m-1] * w[3] + x[m] * w[1]          phase a = 1:  x[m] * w[2] + x[m+1] * w[0]

so one stride-1 3x3 "same" convolution with `4 * filters` outputs (its kernel gathered from the 4x4
one, zeros where a phase has no tap) followed by a depth-to-space interleave computes it, using only
operations XLA differentiates with its fast paths. The weights are the `Conv2DTranspose` ones
(kernel `(4, 4, filters, in_channels)`, bias), so configurations and `.keras` files are
interchangeable; on TensorFlow (oneDNN has a fast native kernel) and for every other configuration
the layer runs `Conv2DTranspose.call` unchanged.
"""

import keras
import numpy as np
from keras import ops

# Which 4x4 tap each (output phase, input offset + 1) pair uses; -1: none (a zero in the 3x3 kernel).
_TAP_OF_PHASE_AND_OFFSET = ((3, 1, -1), (-1, 2, 0))


def _phase_selection():
    """`(2, 3, 4)` one-hot: `[phase, offset + 1, tap]`."""
    selection = np.zeros((2, 3, 4), "float32")
    for phase, taps in enumerate(_TAP_OF_PHASE_AND_OFFSET):
        for offset, tap in enumerate(taps):
            if tap >= 0:
                selection[phase, offset, tap] = 1.0
    return selection


def supports_phases(layer):
    """Whether `layer` (a `Conv2DTranspose`) is a 4x4 / stride-2 / "same" channels-last transposed
    convolution without output padding or dilation: the case the phase form computes."""
    return (tuple(layer.kernel_size) == (4, 4) and tuple(layer.strides) == (2, 2)
            and layer.padding == "same" and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last" and layer.output_padding is None)


def phase_kernel(kernel):
    """The stride-1 3x3 kernel of the four output phases of a 4x4 / stride-2 / "same" transposed
    convolution: `(4, 4, filters, in)` -> `(3, 3, in, 4 * filters)`, output channels ordered
    `(phase_row, phase_col, filter)` (module docstring)."""
    filters, in_channels = kernel.shape[2], kernel.shape[3]
    selection = ops.convert_to_tensor(_phase_selection(),
                                     dtype=keras.backend.standardize_dtype(kernel.dtype))
    # (ky, kx, in, a, b, filters): the 3x3 kernel of every output phase (a, b).
    kernels = ops.einsum("auy,bvx,yxoi->uviabo", selection, selection, kernel)
    return ops.reshape(kernels, (3, 3, in_channels, 4 * filters))


def interleave_phases(phases, filters):
    """`(B, H, W, 4 * filters)` phase outputs (channels `(phase_row, phase_col, filter)`) ->
    the `(B, 2H, 2W, filters)` image: output pixel `(2m + a, 2n + b)` is phase `(a, b)` at `(m, n)`
    (a depth-to-space interleave)."""
    batch, height, width = ops.shape(phases)[0], ops.shape(phases)[1], ops.shape(phases)[2]
    phases = ops.reshape(phases, (batch, height, width, 2, 2, filters))
    return ops.reshape(ops.transpose(phases, (0, 1, 3, 2, 4, 5)),
                       (batch, 2 * height, 2 * width, filters))


@keras.saving.register_keras_serializable(package="keras_crvae")
class PhaseConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` that computes 4x4 / stride 2 / "same" as four phases on JAX.

    Input `(B, H, W, C_in)` -> output `(B, 2H, 2W, filters)`, exactly `Conv2DTranspose`'s function and
    weights (tested against it on every backend). Arguments: those of `Conv2DTranspose`.
    `phase_implementation`: "auto" (default: phases on the JAX backend, the native op elsewhere),
    True or False.

    >>> layer = PhaseConv2DTranspose(8, 4, strides=2, padding="same")
    >>> tuple(layer(keras.ops.zeros((1, 4, 4, 3))).shape)
    (1, 8, 8, 8)

    Reference: the sub-pixel view of transposed convolutions (Shi et al. 2016, "Is the deconvolution
    layer the same as a convolutional layer?"); the network layer is Torch's
    `SpatialFullConvolution(nIn, nOut, 4, 4, 2, 2, 1, 1)` of WendyShang/crVAE `models/*.lua`.
    """

    def __init__(self, *args, phase_implementation="auto", **kwargs):
        super().__init__(*args, **kwargs)
        if phase_implementation not in ("auto", True, False):
            raise ValueError("`phase_implementation` must be 'auto', True or False; got "
                             f"{phase_implementation!r}.")
        self.phase_implementation = phase_implementation

    def _uses_phases(self):
        supported = supports_phases(self)
        if self.phase_implementation == "auto":
            return supported and keras.backend.backend() == "jax"
        return bool(self.phase_implementation) and supported

    def call(self, inputs):
        if not self._uses_phases():
            return super().call(inputs)
        kernel = phase_kernel(ops.cast(self.kernel, self.compute_dtype))
        outputs = interleave_phases(ops.conv(inputs, kernel, strides=1, padding="same"),
                                    self.filters)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["phase_implementation"] = self.phase_implementation
        return config
