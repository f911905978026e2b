"""RealNVP's multi-scale architecture: after each scale but the last, half of the channels are
factored out (sent straight to the prior) and only the other half goes on to the next scale
(Dinh et al. 2017, section 3.6; Glow's "split", Kingma & Dhariwal 2018, Figure 2).

    h_0 = x;   (z_i, h_i) = split(f_i(h_{i-1}))  for i < L;   z_L = f_L(h_{L-1})
    z = concat(flatten(z_1), ..., flatten(z_L))          log|det J| = sum_i log|det J_{f_i}|

Factoring out is a coordinate selection, so it adds nothing to the log-determinant; the output is
the vector z of the input's size, on which a factorized prior is placed.

**Glow's learned prior of the split** (`learned_split_prior=True`; Kingma & Dhariwal 2018,
section 3 and the released code's `split2d`): the factored-out half z_i is Gaussian given the kept
half h_i, with a mean and a log-scale from a zero-initialised 3x3 convolution of h_i:

    [m_i, log s_i] = conv(h_i),   p(z_i | h_i) = N(z_i; m_i, s_i^2)

Written as a bijector, the split outputs the standardized eps_i = (z_i - m_i) / s_i, whose
log-determinant is -sum log s_i; the model's fixed N(0, I) prior on eps_i then gives exactly
log p(z_i | h_i) (change of variables). The inverse needs h_i, which the inverse pass has
recovered before it reaches scale i: z_i = m_i(h_i) + s_i(h_i) eps_i. Sampling eps at temperature
T draws z_i ~ N(m_i, (T s_i)^2), Glow's temperature. At initialisation (zero convolution) m = 0,
s = 1: RealNVP's factor-out.
"""

import copy

import keras
from keras import ops

from keras_crvae.layers.bijector import Bijector
from keras_crvae.layers.event_shapes import build_for


def _size(shape):
    size = 1
    for dimension in shape:
        size *= int(dimension)
    return size


@keras.saving.register_keras_serializable(package="keras_crvae")
class MultiScaleFlow(Bijector):
    """Scales of bijectors with half the channels factored out after each but the last.

    Input shape: `(batch, H, W, C)` images; output shape: `(batch, H*W*C)`, the factored-out
    parts of scales 1..L-1 followed by the last scale's output, each flattened row-major.

    Args:
        scales: list of `Bijector`s (usually `BijectorChain`s), one per scale; scale i's output
            must have an even number of channels for i < L.
        learned_split_prior: bool, default False. Glow's learned conditional prior of each
            factored-out half (module docstring): the factored-out parts in the output are
            standardized by a mean and log-scale computed from the kept half by a
            zero-initialised 3x3 convolution (one per split, `split_prior_{i}`).
        **kwargs: `keras.layers.Layer` arguments.

    Reference: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    section 3.6; Kingma & Dhariwal, "Glow", NeurIPS 2018, section 3 (the learned split prior).
    """

    def __init__(self, scales, learned_split_prior=False, **kwargs):
        super().__init__(**kwargs)
        self.scales = list(scales)
        if not self.scales or not all(isinstance(s, Bijector) for s in self.scales):
            raise TypeError("scales: a non-empty list of keras_crvae Bijectors expected; got "
                            f"{[type(s).__name__ for s in self.scales]}")
        self.learned_split_prior = bool(learned_split_prior)
        self.split_priors = []  # one zero-initialised conv per split, made in `build`

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.factored_shapes = []  # per-example shapes of the factored-out parts
        for index, scale in enumerate(self.scales):
            if not scale.built:
                scale.build(shape)
            shape = tuple(scale.compute_output_shape(shape))
            if index < len(self.scales) - 1:
                if shape[-1] % 2:
                    raise ValueError(f"Scale {index} of MultiScaleFlow outputs {shape[-1]} "
                                     "channels; half of them are factored out, so an even "
                                     "number is needed.")
                shape = shape[:-1] + (shape[-1] // 2,)
                self.factored_shapes.append(shape[1:])
                if self.learned_split_prior and len(self.split_priors) <= index:
                    # Zero at first: m = 0, log s = 0, the fixed prior (Glow's Conv2dZeros).
                    prior = keras.layers.Conv2D(
                        2 * shape[-1], 3, padding="same", kernel_initializer="zeros",
                        bias_initializer="zeros", name=f"split_prior_{index}")
                    prior.build(shape)
                    self.split_priors.append(prior)
        self.final_shape = shape[1:]
        self.built = True

    def _split_statistics(self, index, kept):
        """`(mean, log_scale)` of split `index`'s factored-out half given the kept half."""
        statistics = self.split_priors[index](kept)
        half = statistics.shape[-1] // 2
        return statistics[..., :half], statistics[..., half:]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _size(input_shape[1:]))

    def forward_and_log_det(self, x, context=None, training=None):
        build_for(self, x)
        total = ops.zeros((ops.shape(x)[0],), dtype="float32")
        pieces = []
        for index, scale in enumerate(self.scales):
            x, log_det = scale.forward_and_log_det(x, context=context, training=training)
            total = total + log_det
            if index < len(self.scales) - 1:
                half = x.shape[-1] // 2
                factored, x = x[..., :half], x[..., half:]
                if self.learned_split_prior:  # eps = (z - m(h)) / s(h)
                    mean, log_scale = self._split_statistics(index, x)
                    factored = (factored - mean) * ops.exp(-log_scale)
                    total = total - ops.sum(ops.reshape(log_scale, (ops.shape(x)[0], -1)),
                                            axis=-1)
                pieces.append(ops.reshape(factored, (-1, _size(factored.shape[1:]))))
        pieces.append(ops.reshape(x, (-1, _size(x.shape[1:]))))
        return ops.concatenate(pieces, axis=-1), total

    def inverse_and_log_det(self, y, context=None, training=None):
        # Built by a forward call or by `build(image shape)`: y's shape does not tell the scales'.
        sizes = [_size(shape) for shape in self.factored_shapes]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        h = ops.reshape(y[:, offsets[-1]:], (-1,) + tuple(self.final_shape))
        total = ops.zeros((ops.shape(y)[0],), dtype="float32")
        for index in reversed(range(len(self.scales))):
            if index < len(self.scales) - 1:
                factored = ops.reshape(y[:, offsets[index]:offsets[index + 1]],
                                       (-1,) + tuple(self.factored_shapes[index]))
                if self.learned_split_prior:  # z = m(h) + s(h) eps, h recovered already
                    mean, log_scale = self._split_statistics(index, h)
                    factored = mean + factored * ops.exp(log_scale)
                    total = total + ops.sum(ops.reshape(log_scale, (ops.shape(h)[0], -1)),
                                            axis=-1)
                h = ops.concatenate([factored, h], axis=-1)
            h, log_det = self.scales[index].inverse_and_log_det(h, context=context,
                                                                training=training)
            total = total + log_det
        return h, total

    def get_config(self):
        config = super().get_config()
        config["scales"] = [keras.saving.serialize_keras_object(s) for s in self.scales]
        config["learned_split_prior"] = self.learned_split_prior
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested configs in place
        config["scales"] = [keras.saving.deserialize_keras_object(s) for s in config["scales"]]
        return cls(**config)
