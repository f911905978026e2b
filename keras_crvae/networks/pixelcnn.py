"""PixelCNN and Gated PixelCNN networks: image (network units) -> logits of every pixel's value.

Both map `(B, H, W, input_channels)` to logits `(B, H, W, color_channels, levels)`, where
`color_channels` is the number of values per pixel generated in order (1 for grey, binary images
and code maps, 3 for RGB) and `levels` the number of values each can take (1: a Bernoulli logit;
256: a softmax over grey levels; K: a softmax over K codes). The logits of value `(i, c)` depend
only on the values before it in raster order, and on the earlier colours of pixel i (tested
exactly with autodiff in tests/networks/test_pixelcnn.py).

    build_pixelcnn         van den Oord et al. 2016a, section 3.4 and table 1 ("PixelCNN"): a 7x7
                           type-A convolution, residual blocks (ReLU, 1x1 2h->h, ReLU, 3x3 type B,
                           ReLU, 1x1 h->2h, add; figure 5), then ReLU-1x1-ReLU-1x1 output layers.
                           Its stacked masks leave a blind spot to the upper right.
    build_gated_pixelcnn   van den Oord et al. 2016b, section 2: `GatedPixelCNNBlock`s (vertical
                           and horizontal stacks, gated units, no blind spot), optional class or
                           latent conditioning, the same output layers.
"""

import keras

from keras_crvae.layers.gated_pixelcnn import GatedPixelCNNBlock
from keras_crvae.layers.masked_conv import MaskedConv2D
from keras_crvae.networks.blocks import check_positive


def _output_layers(features, image_shape, color_channels, levels, output_filters):
    """ReLU, 1x1 type B (`output_filters`), ReLU, 1x1 type B -> logits `(B, H, W, C, levels)`."""
    hidden = keras.layers.ReLU()(features)
    hidden = MaskedConv2D(output_filters, 1, mask_type="B", color_channels=color_channels,
                          activation="relu", name="output_hidden")(hidden)
    logits = MaskedConv2D(color_channels * levels, 1, mask_type="B",
                          color_channels=color_channels, name="output_logits")(hidden)
    return keras.layers.Reshape(tuple(image_shape[:2]) + (color_channels, levels),
                                name="logits")(logits)


def build_pixelcnn(image_shape, levels=1, color_channels=None, filters=32, residual_blocks=5,
                   kernel_size=3, first_kernel_size=7, output_filters=None, name="pixelcnn"):
    """The PixelCNN of van den Oord et al. (2016a): masked residual convolutions.

    Args:
        image_shape: `(H, W, input_channels)` of the network's input.
        levels: int, default 1. Values per colour: 1 (Bernoulli logit), 256, or K codes.
        color_channels: int or None. Values generated per pixel (3 for RGB); None: the input's
            channels (the input is the image itself; pass 1 for a one-hot code map).
        filters: int, default 32. h; the residual stream has 2h channels.
        residual_blocks: int, default 5.
        kernel_size: int, default 3. The type-B convolutions inside the blocks.
        first_kernel_size: int, default 7. The type-A first convolution.
        output_filters: int or None. Width of the hidden output layer; None: 2h.

    Returns:
        A `keras.Model`: `(B, H, W, input_channels)` -> logits `(B, H, W, color_channels, levels)`.

    Reference: van den Oord et al., "Pixel Recurrent Neural Networks", ICML 2016, sections 3.4-3.5.
    """
    color_channels = int(color_channels or image_shape[-1])
    check_positive(levels=levels, filters=filters, kernel_size=kernel_size,
                    first_kernel_size=first_kernel_size)
    if isinstance(residual_blocks, bool) or int(residual_blocks) < 0:
        raise ValueError(f"`residual_blocks` must be an int >= 0; got {residual_blocks!r}.")
    width = 2 * int(filters) * color_channels  # a multiple of the colour groups
    inner = int(filters) * color_channels
    images = keras.Input(tuple(image_shape), name="images")
    features = MaskedConv2D(width, first_kernel_size, mask_type="A",
                            color_channels=color_channels, name="first_conv")(images)
    for block in range(int(residual_blocks)):
        hidden = keras.layers.ReLU()(features)
        hidden = MaskedConv2D(inner, 1, mask_type="B", color_channels=color_channels,
                              activation="relu", name=f"block{block}_reduce")(hidden)
        hidden = MaskedConv2D(inner, kernel_size, mask_type="B", color_channels=color_channels,
                              activation="relu", name=f"block{block}_conv")(hidden)
        hidden = MaskedConv2D(width, 1, mask_type="B", color_channels=color_channels,
                              name=f"block{block}_expand")(hidden)
        features = keras.layers.Add(name=f"block{block}_add")([features, hidden])
    logits = _output_layers(features, image_shape, color_channels, int(levels),
                            int(output_filters or width))
    return keras.Model(images, logits, name=name)


def build_gated_pixelcnn(image_shape, levels=1, color_channels=None, filters=32, num_layers=5,
                         kernel_size=3, first_kernel_size=None, condition_shape=None,
                         output_filters=None, name="gated_pixelcnn"):
    """The Gated PixelCNN of van den Oord et al. (2016b), optionally conditional.

    Args:
        image_shape, levels, color_channels: as `build_pixelcnn`.
        filters: int, default 32. Features per stack (times `color_channels` for RGB).
        num_layers: int, default 5. `GatedPixelCNNBlock`s; the first uses mask A.
        kernel_size: int, default 3. Odd.
        first_kernel_size: int or None. The first layer's kernel (the paper: 7); None:
            `kernel_size`. The receptive field of pixel (r, c) is row r, columns c - R .. c - 1,
            and rows r - 1 - R .. r - 1, columns c - R .. c + R, where
            R = (first_kernel_size // 2) + (num_layers - 1) * (kernel_size // 2).
        condition_shape: None, `(D,)` (a class one-hot or latent vector) or `(H, W, D)` (a map,
            e.g. a VLAE latent decoded to the image size).
        output_filters: int or None. Width of the hidden output layer; None: 2 * filters.

    Returns:
        A `keras.Model`: images `(B, H, W, input_channels)` (and the condition, a second input)
        -> logits `(B, H, W, color_channels, levels)`.

    Reference: van den Oord et al., "Conditional Image Generation with PixelCNN Decoders",
    NeurIPS 2016, sections 2.1-2.3.
    """
    color_channels = int(color_channels or image_shape[-1])
    check_positive(levels=levels, filters=filters, num_layers=num_layers,
                    kernel_size=kernel_size)
    width = int(filters) * color_channels
    images = keras.Input(tuple(image_shape), name="images")
    inputs = [images]
    condition = None
    if condition_shape is not None:
        condition = keras.Input(tuple(condition_shape), name="condition")
        inputs.append(condition)
    vertical, horizontal = images, images
    for layer in range(int(num_layers)):
        size = int(first_kernel_size or kernel_size) if layer == 0 else int(kernel_size)
        block = GatedPixelCNNBlock(width, size, first=layer == 0, color_channels=color_channels,
                                   name=f"gated{layer}")
        stacks = [vertical, horizontal] + ([condition] if condition is not None else [])
        vertical, horizontal = block(stacks)
    logits = _output_layers(horizontal, image_shape, color_channels, int(levels),
                            int(output_filters or 2 * width))
    return keras.Model(inputs if len(inputs) > 1 else images, logits, name=name)
