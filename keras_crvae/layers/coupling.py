"""Coupling layers: NICE's additive coupling and RealNVP's / Glow's affine coupling.

A coupling layer splits its input into a conditioning part x_a, passed through unchanged, and a
changing part x_b, transformed element-wise with parameters computed from x_a by any network m:

    additive (Dinh et al. 2014, section 3.2):   y_b = x_b + m(x_a)                  log|det J| = 0
    affine   (Dinh et al. 2017, section 3.3):   y_b = x_b * exp(s(x_a)) + t(x_a)    log|det J| = sum s

The Jacobian is triangular, so its log-determinant is the sum of the log-scales, and the inverse
needs m only forwards: x_b = (y_b - t(x_a)) * exp(-s(x_a)). The split (`mask`):

- "checkerboard" (images `(B, H, W, C)`; RealNVP section 3.4): x_a are the pixels with
  (row + column + parity) even, every channel; the network sees the whole image with x_b set to
  0 and its output is used where x_b lies.
- "channel" (images; RealNVP section 3.4, Glow section 3.3): x_a is the first half of the channels
  (parity 0) or the second (parity 1).
- "alternate" (vectors `(B, D)`; NICE section 5.1): x_a are the even entries (parity 0) or the odd
  ones (parity 1).

Consecutive couplings alternate the parity so that every entry is transformed.
"""

import copy

import keras
import numpy as np
from keras import ops

from keras_crvae.layers.bijector import Bijector, sum_over_event
from keras_crvae.layers.event_shapes import build_for

MASKS = ("checkerboard", "channel", "alternate")
SCALE_FUNCTIONS = ("tanh", "sigmoid")


def checkerboard_mask(height, width, parity=0):
    """`(height, width, 1)` float32 array: 1 where (row + column + parity) is even (x_a)."""
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((rows + columns + parity) % 2 == 0).astype("float32")[..., None]


class _Coupling(Bijector):
    """What the two couplings share: the split, the network call, the checks and the config."""

    def __init__(self, network, mask="checkerboard", parity=0, **kwargs):
        super().__init__(**kwargs)
        if mask not in MASKS:
            raise ValueError(f"`mask` must be one of {MASKS}, got {mask!r}.")
        if parity not in (0, 1):
            raise ValueError(f"`parity` must be 0 or 1, got {parity!r}.")
        self.network = network
        self.mask = mask
        self.parity = int(parity)

    def build(self, input_shape):
        rank = len(input_shape)
        if self.mask == "alternate" and (rank != 2 or input_shape[-1] % 2):
            raise ValueError(f"mask='alternate' needs vectors (batch, D) with D even; got input "
                             f"shape {tuple(input_shape)}.")
        if self.mask != "alternate" and rank != 4:
            raise ValueError(f"mask={self.mask!r} needs images (batch, H, W, C); got input shape "
                             f"{tuple(input_shape)}.")
        if self.mask == "channel" and input_shape[-1] % 2:
            raise ValueError(f"mask='channel' needs an even number of channels; got "
                             f"{input_shape[-1]}.")
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    # --- the split --------------------------------------------------------------------------

    def _split(self, x):
        """`(conditioning, changing)`: the network's input and the part the coupling transforms."""
        build_for(self, x)
        if self.mask == "checkerboard":
            self.board = checkerboard_mask(x.shape[1], x.shape[2], self.parity)
            return x * self.board, x
        if self.mask == "channel":
            half = x.shape[-1] // 2
            first, second = x[..., :half], x[..., half:]
        else:  # "alternate": entry 2i is in the first half, 2i+1 in the second
            pairs = ops.reshape(x, (-1, x.shape[-1] // 2, 2))
            first, second = pairs[..., 0], pairs[..., 1]
        return (first, second) if self.parity == 0 else (second, first)

    def _merge(self, conditioning, changed):
        """Puts the conditioning part and the transformed part back in their places."""
        if self.mask == "checkerboard":
            return conditioning + changed * (1.0 - self.board)
        first, second = (conditioning, changed) if self.parity == 0 else (changed, conditioning)
        if self.mask == "channel":
            return ops.concatenate([first, second], axis=-1)
        return ops.reshape(ops.stack([first, second], axis=-1), (-1, 2 * first.shape[-1]))

    def _sum_changed(self, values):
        """Sums per-element log-scales over the transformed elements only -> `(batch,)`."""
        if self.mask == "checkerboard":
            values = values * (1.0 - self.board)
        return sum_over_event(values)

    def get_config(self):
        config = super().get_config()
        config.update({"network": keras.saving.serialize_keras_object(self.network),
                       "mask": self.mask, "parity": self.parity})
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested config in place
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_crvae")
class AdditiveCoupling(_Coupling):
    """NICE's additive coupling `y_b = x_b + m(x_a)`, volume preserving (log-det 0).

    Input and output shape: `(batch, D)` with mask "alternate", `(batch, H, W, C)` with
    "checkerboard" or "channel" (module docstring).

    Args:
        network: a Keras model or layer `m`, mapping the conditioning part to a tensor of the
            changing part's shape (for "checkerboard": the whole image to the whole image).
        mask: str, "checkerboard", "channel" or "alternate". Default "checkerboard".
        parity: int, 0 or 1, which half conditions. Default 0.

    Reference: Dinh, Krueger & Bengio, "NICE", 2014, section 3.2.

    >>> import keras
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> coupling = AdditiveCoupling(m, mask="alternate")
    >>> y, log_det = coupling.forward_and_log_det(keras.ops.ones((3, 4)))
    """

    def forward_and_log_det(self, x, context=None, training=None):
        conditioning, changing = self._split(x)
        shift = self.network(conditioning, training=training)
        return (self._merge(conditioning, changing + shift),
                ops.zeros((ops.shape(x)[0],), dtype=x.dtype))

    def inverse_and_log_det(self, y, context=None, training=None):
        conditioning, changing = self._split(y)
        shift = self.network(conditioning, training=training)
        return (self._merge(conditioning, changing - shift),
                ops.zeros((ops.shape(y)[0],), dtype=y.dtype))


@keras.saving.register_keras_serializable(package="keras_crvae")
class AffineCoupling(_Coupling):
    """RealNVP's / Glow's affine coupling `y_b = x_b * exp(s(x_a)) + t(x_a)`.

    The network outputs `[t, raw]` concatenated on the last axis (twice the changing part's last
    dimension); the log-scale is bounded for stability:

    - `scale_function="tanh"`: `s = tanh(raw)`, scales in [1/e, e] (RealNVP bounds `s` with a
      tanh, Dinh et al. 2017 section 4.1);
    - `scale_function="sigmoid"`: `exp(s) = sigmoid(raw + 2)`, scales in (0, 1) starting near
      0.88 (the Glow code's choice).

    A network whose last layer starts at zero makes the coupling start at the identity (tanh) or
    at a uniform contraction (sigmoid).

    Input and output shape: as `AdditiveCoupling`.

    Args:
        network: a Keras model or layer mapping the conditioning part to `[t, raw]`.
        mask: str, "checkerboard", "channel" or "alternate". Default "checkerboard".
        parity: int, 0 or 1. Default 0.
        scale_function: str, "tanh" or "sigmoid". Default "tanh".

    Reference: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    section 3.3; Kingma & Dhariwal, "Glow", 2018, Table 1.
    """

    def __init__(self, network, mask="checkerboard", parity=0, scale_function="tanh", **kwargs):
        super().__init__(network, mask=mask, parity=parity, **kwargs)
        if scale_function not in SCALE_FUNCTIONS:
            raise ValueError(f"`scale_function` must be one of {SCALE_FUNCTIONS}, got "
                             f"{scale_function!r}.")
        self.scale_function = scale_function

    def _shift_and_log_scale(self, conditioning, training):
        outputs = self.network(conditioning, training=training)
        half = outputs.shape[-1] // 2
        shift, raw = outputs[..., :half], outputs[..., half:]
        if self.scale_function == "tanh":
            return shift, ops.tanh(raw)
        return shift, ops.log_sigmoid(raw + 2.0)

    def forward_and_log_det(self, x, context=None, training=None):
        conditioning, changing = self._split(x)
        shift, log_scale = self._shift_and_log_scale(conditioning, training)
        changed = changing * ops.exp(log_scale) + shift
        return self._merge(conditioning, changed), self._sum_changed(log_scale)

    def inverse_and_log_det(self, y, context=None, training=None):
        conditioning, changing = self._split(y)
        shift, log_scale = self._shift_and_log_scale(conditioning, training)
        restored = (changing - shift) * ops.exp(-log_scale)
        return self._merge(conditioning, restored), -self._sum_changed(log_scale)

    def get_config(self):
        config = super().get_config()
        config["scale_function"] = self.scale_function
        return config
