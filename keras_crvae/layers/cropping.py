"""A 2-D crop whose gradient is a pad: `keras.layers.Cropping2D` computed with one `Slice`.

Keras' `Cropping2D` indexes `inputs[:, a:-b, c:-d, :]`, a `StridedSlice` on TensorFlow, whose
gradient (`StridedSliceGrad`) has no fast CPU kernel for bfloat16: cropping the crVAE decoder's last
transposed convolution from 32x32 to 30x30 took 6% of a `mnist_crvae` bfloat16 training step
(`tools/benchmarks/profile_step.py`; 43 ms against 3-4 ms for a `Slice`, whose gradient is a `Pad`,
on a 128x32x32x32 batch, docs/performance.md).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_crvae")
class SliceCropping2D(keras.layers.Cropping2D):
    """`keras.layers.Cropping2D` with the same arguments and output, taken with `keras.ops.slice`.

    Input shape: `(batch, height, width, channels)` (channels-last, static height and width).
    Output shape: `(batch, height - top - bottom, width - left - right, channels)`.
    A channels-first input or an unknown height or width falls back to `Cropping2D.call`.

    Args: those of `keras.layers.Cropping2D`.

    Used after the 4x4 stride-2 transposed convolutions with Torch padding of the crVAE reference
    (`networks/blocks.py`, `transposed_conv`) and the centre crop of the Two-Stage VAE's ResNet
    decoder (`networks/resnet.py`).
    """

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if self.data_format == "channels_first" or height is None or width is None:
            return super().call(inputs)
        (top, bottom), (left, right) = self.cropping
        if top + bottom >= height or left + right >= width:
            return super().call(inputs)  # Cropping2D's error message
        size = (ops.shape(inputs)[0], height - top - bottom, width - left - right, inputs.shape[3])
        return ops.slice(inputs, (0, top, left, 0), size)
