"""MADE: masked dense layers that make a network autoregressive (Germain, Gregor, Murray &
Larochelle, "MADE: Masked Autoencoder for Distribution Estimation", ICML 2015, section 4).

Every unit gets a degree. The `D` inputs take degrees `1..D` in the chosen ordering; hidden units
take degrees in `[1, D - 1]` (section 4.2: `m^k` between the smallest input degree and `D - 1`),
assigned cyclically so the masks are deterministic and every degree occurs when the layer has
at least `D - 1` units. Connections (eqs. 12-13):

    hidden layer:   unit of degree m' sees input/unit of degree m   iff m' >= m
    output layer:   output of degree d sees unit of degree m        iff d > m

so output `d` depends on the inputs of degree `< d` only, through any number of hidden layers.
An optional conditioning input (`context`, e.g. an IAF step's encoder features) enters the first
hidden layer and the output layer unmasked: it may influence every output, the first in the
ordering included, which no masked path reaches (Kingma et al. 2016, section 4: `[m, s] =
AutoregressiveNN(z, h)`).
"""

import keras
import numpy as np
from keras import ops

ORDERINGS = ("left_to_right", "right_to_left")


def input_degrees(dim, ordering="left_to_right"):
    """Degrees `1..dim` of the inputs: `[1, ..., dim]`, or reversed for "right_to_left"."""
    if ordering not in ORDERINGS:
        raise ValueError(f"`ordering` must be one of {ORDERINGS}, got {ordering!r}.")
    degrees = np.arange(1, dim + 1)
    return degrees if ordering == "left_to_right" else degrees[::-1].copy()


def hidden_degrees(units, dim):
    """Degrees of `units` hidden units: `1, 2, ..., dim - 1, 1, 2, ...` (at least 1)."""
    return np.arange(units) % max(dim - 1, 1) + 1


def autoregressive_masks(dim, hidden_units, ordering="left_to_right"):
    """The binary masks of a MADE with `dim` inputs and hidden layers of `hidden_units`.

    Returns:
        list of float32 arrays `(fan_in, fan_out)`, one per layer (hidden layers then the output
        layer, whose fan_out is `dim`; the output layer's columns are the outputs' degrees).
    """
    degrees_in = input_degrees(dim, ordering)
    masks = []
    for units in hidden_units:
        degrees_out = hidden_degrees(units, dim)
        masks.append((degrees_out[None, :] >= degrees_in[:, None]).astype("float32"))
        degrees_in = degrees_out
    output_degrees = input_degrees(dim, ordering)
    masks.append((output_degrees[None, :] > degrees_in[:, None]).astype("float32"))
    return masks


@keras.saving.register_keras_serializable(package="keras_crvae")
class MADE(keras.layers.Layer):
    """An autoregressive MLP: `outputs[:, d, :]` depends on the inputs of degree < degree(d) only.

    Input: `(batch, D)` and, with `context_dim > 0`, `context` `(batch, context_dim)`.
    Output: `(batch, D, num_params)`, `num_params` values per input dimension (e.g. an IAF step's
    shift and gate pre-activation).

    Args:
        hidden_units: sequence of ints, the widths of the masked hidden layers (each should be
            >= D - 1 so that every degree occurs).
        num_params: int, default 2. Outputs per input dimension.
        ordering: str, "left_to_right" (default: input d has degree d + 1) or "right_to_left".
        context_dim: int, default 0. Width of the unmasked conditioning input of the first hidden
            layer and the output layer (0: none).
        activation: str, default "elu".
        output_kernel_initializer: initializer of the output layer's kernel, default
            "glorot_uniform" (an IAF step starts it small).
        **kwargs: `keras.layers.Layer` arguments.

    Reference: Germain et al. 2015, section 4 (masks, eqs. 10-13); Kingma et al. 2016, section 4.
    """

    def __init__(self, hidden_units, num_params=2, ordering="left_to_right", context_dim=0,
                 activation="elu", output_kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = [int(units) for units in hidden_units]
        if not self.hidden_units or any(units < 1 for units in self.hidden_units):
            raise ValueError(f"`hidden_units` must be a non-empty list of positive ints, got "
                             f"{hidden_units!r}.")
        if isinstance(num_params, bool) or int(num_params) < 1:
            raise ValueError(f"`num_params` must be >= 1, got {num_params!r}.")
        if ordering not in ORDERINGS:
            raise ValueError(f"`ordering` must be one of {ORDERINGS}, got {ordering!r}.")
        if isinstance(context_dim, bool) or int(context_dim) < 0:
            raise ValueError(f"`context_dim` must be an integer >= 0, got {context_dim!r}.")
        self.num_params = int(num_params)
        self.ordering = ordering
        self.context_dim = int(context_dim)
        self.activation = keras.activations.get(activation)
        self.activation_name = activation
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.dim = dim
        masks = autoregressive_masks(dim, self.hidden_units, self.ordering)
        # The output mask repeats per parameter: column d * num_params + p belongs to output d.
        masks[-1] = np.repeat(masks[-1], self.num_params, axis=1)
        self.masks = [ops.convert_to_tensor(mask) for mask in masks]
        self.kernels, self.biases = [], []
        fan_in = dim
        for index, fan_out in enumerate(self.hidden_units + [dim * self.num_params]):
            last = index == len(self.hidden_units)
            initializer = self.output_kernel_initializer if last else "glorot_uniform"
            self.kernels.append(self.add_weight(shape=(fan_in, fan_out), name=f"kernel_{index}",
                                                initializer=initializer))
            self.biases.append(self.add_weight(shape=(fan_out,), name=f"bias_{index}",
                                               initializer="zeros"))
            fan_in = fan_out
        self.context_kernel = self.context_output_kernel = None
        if self.context_dim:
            self.context_kernel = self.add_weight(shape=(self.context_dim, self.hidden_units[0]),
                                                  name="context_kernel",
                                                  initializer="glorot_uniform")
            self.context_output_kernel = self.add_weight(
                shape=(self.context_dim, dim * self.num_params), name="context_output_kernel",
                initializer=self.output_kernel_initializer)
        self.built = True

    def call(self, inputs, context=None):
        if self.context_dim:
            if context is None:
                raise ValueError(f"MADE {self.name!r} has context_dim={self.context_dim} and "
                                 f"needs a `context` (batch, {self.context_dim}).")
            context = ops.cast(context, inputs.dtype)
        x = inputs
        last = len(self.hidden_units)
        for index, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self.masks)):
            x = ops.matmul(x, kernel * ops.cast(mask, kernel.dtype)) + bias
            if self.context_dim and index in (0, last):
                context_kernel = self.context_kernel if index == 0 else self.context_output_kernel
                x = x + ops.matmul(context, context_kernel)
            if index < last:
                x = self.activation(x)
        return ops.reshape(x, (ops.shape(x)[0], self.dim, self.num_params))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], self.num_params)

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "num_params": self.num_params,
            "ordering": self.ordering,
            "context_dim": self.context_dim,
            "activation": self.activation_name,
            "output_kernel_initializer": keras.initializers.serialize(
                self.output_kernel_initializer),
        })
        return config
