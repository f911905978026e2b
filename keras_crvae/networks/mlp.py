"""Fully connected (MLP) stochastic layers of Burda et al.'s VAE / IWAE (ICLR 2016, section 5).

Every stochastic layer of the IWAE paper is a small tanh MLP: its input (the image or the latent below or
above it) goes through deterministic tanh layers, then two linear heads give a diagonal Gaussian's
mean and (here) log-variance, or one linear head gives Bernoulli logits. The architectures of the paper
(`experiments.py` of GitHub yburda/iwae, the authors' code):

    1 stochastic layer:   q(z|x)   784-200-200-50      p(x|z)   50-200-200-784
    2 stochastic layers:  q(z1|x)  784-200-200-100     q(z2|z1) 100-100-100-50
                          p(z1|z2) 50-100-100-100      p(x|z1)  100-200-200-784

The reference parameterises the standard deviation as `exp(linear)`; a linear log-variance head is the
same family (`log_var = 2 * linear`). The reference also starts the Bernoulli output bias at the logit of
the training set's mean pixel, clipped to [0.001, 0.999] (`get_train_bias_np` in `datasets.py`):
`pixel_mean_logits` computes it and `build_mlp_bernoulli_decoder(output_bias=...)` takes it.
"""

import math

import keras
import numpy as np


def _as_shape(shape, name):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"`{name}` must be a positive int or a tuple of positive ints, got {shape}.")
    return shape


def _hidden_stack(x, hidden_units, activation, name):
    hidden_units = tuple(int(units) for units in hidden_units)
    if any(units < 1 for units in hidden_units):
        raise ValueError(f"`hidden_units` must be positive, got {hidden_units}.")
    for index, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation=activation, name=f"{name}_hidden{index}")(x)
    return x


def build_mlp_gaussian(input_shape, output_shape, hidden_units=(200, 200), activation="tanh",
                       name="gaussian_mlp"):
    """A diagonal-Gaussian stochastic layer: inputs `(B, *input_shape)` -> `[mean, log_var]`.

    Flattens the input, applies `Dense(units, activation)` for each entry of `hidden_units`, then two
    linear heads reshaped to `output_shape`. Used for `q(z|x)`, `q(z2|z1)`, `q(z2|x)` and `p(z1|z2)`.

    Args:
        input_shape: int or tuple, the per-example input shape, e.g. `(28, 28, 1)` or `100`.
        output_shape: int or tuple, the per-example shape of `mean` and `log_var`, e.g. `50` or
            `(4, 4, 64)`.
        hidden_units: sequence of ints, default `(200, 200)`. Deterministic layer widths.
        activation: str, default "tanh" (the IWAE paper's).
        name: str, model name (also the prefix of its layer names).

    Returns:
        `keras.Model` with outputs `[mean, log_var]`, each `(B, *output_shape)`.

    Reference: Burda et al. 2016, section 5; `GaussianSampler.random` in yburda/iwae `iwae.py`.
    """
    input_shape, output_shape = _as_shape(input_shape, "input_shape"), _as_shape(output_shape,
                                                                                  "output_shape")
    inputs = keras.Input(input_shape, name=f"{name}_input")
    x = keras.layers.Flatten(name=f"{name}_flatten")(inputs) if len(input_shape) > 1 else inputs
    x = _hidden_stack(x, hidden_units, activation, name)
    size = math.prod(output_shape)
    mean = keras.layers.Dense(size, name=f"{name}_mean")(x)
    log_var = keras.layers.Dense(size, name=f"{name}_log_var")(x)
    if len(output_shape) > 1:
        mean = keras.layers.Reshape(output_shape, name=f"{name}_mean_map")(mean)
        log_var = keras.layers.Reshape(output_shape, name=f"{name}_log_var_map")(log_var)
    return keras.Model(inputs, [mean, log_var], name=name)


def build_mlp_bernoulli_decoder(latent_dim, hidden_units=(200, 200), image_shape=(28, 28, 1),
                                activation="tanh", output_bias=None, name="decoder"):
    """`p(x|z)`: latents `(B, latent_dim)` -> Bernoulli logits `(B, *image_shape)`.

    Args:
        latent_dim: int, size of the latent below the image (50 or 100 in the IWAE paper).
        hidden_units: sequence of ints, default `(200, 200)`.
        image_shape: tuple, default `(28, 28, 1)`.
        activation: str, default "tanh".
        output_bias: array with one value per pixel (any shape), or None (zeros). Initial output bias,
            e.g. `pixel_mean_logits(train_images)` as the reference does.
        name: str.
    """
    image_shape = _as_shape(image_shape, "image_shape")
    latent = keras.Input((int(latent_dim),), name="z")
    x = _hidden_stack(latent, hidden_units, activation, name)
    size = math.prod(image_shape)
    bias_initializer = "zeros"
    if output_bias is not None:
        bias = np.asarray(output_bias, dtype="float32")
        if bias.size != size:
            raise ValueError(f"`output_bias` has {bias.size} values; the image has {size} pixels.")
        bias = bias.reshape(-1)
        bias_initializer = keras.initializers.Constant(bias.tolist())
    logits = keras.layers.Dense(size, bias_initializer=bias_initializer, name=f"{name}_logits")(x)
    logits = keras.layers.Reshape(image_shape, name=f"{name}_image")(logits)
    return keras.Model(latent, logits, name=name)


def pixel_mean_logits(images, clip=0.001):
    """The logit of each pixel's mean over `images` (grey levels in [0, 1]), clipped to
    `[clip, 1 - clip]`: the IWAE reference's initial output bias. Returns float32 `images.shape[1:]`."""
    mean = np.clip(np.mean(np.asarray(images, dtype=np.float64), axis=0), clip, 1.0 - clip)
    return np.log(mean / (1.0 - mean)).astype("float32")


def set_output_bias(decoder, bias):
    """Sets the output bias of a `build_mlp_bernoulli_decoder` network (e.g. to
    `pixel_mean_logits(train_images)`) and returns the decoder.

    Raises:
        ValueError: when `decoder` has no `*_logits` Dense layer or `bias` has the wrong size.
    """
    layers = [layer for layer in decoder.layers if layer.name.endswith("_logits")
              and isinstance(layer, keras.layers.Dense)]
    if len(layers) != 1:
        raise ValueError(f"`decoder` {decoder.name!r} has no single Dense '*_logits' layer; was it "
                         "built by build_mlp_bernoulli_decoder?")
    bias = np.asarray(bias, dtype="float32").reshape(-1)
    if bias.shape != tuple(layers[0].bias.shape):
        raise ValueError(f"`bias` has {bias.size} values; the decoder has {layers[0].bias.shape[0]}.")
    layers[0].bias.assign(bias)
    return decoder
