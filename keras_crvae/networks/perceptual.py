"""Feature networks for Stage2's perceptual loss `||f(S(x)) - f(G(x~))||^2` (crVAE supplement section D,
"Stage2 Objective"), from `keras.applications`.

The paper uses VGG11 (Birds, CelebA) and ResNet50 (LSUN). `keras.applications` has no VGG11, so the
VGG presets use VGG16 (same design: 3x3 convs, ReLU, max-pooling; its first two blocks are VGG11's
with one more conv each, 2 instead of 1 per block), ResNet50 is as in the paper.

Layer (the default `layer` per network): `block2_conv2` of VGG16/VGG19 (relu2_2, after ReLU) and
`conv2_block3_out` of ResNet50, both at 1/2 (VGG) or 1/4 (ResNet) of the image resolution. Why: Stage2 is
x2 super-resolution of a blurry decode, and what the loss should ask of `G` is the edges and textures of
the real image at roughly the scale the generator adds, not its object identity; Johnson et al. (2016,
"Perceptual losses for real-time style transfer and super-resolution", section 4.2) use relu2_2 of
VGG16 for super-resolution for this reason (deeper layers keep content but let colours and fine
structure drift). It is also cheap: 4 of VGG16's 13 convs. Another layer is one argument away.

Inputs are images in [-1, 1]; `imagenet_preprocess` maps them to the networks' "caffe" input (RGB ->
BGR, 0..255, ImageNet channel means subtracted), as `keras.applications.vgg16.preprocess_input` does.

Weights: "imagenet" downloads through `keras.applications` (cached in `~/.keras/models/`); a path loads
a local copy of the same file (for offline machines); None leaves the network randomly initialised
(tests; such features carry no perceptual knowledge). A failed download is an error that says how to
pass the file: it is never replaced by random weights.
"""

import os

import keras

# name -> (keras.applications constructor, default layer, no-top weights file of keras.applications)
PERCEPTUAL_NETWORKS = {
    "vgg16": ("VGG16", "block2_conv2", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
              "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"),
    "vgg19": ("VGG19", "block2_conv2", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
              "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"),
    "resnet50": ("ResNet50", "conv2_block3_out",
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"),
}
# keras.applications' "caffe" preprocessing: BGR order, these means subtracted from 0..255 values.
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


def imagenet_preprocess(images):
    """Images `(B, H, W, 3)` RGB in [-1, 1] -> the "caffe" input of VGG / ResNet50 (BGR, means
    subtracted), in `keras.ops` (any backend)."""
    from keras import ops

    pixels = (ops.cast(images, "float32") + 1.0) * 127.5
    bgr = ops.flip(pixels, axis=-1)
    return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEANS, "float32")


class PerceptualWeightsError(ValueError):
    """The ImageNet weights of a perceptual network could not be obtained."""


def build_perceptual_network(network="vgg16", layer=None, image_size=128, weights="imagenet",
                             name=None):
    """The feature extractor `f`: preprocessed images `(B, S, S, 3)` -> features at `layer`.

    Call it on `imagenet_preprocess(images)`; `Stage2` does.

    Args:
        network: str, "vgg16" (default), "vgg19" or "resnet50".
        layer: str or None, the layer whose output is `f` (default: `PERCEPTUAL_NETWORKS`).
        image_size: int >= 32, default 128. The Stage2 output size.
        weights: "imagenet" (download through `keras.applications`), a path to the no-top weights
            file (`PERCEPTUAL_NETWORKS` names it), or None (random initialisation).
        name: str or None.

    Returns:
        `keras.Model`, not trainable (Stage2 never updates it).

    Raises:
        ValueError: an unknown network or layer, a missing weights file.
        PerceptualWeightsError: the download failed; the message says how to pass the file.
    """
    if network not in PERCEPTUAL_NETWORKS:
        raise ValueError(f"`network` must be one of {sorted(PERCEPTUAL_NETWORKS)}, got {network!r}.")
    constructor, default_layer, file_name, url = PERCEPTUAL_NETWORKS[network]
    layer = layer or default_layer
    if int(image_size) < 32:
        raise ValueError(f"`image_size` must be >= 32 for {network}, got {image_size}.")
    if weights not in ("imagenet", None):
        weights = os.path.expanduser(os.fspath(weights))
        if not os.path.isfile(weights):
            raise ValueError(f"`weights`={weights!r}: no such file; expected the no-top weights "
                             f"file {file_name} of keras.applications ({url}{file_name}), "
                             "'imagenet' or None.")
    build = getattr(keras.applications, constructor)
    shape = (int(image_size), int(image_size), 3)
    try:
        full = build(include_top=False, weights=weights, input_shape=shape)
    except Exception as error:  # noqa: BLE001 - any failure of the download (URL, SSL, HTTP, disk)
        if weights != "imagenet":
            raise
        raise PerceptualWeightsError(
            f"Could not get the ImageNet weights of {constructor} through keras.applications "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). Download {url}{file_name} "
            f"on a machine with network access and pass its path as weights=PATH (presets: "
            f"perceptual_weights=PATH), or use weights=None for randomly initialised features, "
            f"or perceptual_weight=0 for no perceptual loss.") from error
    try:
        output = full.get_layer(layer).output
    except ValueError:
        names = [lay.name for lay in full.layers if "conv" in lay.name or "out" in lay.name]
        raise ValueError(f"`layer`={layer!r} is not a layer of {constructor}; e.g. "
                         f"{', '.join(names[:12])}, ...") from None
    features = keras.Model(full.inputs, output, name=name or f"{network}_{layer}")
    features.trainable = False
    return features
