"""DCGAN generators and discriminators (Radford et al. 2016) for 28x28 and 64x64 images, with the
InfoGAN Q head (Chen et al. 2016, appendix C.1).

The lecture's architecture rules ("Deep Convolutional GAN"): strided convolutions instead of pooling
in D, transposed convolutions in G; BatchNorm everywhere except G's output and D's input layers; ReLU
in G with a tanh output, LeakyReLU 0.2 in D with a sigmoid output (here D returns the logit; the
sigmoid is inside the BCE). Weights start from N(0, 0.02) as in the DCGAN paper (section 4).

A side `s` halves down to a base map while it is even and its half at least 4: 28 -> 14 -> 7 (two
stages), 64 -> 32 -> 16 -> 8 -> 4 (four). G projects z to the base map with `b * 2**(n-1)` channels
(n stages) and halves the channels at every upsampling; D mirrors it. With `hidden_units` (the
InfoGAN MNIST networks: 1024) G starts with a dense layer of that width and D ends with one.

D's critic normalisation is a switch: "batch" (DCGAN, WGAN), "layer" (LayerNorm over each example:
WGAN-GP, whose penalty needs a critic that treats examples independently) or "none".
"""

import keras

from keras_crvae import layers as crvae_layers

IMAGE_SHAPES = ((28, 28, 1), (64, 64, 3))
NORMS = ("batch", "layer", "none")
BN_MOMENTUM = 0.9  # PyTorch DCGAN's 0.1


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)


def _stages(side):
    """Number of stride-2 stages and the base side of a DCGAN for square images of `side`."""
    stages = 0
    while side % 2 == 0 and side // 2 >= 4:
        side //= 2
        stages += 1
    return stages, side


def _check(image_shape, base_channels):
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or image_shape[0] != image_shape[1] or _stages(image_shape[0])[0] < 1:
        raise ValueError(f"`image_shape` must be square (side, side, channels) with an even side, "
                         f"e.g. {IMAGE_SHAPES}; got {image_shape}.")
    if int(base_channels) < 1:
        raise ValueError(f"`base_channels` must be >= 1, got {base_channels!r}.")
    return image_shape


def _normalize(x, norm, name, synchronized=False):
    if norm == "batch":
        return crvae_layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized,
                                       name=name)(x)
    if norm == "layer":
        axes = list(range(1, len(x.shape)))
        return keras.layers.LayerNormalization(axis=axes, name=name.replace("bn", "ln"))(x)
    if norm == "none":
        return x
    raise ValueError(f"`norm` must be one of {NORMS}, got {norm!r}.")


def build_dcgan_generator(image_shape=(28, 28, 1), latent_dim=100, base_channels=64,
                          hidden_units=0, synchronized_batch_norm=False, name="generator"):
    """z `(B, latent_dim)` -> images `(B, *image_shape)` in [-1, 1].

    [dense(hidden_units) -> BN -> ReLU] -> dense(s0*s0*C0) -> BN -> ReLU -> reshape ->
    n x [deconv4x4/2 -> BN -> ReLU] with channels C0/2, C0/4, ... and the last one (image channels,
    no BN) -> tanh; `s0` the base side, `C0 = base_channels * 2**(n-1)`.

    Args:
        image_shape: tuple, default (28, 28, 1); (64, 64, 3) for CelebA.
        latent_dim: int, default 100 (DCGAN's z; InfoGAN: 62 + 10 + 2 = 74).
        base_channels: int, default 64 (the channels of the last hidden map).
        hidden_units: int, default 0 (none); InfoGAN's MNIST generator: 1024.
        synchronized_batch_norm: bool, default False. Global-batch statistics under a TF strategy.
        name: str.

    Returns:
        `keras.Model`.
    """
    image_shape = _check(image_shape, base_channels)
    stages, side = _stages(image_shape[0])
    channels = int(base_channels) * 2 ** (stages - 1)
    bn = dict(norm="batch", synchronized=synchronized_batch_norm)
    z = keras.Input((int(latent_dim),), name="z")
    x = z
    if hidden_units:
        x = keras.layers.Dense(int(hidden_units), kernel_initializer=_init(), name="fc_hidden")(x)
        x = keras.layers.ReLU(name="relu_hidden")(_normalize(x, name="bn_hidden", **bn))
    x = keras.layers.Dense(side * side * channels, kernel_initializer=_init(), name="fc")(x)
    x = keras.layers.ReLU(name="relu_fc")(_normalize(x, name="bn_fc", **bn))
    x = keras.layers.Reshape((side, side, channels), name="reshape")(x)
    for stage in range(1, stages):
        channels //= 2
        x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                         kernel_initializer=_init(), name=f"deconv{stage}")(x)
        x = keras.layers.ReLU(name=f"relu{stage}")(_normalize(x, name=f"bn{stage}", **bn))
    x = keras.layers.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same",
                                     kernel_initializer=_init(), name="to_image")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, images, name=name)


def build_dcgan_discriminator(image_shape=(28, 28, 1), base_channels=64, norm="batch",
                              hidden_units=0, minibatch_kernels=0, minibatch_kernel_dim=5,
                              q_units=0, q_hidden_units=128, synchronized_batch_norm=False,
                              name="discriminator"):
    """Images `(B, *image_shape)` in [-1, 1] -> `[logits (B, 1), features (B, F)]`, plus `q` with a Q head.

    conv4x4/2 (b) -> LReLU(0.2) -> (n-1) x [conv4x4/2 (2b, 4b, ...) -> norm -> LReLU(0.2)] -> flatten
    -> [dense(hidden_units) -> norm -> LReLU] = `features` (the layer feature matching uses) ->
    [minibatch discrimination] -> dense(1) logits. The Q head (InfoGAN): features -> dense(q_hidden)
    -> BN -> LReLU -> dense(q_units) (raw parameters; the model interprets them).

    Args:
        image_shape: tuple, default (28, 28, 1).
        base_channels: int, default 64.
        norm: "batch" (default), "layer" or "none": the normalisation of every layer but the first.
        hidden_units: int, default 0; InfoGAN's MNIST discriminator: 1024.
        minibatch_kernels, minibatch_kernel_dim: `MinibatchDiscrimination` before the logit when
            `minibatch_kernels > 0` (Salimans et al. 2016, section 3.2); default off.
        q_units: int, default 0 (no Q head).
        q_hidden_units: int, default 128 (InfoGAN's MNIST Q).
        synchronized_batch_norm: bool, default False.
        name: str.

    Returns:
        `keras.Model` with outputs `[logits, features]` or `[logits, features, q]`.
    """
    from keras_crvae.layers.discriminator import MinibatchDiscrimination

    image_shape = _check(image_shape, base_channels)
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {NORMS}, got {norm!r}.")
    stages, _ = _stages(image_shape[0])
    channels = int(base_channels)
    normalize = dict(norm=norm, synchronized=synchronized_batch_norm)
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Conv2D(channels, 4, strides=2, padding="same", kernel_initializer=_init(),
                            name="conv0")(images)
    x = keras.layers.LeakyReLU(0.2, name="lrelu0")(x)  # no normalisation on D's input layer
    for stage in range(1, stages):
        channels *= 2
        x = keras.layers.Conv2D(channels, 4, strides=2, padding="same", kernel_initializer=_init(),
                                name=f"conv{stage}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{stage}")(
            _normalize(x, name=f"bn{stage}", **normalize))
    features = keras.layers.Flatten(name="flatten")(x)
    if hidden_units:
        features = keras.layers.Dense(int(hidden_units), kernel_initializer=_init(),
                                      name="fc_hidden")(features)
        features = keras.layers.LeakyReLU(0.2, name="lrelu_hidden")(
            _normalize(features, name="bn_hidden", **normalize))
    head = features
    if minibatch_kernels:
        head = MinibatchDiscrimination(int(minibatch_kernels), int(minibatch_kernel_dim),
                                       name="minibatch")(head)
    logits = keras.layers.Dense(1, kernel_initializer=_init(), dtype="float32", name="logit")(head)
    outputs = [logits, features]
    if q_units:
        q = keras.layers.Dense(int(q_hidden_units), kernel_initializer=_init(), name="q_hidden")(
            features)
        q = keras.layers.LeakyReLU(0.2, name="q_lrelu")(
            _normalize(q, norm="batch", synchronized=synchronized_batch_norm, name="q_bn"))
        outputs.append(keras.layers.Dense(int(q_units), kernel_initializer=_init(),
                                          dtype="float32", name="q_params")(q))
    return keras.Model(images, outputs, name=name)
