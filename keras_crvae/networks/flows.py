"""Builders of the flow models' bijectors and of their coupling networks (NICE, RealNVP, Glow).

Each `build_*_flow` returns a `keras_crvae.layers.Bijector` from the preprocessed image
`(batch, 28, 28, 1)` (values in [0, 1) for NICE, logits for RealNVP / Glow) to the latent `z`
that `keras_crvae.models.FlowModel` scores under its prior. The coupling networks are functional
Keras models whose last layer starts at zero, so every coupling starts at (or, for Glow's sigmoid
scale, near) the identity.
"""

import keras

from keras_crvae.layers import (ActNorm, AdditiveCoupling, AffineCoupling, BijectorChain,
                                DiagonalScaling, FlattenEvent, InvertibleConv1x1, MultiScaleFlow,
                                Squeeze)


def coupling_mlp(input_dim, output_dim, hidden_units=1000, hidden_layers=5, name=None):
    """NICE's coupling function: `hidden_layers` Dense+ReLU layers of `hidden_units`, then a linear
    layer (zero-initialised). `(batch, input_dim) -> (batch, output_dim)`.

    Reference: Dinh et al. 2014, section 5.1 (MNIST: 5 hidden layers of 1000 ReLU units).
    """
    inputs = keras.Input((int(input_dim),))
    h = inputs
    for _ in range(int(hidden_layers)):
        h = keras.layers.Dense(int(hidden_units), activation="relu")(h)
    outputs = keras.layers.Dense(int(output_dim), kernel_initializer="zeros")(h)
    return keras.Model(inputs, outputs, name=name)


def coupling_resnet(input_shape, output_channels, hidden_channels=64, residual_blocks=2,
                    name=None):
    """RealNVP's coupling network, small: a 3x3 convolution to `hidden_channels`, residual blocks
    (ReLU, 3x3 conv, ReLU, 3x3 conv, + skip), ReLU, and a zero-initialised 3x3 convolution to
    `output_channels`. `(batch, H, W, C) -> (batch, H, W, output_channels)`, "same" padding.

    RealNVP's own nets are deeper (8 blocks of 64 features on CIFAR-10) with batch and weight
    normalisation; none here, so that training and evaluation compute the same function.

    Reference: Dinh et al. 2017, section 4.1.
    """
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.Conv2D(int(hidden_channels), 3, padding="same")(inputs)
    for _ in range(int(residual_blocks)):
        branch = keras.layers.ReLU()(h)
        branch = keras.layers.Conv2D(int(hidden_channels), 3, padding="same")(branch)
        branch = keras.layers.ReLU()(branch)
        branch = keras.layers.Conv2D(int(hidden_channels), 3, padding="same")(branch)
        h = keras.layers.Add()([h, branch])
    h = keras.layers.ReLU()(h)
    outputs = keras.layers.Conv2D(int(output_channels), 3, padding="same",
                                  kernel_initializer="zeros")(h)
    return keras.Model(inputs, outputs, name=name)


def coupling_glow(input_shape, output_channels, hidden_channels=128, name=None):
    """Glow's coupling network NN(): 3x3 conv + ReLU, 1x1 conv + ReLU, zero-initialised 3x3 conv
    (no actnorm inside). `(batch, H, W, C) -> (batch, H, W, output_channels)`.

    Reference: Kingma & Dhariwal 2018, section 3.3 and Table 1.
    """
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.Conv2D(int(hidden_channels), 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(int(hidden_channels), 1, activation="relu")(h)
    outputs = keras.layers.Conv2D(int(output_channels), 3, padding="same",
                                  kernel_initializer="zeros")(h)
    return keras.Model(inputs, outputs, name=name)


def build_nice_flow(image_shape=(28, 28, 1), coupling_layers=4, hidden_units=1000,
                    hidden_layers=5):
    """NICE: flatten, `coupling_layers` additive couplings alternating even/odd halves, diagonal
    scaling. `(batch, *image_shape) -> (batch, D)`.

    Reference: Dinh, Krueger & Bengio, "NICE", 2014, sections 3 and 5.1.
    """
    size = 1
    for dimension in image_shape:
        size *= int(dimension)
    if size % 2:
        raise ValueError(f"NICE splits the {size} pixels into halves: an even number is needed.")
    bijectors = [FlattenEvent(image_shape)]
    for index in range(int(coupling_layers)):
        network = coupling_mlp(size // 2, size // 2, hidden_units, hidden_layers,
                               name=f"coupling_{index}_network")
        bijectors.append(AdditiveCoupling(network, mask="alternate", parity=index % 2,
                                          name=f"coupling_{index}"))
    bijectors.append(DiagonalScaling(name="scaling"))
    return BijectorChain(bijectors, name="nice")


def _check_scales(image_shape, scales):
    height, width = int(image_shape[0]), int(image_shape[1])
    for scale in range(int(scales)):
        if height % 2 or width % 2:
            raise ValueError(f"{scales} squeezes of {tuple(image_shape)} images: the side "
                             f"{height}x{width} at squeeze {scale + 1} is odd. Use fewer scales "
                             "(28x28: at most 2).")
        height, width = height // 2, width // 2


def build_realnvp_flow(image_shape=(28, 28, 1), scales=2, couplings_per_stage=3,
                       final_couplings=4, hidden_channels=64, residual_blocks=2,
                       scale_function="tanh"):
    """RealNVP's multi-scale flow: each of `scales` scales is `couplings_per_stage` checkerboard
    couplings, a squeeze and `couplings_per_stage` channel couplings, after which half of the
    channels are factored out; the last scale is `final_couplings` checkerboard couplings.
    `(batch, H, W, C) -> (batch, H*W*C)`.

    On 28x28x1 with scales=2: 28x28x1 -> squeeze 14x14x4 -> keep 14x14x2 -> squeeze 7x7x8 -> keep
    7x7x4 -> final couplings.

    Reference: Dinh, Sohl-Dickstein & Bengio, ICLR 2017, sections 3.4-3.6 and 4.1.
    """
    _check_scales(image_shape, scales)
    height, width, channels = (int(d) for d in image_shape)
    stages = []

    def affine(mask, parity, shape, label):
        out_channels = 2 * (shape[-1] if mask == "checkerboard" else shape[-1] // 2)
        in_shape = shape if mask == "checkerboard" else shape[:-1] + (shape[-1] // 2,)
        network = coupling_resnet(in_shape, out_channels, hidden_channels, residual_blocks,
                                  name=f"{label}_network")
        return AffineCoupling(network, mask=mask, parity=parity, scale_function=scale_function,
                              name=label)

    shape = (height, width, channels)
    for scale in range(int(scales)):
        steps = [affine("checkerboard", i % 2, shape, f"scale_{scale}_checkerboard_{i}")
                 for i in range(int(couplings_per_stage))]
        steps.append(Squeeze(name=f"scale_{scale}_squeeze"))
        shape = (shape[0] // 2, shape[1] // 2, shape[2] * 4)
        steps += [affine("channel", i % 2, shape, f"scale_{scale}_channel_{i}")
                  for i in range(int(couplings_per_stage))]
        stages.append(BijectorChain(steps, name=f"scale_{scale}"))
        shape = shape[:-1] + (shape[-1] // 2,)
    stages.append(BijectorChain([affine("checkerboard", i % 2, shape, f"final_checkerboard_{i}")
                                 for i in range(int(final_couplings))], name="final_scale"))
    return MultiScaleFlow(stages, name="realnvp")


def build_glow_flow(image_shape=(28, 28, 1), levels=2, steps_per_level=8, hidden_channels=128,
                    seed=None, learned_split_prior=False):
    """Glow's multi-scale flow: each of `levels` levels is a squeeze and `steps_per_level` steps of
    actnorm -> invertible 1x1 convolution -> affine coupling (channel halves, sigmoid scale), with
    half of the channels split off after every level but the last.
    `(batch, H, W, C) -> (batch, H*W*C)`. 28x28x1 allows at most 2 levels.

    `learned_split_prior=True`: Glow's learned prior of each split-off half, N(m(h), s(h)^2) from a
    zero-initialised 3x3 convolution of the kept half h (`layers.MultiScaleFlow`); False (default):
    the split-off half goes to the model's fixed prior (RealNVP's factor-out).

    Reference: Kingma & Dhariwal, "Glow", 2018, section 3 and Figure 2.
    """
    _check_scales(image_shape, levels)
    shape = tuple(int(d) for d in image_shape)
    stages = []
    for level in range(int(levels)):
        shape = (shape[0] // 2, shape[1] // 2, shape[2] * 4)
        steps = [Squeeze(name=f"level_{level}_squeeze")]
        for step in range(int(steps_per_level)):
            label = f"level_{level}_step_{step}"
            half = shape[-1] // 2
            network = coupling_glow(shape[:-1] + (half,), 2 * half, hidden_channels,
                                    name=f"{label}_coupling_network")
            steps += [ActNorm(name=f"{label}_actnorm"),
                      InvertibleConv1x1(seed=None if seed is None else seed + 1000 * level + step,
                                        name=f"{label}_invertible_conv"),
                      AffineCoupling(network, mask="channel", parity=0, scale_function="sigmoid",
                                     name=f"{label}_coupling")]
        stages.append(BijectorChain(steps, name=f"level_{level}"))
        shape = shape[:-1] + (shape[-1] // 2,)
    return MultiScaleFlow(stages, learned_split_prior=learned_split_prior, name="glow")
