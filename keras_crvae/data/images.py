"""Colour-image input pipelines for the 64x64 GAN models (crVAE-GAN, VAE-GAN): TFDS, folders, arrays.

Every pipeline yields float32 batches `(batch_size, image_size, image_size, 3)` in [-1, 1], the range of
the generators' tanh output (the reference scales its [0, 1] tensors with `data:mul(2):add(-1)`,
`main.lua` of WendyShang/crVAE).

Preprocessing of one image (`preprocess_image`):
1. grey -> RGB, integers scaled to [0, 1];
2. crop: the central square (default), a fixed fractional box (CelebA's face window), the
   bird's bounding box (CUB), or nothing;
3. resize to `image_size` x `image_size` (bilinear with antialiasing), or, for "crop_flip", resize
   the shorter side to `image_size * random_crop_scale` and take a random square crop;
4. random horizontal flip for "flip" and "crop_flip".

Augmentation follows the crVAE supplement (section D, "Data Augmentation"): random horizontal flips
for Birds and CelebA (`image_utils.HorizontalFlip(0.5)` in the reference), random crops and flips
for LSUN. The reference ships only pre-processed Birds tensors (`train_bird.t7`), not the code that
made them, so the crops are the conventions of the works it builds on; see `tfds_image_dataset`.

Random draws use stateless ops with one seed per element, taken from a `tf.random.Generator` in a
cheap sequential step: the expensive map runs in parallel yet a seeded pipeline is reproducible, and
a fresh draw is made every epoch.
"""

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUGMENTATIONS = (None, "flip", "crop_flip")
CELEBA_NPZ_ENV = "KERAS_CRVAE_CELEBA_NPZ"

# The face window of the aligned 178x218 CelebA frames, `img[45:173, 25:153]` of the Two-Stage VAE
# preprocessing (daib13/TwoStageVAE, `preprocess.py`), as fractions (top, left, height, width) so
# it also applies to rescaled copies. shared/data/celeba64_subset.npz was cut within one pixel of it.
CELEBA_FACE_CROP = (45 / 218, 25 / 178, 128 / 218, 128 / 178)

# StackGAN's loader resizes to imsize * 76 / 64 before its random crop (hanzhanggit/StackGAN,
# `misc/datasets.py`); crVAE's Stage2 follows StackGAN (supplement C.2).
DEFAULT_RANDOM_CROP_SCALE = 76 / 64

# Per TFDS dataset: default augmentation (supplement D) and crop.
TFDS_IMAGE_DATASETS = {
    "celeb_a": {"augment": "flip", "crop": CELEBA_FACE_CROP},
    "caltech_birds2011": {"augment": "flip", "crop": "bbox"},
    "lsun/bedroom": {"augment": "crop_flip", "crop": "center"},
}

_MAGIC_NUMBERS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


# === Validation ===

def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive int (e.g. 64), got {image_size!r}.")
    return int(image_size)


def _check_augment(augment):
    if augment not in AUGMENTATIONS:
        raise ValueError(f"`augment` must be one of {AUGMENTATIONS}, got {augment!r}.")
    return augment


def _check_crop(crop):
    if isinstance(crop, str):
        if crop not in ("center", "none", "bbox"):
            raise ValueError(
                "`crop` must be 'center', 'none', 'bbox' or a box (top, left, height, width) of "
                f"fractions in [0, 1]; got {crop!r}."
            )
        return crop
    try:
        top, left, height, width = (float(value) for value in crop)
    except (TypeError, ValueError):
        raise ValueError(
            "`crop` must be 'center', 'none', 'bbox' or a box (top, left, height, width) of "
            f"fractions in [0, 1]; got {crop!r}."
        ) from None
    if min(top, left) < 0 or min(height, width) <= 0 or top + height > 1 + 1e-9 or left + width > 1 + 1e-9:
        raise ValueError(
            "A `crop` box (top, left, height, width) must hold fractions with top, left >= 0, "
            f"height, width > 0, top + height <= 1 and left + width <= 1; got {crop!r}."
        )
    return (top, left, height, width)


# === One image ===

def preprocess_image(image, image_size=64, augment=None, crop="center", seed=None, bbox=None,
                     random_crop_scale=DEFAULT_RANDOM_CROP_SCALE):
    """Crops, resizes, augments and scales one image to float32 `(image_size, image_size, 3)` in [-1, 1].

    A "center" crop takes the largest central square: for an `H x W` image with `S = min(H, W)`, rows
    `(H - S) // 2 ...` and columns `(W - S) // 2 ...` (the odd pixel goes to the far side). The crop
    is then resized with bilinear interpolation and antialiasing, and `x -> 2x - 1` maps [0, 1] to
    [-1, 1] as the reference's `data:mul(2):add(-1)` (`main.lua` of WendyShang/crVAE).

    >>> preprocess_image(np.zeros((218, 178, 3), np.uint8)).shape
    TensorShape([64, 64, 3])

    Args:
        image: `(H, W, C)` or `(H, W)` tensor/array with C in {1, 3, 4}; uint8 (0..255), uint16, or
            float in [0, 1]. Grey becomes RGB; a fourth (alpha) channel is dropped.
        image_size: int, default 64. Side of the square output.
        augment: None (default), "flip" (random horizontal flip, Birds/CelebA) or "crop_flip"
            (resize the shorter side to `image_size * random_crop_scale`, random square crop, random
            horizontal flip; LSUN). Supplement D of the crVAE paper.
        crop: "center" (default; with "crop_flip" the random crop replaces it), "none" (resize the
            whole image, aspect ratio not kept), "bbox" (the StackGAN square of side
            `1.5 * max(box height, box width)` around the centre of `bbox`, clipped to the image;
            needs `bbox`) or a box `(top, left, height, width)` of fractions of the image size
            (e.g. `CELEBA_FACE_CROP`).
        seed: shape `(2,)` int tensor for the stateless random ops; None draws one from the global
            TF random state (eager use).
        bbox: `(ymin, xmin, ymax, xmax)` in [0, 1] (TFDS `BBoxFeature`), only for `crop="bbox"`.
        random_crop_scale: float >= 1, default 76/64 (StackGAN). Shorter side before the random
            crop, in units of `image_size`; 1.0 only slides the window along the longer side.

    Returns:
        float32 tensor `(image_size, image_size, 3)` in [-1, 1].
    """
    import tensorflow as tf

    image_size = _check_image_size(image_size)
    augment = _check_augment(augment)
    crop = _check_crop(crop)
    if crop == "bbox" and bbox is None:
        raise ValueError("`crop='bbox'` needs `bbox` = (ymin, xmin, ymax, xmax) in [0, 1].")
    if not random_crop_scale >= 1.0:
        raise ValueError(f"`random_crop_scale` must be >= 1, got {random_crop_scale!r}.")

    image = _to_unit_rgb(tf.convert_to_tensor(image))
    if crop == "bbox":
        image = _crop_to_bbox(image, tf.convert_to_tensor(bbox, tf.float32))
    elif isinstance(crop, tuple):
        image = _crop_to_fractional_box(image, crop)
    elif crop == "center" and augment != "crop_flip":
        image = _center_square(image)

    if augment is not None:
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if augment == "crop_flip":
        image = _resize_shorter_side(image, int(round(image_size * random_crop_scale)))
        image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed=crop_seed)
    elif tuple(image.shape[:2]) != (image_size, image_size):  # statically known: skip the no-op
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
    if augment is not None:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.clip_by_value(image, 0.0, 1.0) * 2.0 - 1.0
    return tf.ensure_shape(image, (image_size, image_size, 3))


def _to_unit_rgb(image):
    """`(H, W[, C])` image of any TF image dtype -> float32 `(H, W, 3)` in [0, 1]."""
    import tensorflow as tf

    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape.rank != 3:
        raise ValueError(f"`image` must have shape (H, W, C) or (H, W); got {image.shape}.")
    channels = image.shape[-1]
    if channels not in (1, 3, 4):
        raise ValueError(f"`image` must have 1, 3 or 4 channels; got shape {image.shape}.")
    if image.dtype.is_floating:
        image = tf.cast(image, tf.float32)
    else:
        image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 / 255, uint16 / 65535
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image[..., :3]


def _center_square(image):
    """The largest central square of an `(H, W, 3)` image (offsets `(H - S) // 2`, `(W - S) // 2`)."""
    import tensorflow as tf

    if image.shape[0] is not None and image.shape[0] == image.shape[1]:
        return image  # statically square already
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    return tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)


def _crop_to_fractional_box(image, box):
    """Crops `(top, left, height, width)` given as fractions of the image's height and width."""
    import tensorflow as tf

    size = tf.cast(tf.shape(image)[:2], tf.float32)
    top, left, height, width = box
    offsets = tf.cast(tf.round(size * (top, left)), tf.int32)
    extent = tf.maximum(tf.cast(tf.round(size * (height, width)), tf.int32), 1)
    extent = tf.minimum(extent, tf.shape(image)[:2] - offsets)
    return tf.image.crop_to_bounding_box(image, offsets[0], offsets[1], extent[0], extent[1])


def _crop_to_bbox(image, bbox):
    """StackGAN's bird crop: the square of half-side `R = int(0.75 * max(h, w))` around the box centre.

    Clipped to the image, so it may come out non-square near a border (then resized as StackGAN
    does). `bbox` is `(ymin, xmin, ymax, xmax)` in [0, 1]. Reference: hanzhanggit/StackGAN,
    `misc/datasets.py` (`get_img`), the crop used for 64x64 CUB birds.
    """
    import tensorflow as tf

    shape = tf.shape(image)[:2]
    size = tf.cast(shape, tf.float32)
    corner_min = bbox[:2] * size  # (y, x) in pixels
    corner_max = bbox[2:] * size
    half_side = tf.floor(0.75 * tf.reduce_max(corner_max - corner_min))
    center = tf.floor((corner_min + corner_max) / 2.0)
    start = tf.cast(tf.maximum(center - half_side, 0.0), tf.int32)
    stop = tf.cast(tf.minimum(center + half_side, size), tf.int32)
    stop = tf.maximum(stop, tf.minimum(start + 1, shape))  # a degenerate box keeps one pixel
    start = tf.minimum(start, stop - 1)
    extent = stop - start
    return tf.image.crop_to_bounding_box(image, start[0], start[1], extent[0], extent[1])


def _resize_shorter_side(image, target):
    """Resizes so that `min(H, W) == target`, keeping the aspect ratio (longer side rounded up)."""
    import tensorflow as tf

    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = target / tf.reduce_min(size)
    new_size = tf.maximum(tf.cast(tf.math.ceil(size * scale - 1e-3), tf.int32), target)
    return tf.image.resize(image, new_size, antialias=True)


# === Sources ===

def _check_arrays(images, name="images"):
    """Validates `(N, H, W[, C])` uint8 / float-in-[0, 1] images; returns the array with a channel axis."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or min(images.shape[1:3], default=0) < 1:
        raise ValueError(
            f"`{name}` must have shape (N, H, W, 3), (N, H, W, 1) or (N, H, W); got {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: got 0 images.")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"`{name}` must be uint8 (0..255) or float in [0, 1]; got dtype {images.dtype}.")
    low, high = float(images.min()), float(images.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
        raise ValueError(
            f"`{name}` of dtype {images.dtype} must lie in [0, 1] (or be uint8 in 0..255); got values "
            f"in [{low}, {high}]. Images in [-1, 1] convert with (x + 1) / 2."
        )
    return images.astype(np.float32, copy=False)


def _has_image_header(path):
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in _MAGIC_NUMBERS)


def _decodes(path):
    import tensorflow as tf

    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.OpError, OSError, ValueError):
        return False
    return image.shape[0] > 0 and image.shape[1] > 0


def scan_image_folder(directory, verify="header"):
    """Lists the image files under `directory` (recursively) and separates the unusable ones.

    Candidates are files ending in .jpg, .jpeg, .png, .bmp or .gif (any case); other files are
    ignored. A candidate is bad when it cannot be read, or does not start with a JPEG, PNG, GIF or
    BMP signature ("header", fast), or, with `verify="decode"`, does not fully decode (catches
    truncated files too; decodes every image once, slow for large folders).

    Args:
        directory: str or path-like, the folder to search.
        verify: "header" (default) or "decode".

    Returns:
        `(good_paths, bad_paths)`, two sorted lists of str.
    """
    if verify not in ("header", "decode"):
        raise ValueError(f"`verify` must be 'header' or 'decode', got {verify!r}.")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"`directory` {directory!r} is not a folder.")
    candidates = []
    for root, _, names in os.walk(directory, followlinks=True):
        candidates.extend(os.path.join(root, name) for name in names
                          if name.lower().endswith(IMAGE_EXTENSIONS))
    good, bad = [], []
    for path in sorted(candidates):
        usable = _has_image_header(path) and (verify == "header" or _decodes(path))
        (good if usable else bad).append(path)
    return good, bad


def load_celeba_subset(path=None):
    """Loads the CelebA faces archive (`shared/data/celeba64_subset.npz`): uint8 `(N, 64, 64, 3)`.

    The archive holds key "x", aligned CelebA faces already cut to the face window and at 64x64
    (see its README). There is no default location: pass `path` or set the environment variable
    `KERAS_CRVAE_CELEBA_NPZ`.

    Args:
        path: str, path-like or None.

    Returns:
        uint8 array `(N, 64, 64, 3)`.
    """
    if path is None:
        path = os.environ.get(CELEBA_NPZ_ENV)
    if not path:
        raise ValueError(
            f"No CelebA subset given: pass `path` or set {CELEBA_NPZ_ENV} to a .npz file with key 'x' "
            "of uint8 faces (N, 64, 64, 3)."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path!r} (the CelebA face subset).")
    with np.load(path) as archive:
        if "x" not in archive:
            raise KeyError(f"Key 'x' not in {path!r}; it holds {sorted(archive.keys())}.")
        faces = archive["x"]
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (64, 64, 3):
        raise ValueError(f"{path}:x must be uint8 (N, 64, 64, 3); got {faces.dtype} {faces.shape}.")
    return faces


def _load_npz_spec(spec):
    """`"PATH"` (key "x") or `"PATH:KEY"` -> the array (never unpickled; see `io.read_npz_array`)."""
    from keras_crvae.io import read_npz_array, split_npz_spec

    path, key = split_npz_spec(spec, default_key="x")
    try:
        return read_npz_array(path, key)[0]
    except FileNotFoundError:
        raise FileNotFoundError(f"No such .npz file: {path!r} (from `npz`={spec!r}).") from None


# === Pipelines ===

def _with_seeds(dataset, seed):
    """Pairs every element with a fresh stateless seed `(2,)`, drawn sequentially (reproducible)."""
    import tensorflow as tf

    generator = (tf.random.Generator.from_seed(seed) if seed is not None
                 else tf.random.Generator.from_non_deterministic_state())
    return dataset.map(lambda element: (element, generator.make_seeds(1)[:, 0]))


def _finish(dataset, preprocess, augment, batch_size, seed, repeat, drop_remainder,
            ignore_errors=False):
    """(optional repeat) -> per-element seeds -> parallel `preprocess` -> batch -> prefetch."""
    import tensorflow as tf

    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if repeat:
        dataset = dataset.repeat()
    if augment is not None:
        dataset = _with_seeds(dataset, seed).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE,
                                                 deterministic=True)
    else:
        dataset = dataset.map(lambda element: preprocess(element, None),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if ignore_errors:
        dataset = dataset.ignore_errors(log_warning=True)
    return dataset.batch(int(batch_size), drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _check_enough(num_images, batch_size, drop_remainder, repeat):
    if drop_remainder and not repeat and num_images < batch_size:
        raise ValueError(
            f"Only {num_images} images for `batch_size`={batch_size} with drop_remainder: no batch "
            "would be produced. Lower the batch size."
        )


def array_image_dataset(images, image_size=64, batch_size=64, augment="flip", crop="center",
                        shuffle=True, seed=None, repeat=False, drop_remainder=True):
    """A `tf.data.Dataset` of preprocessed batches from in-memory images.

    Shuffles a permutation of indices over the whole array each epoch (no buffer), then gathers
    and preprocesses (`preprocess_image`) in a parallel map. The array is embedded in the graph, so
    it must stay below 2 GB (about 170k images at 64x64x3 uint8).

    Args:
        images: array `(N, H, W, 3)`, `(N, H, W, 1)` or `(N, H, W)`; uint8 or float in [0, 1].
        image_size: int, default 64.
        batch_size: int, default 64.
        augment: None, "flip" (default) or "crop_flip".
        crop: as in `preprocess_image`, default "center" (a no-op on square images).
        shuffle: bool, default True.
        seed: int or None; a seeded pipeline gives the same batches every time it is built.
        repeat: bool, default False. Repeat forever (then pass `steps_per_epoch` to fit()).
        drop_remainder: bool, default True (the reference drops the last partial batch).

    Returns:
        `tf.data.Dataset` of float32 `(batch_size, image_size, image_size, 3)` in [-1, 1].
    """
    import tensorflow as tf

    images = _check_arrays(images)
    image_size, augment = _check_image_size(image_size), _check_augment(augment)
    crop = _check_crop(crop)
    if crop == "bbox":
        raise ValueError("`crop='bbox'` needs bounding boxes; arrays have none. Use 'center' or a box.")
    _check_enough(len(images), batch_size, drop_remainder, repeat)
    table = tf.constant(images)
    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def preprocess(index, element_seed):
        return preprocess_image(tf.gather(table, index), image_size, augment, crop, element_seed)

    return _finish(dataset, preprocess, augment, batch_size, seed, repeat, drop_remainder)


def image_folder_dataset(directory, image_size=64, batch_size=64, augment="flip", crop="center",
                         shuffle=True, seed=None, repeat=False, drop_remainder=True, verify="header"):
    """A `tf.data.Dataset` of preprocessed batches from the image files under `directory`.

    Files are found by `scan_image_folder` (.jpg/.jpeg/.png/.bmp/.gif, recursively). Unusable files
    are skipped and reported once as a logging warning with their count and first names; a file
    that passes the check yet fails to decode later is dropped by `ignore_errors` (TF logs it).
    The file list is fully shuffled every epoch, then read and decoded in a parallel map (GIFs give
    their first frame).

    Args:
        directory: str or path-like.
        image_size, batch_size, augment, crop, shuffle, seed, repeat, drop_remainder: as in
            `array_image_dataset`.
        verify: "header" (default) or "decode", see `scan_image_folder`.

    Returns:
        `tf.data.Dataset` of float32 `(batch_size, image_size, image_size, 3)` in [-1, 1].
    """
    import tensorflow as tf

    image_size, augment = _check_image_size(image_size), _check_augment(augment)
    crop = _check_crop(crop)
    if crop == "bbox":
        raise ValueError("`crop='bbox'` needs bounding boxes; image folders have none.")
    good, bad = scan_image_folder(directory, verify=verify)
    if bad:
        names = ", ".join(os.path.relpath(path, directory) for path in bad[:5])
        logger.warning("Skipping %d unreadable or corrupt image file(s) of %d in %s: %s%s", len(bad),
                       len(good) + len(bad), os.fspath(directory), names, ", ..." if len(bad) > 5 else "")
    if not good:
        raise ValueError(
            f"No usable image files ({', '.join(IMAGE_EXTENSIONS)}) under {os.fspath(directory)!r}"
            f"{f'; {len(bad)} were corrupt' if bad else ''}."
        )
    _check_enough(len(good), batch_size, drop_remainder, repeat)
    dataset = tf.data.Dataset.from_tensor_slices(good)
    if shuffle:
        dataset = dataset.shuffle(len(good), seed=seed, reshuffle_each_iteration=True)

    def preprocess(path, element_seed):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape((None, None, 3))
        return preprocess_image(image, image_size, augment, crop, element_seed)

    return _finish(dataset, preprocess, augment, batch_size, seed, repeat, drop_remainder,
                   ignore_errors=True)


def tfds_image_dataset(name, split="train", data_dir=None, image_size=64, batch_size=64,
                       augment="default", crop="default", shuffle=True, shuffle_buffer=10000,
                       seed=None, repeat=False, drop_remainder=True):
    """A `tf.data.Dataset` of preprocessed batches from a prepared TFDS image dataset.

    Supported: "celeb_a", "caltech_birds2011", "lsun/bedroom". Nothing is downloaded; when the
    dataset is not prepared under `data_dir`, a `FileNotFoundError` says how to prepare it.

    Defaults per dataset (`TFDS_IMAGE_DATASETS`):
    - celeb_a: random flip; crop `CELEBA_FACE_CROP`, the 128x128 face window of the aligned
      178x218 frames (Two-Stage VAE preprocessing; the crVAE code for CelebA is not public).
    - caltech_birds2011: random flip; crop "bbox", StackGAN's square of 1.5x the bounding box's
      longer side. The crVAE reference ships only already-processed 64x64 Birds tensors, without
      the script that made them; its Stage2 follows StackGAN (supplement C.2), whose 64x64 birds
      are cropped this way. Pass `crop="center"` for whole images.
    - lsun/bedroom: random crop + flip (shorter side to 76/64 x `image_size`, random square).

    Args:
        name: str, one of the supported TFDS names.
        split: str, default "train". Any TFDS split string ("train[:10%]").
        data_dir: str or None, the TFDS data folder (TFDS's default when None).
        image_size, batch_size, shuffle, seed, repeat, drop_remainder: as in `array_image_dataset`.
        augment: "default" (per dataset), None, "flip" or "crop_flip".
        crop: "default" (per dataset) or as in `preprocess_image`.
        shuffle_buffer: int, default 10000. Element shuffle buffer after file-level shuffling.

    Returns:
        `tf.data.Dataset` of float32 `(batch_size, image_size, image_size, 3)` in [-1, 1].
    """
    import tensorflow_datasets as tfds

    if name not in TFDS_IMAGE_DATASETS:
        raise ValueError(f"`name` must be one of {sorted(TFDS_IMAGE_DATASETS)}, got {name!r}.")
    defaults = TFDS_IMAGE_DATASETS[name]
    augment = _check_augment(defaults["augment"] if augment == "default" else augment)
    crop = _check_crop(defaults["crop"] if crop == "default" else crop)
    image_size = _check_image_size(image_size)
    if crop == "bbox" and name != "caltech_birds2011":
        raise ValueError(f"`crop='bbox'` needs bounding boxes; {name!r} has none.")
    if int(shuffle_buffer) < 1:
        raise ValueError(f"`shuffle_buffer` must be >= 1, got {shuffle_buffer}.")
    decoders = None
    if name == "caltech_birds2011":  # the masks are not used: skip decoding them
        decoders = {"segmentation_mask": tfds.decode.SkipDecoding()}
    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=False,
                            shuffle_files=shuffle, decoders=decoders,
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
    except (AssertionError, FileNotFoundError, OSError) as error:  # TFDS asserts on missing data
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared under data_dir={data_dir!r}. Prepare it once with "
            f"`tfds build {name} --data_dir=DIR` on a machine with network access (celeb_a and "
            "lsun are large downloads), then pass that DIR. Or use an image folder or an .npz instead. "
            f"({error})"
        ) from error
    if shuffle:
        dataset = dataset.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)

    def preprocess(example, element_seed):
        box = example["bbox"] if crop == "bbox" else None
        return preprocess_image(example["image"], image_size, augment, crop, element_seed, bbox=box)

    return _finish(dataset, preprocess, augment, batch_size, seed, repeat, drop_remainder)


def image_dataset(*, tfds_name=None, data_dir=None, image_dir=None, npz=None, arrays=None,
                  split="train", image_size=64, batch_size=64, augment="default", shuffle=True,
                  shuffle_buffer=10000, seed=None, repeat=False, drop_remainder=True, crop="default"):
    """One entry point for the GAN training scripts: batches of 64x64 colour images in [-1, 1].

    Exactly one source must be given:
    - `tfds_name` ("celeb_a", "caltech_birds2011", "lsun/bedroom") with `data_dir` and `split`:
      `tfds_image_dataset`;
    - `image_dir`, a folder of image files: `image_folder_dataset`;
    - `npz`, "PATH" (key "x") or "PATH:KEY", e.g. shared/data/celeba64_subset.npz:
      `array_image_dataset`;
    - `arrays`, an in-memory array `(N, H, W, 3|1)`: `array_image_dataset`.

    Args:
        augment: "default" (per TFDS dataset; "flip" for folders and arrays, as for faces and
            birds), None, "flip" or "crop_flip".
        shuffle_buffer: int, default 10000; TFDS only (folders and arrays shuffle fully).
        crop: "default" (per TFDS dataset; "center" for folders and arrays) or as in
            `preprocess_image`.
        The others: as in `array_image_dataset` / `tfds_image_dataset`.

    Returns:
        `tf.data.Dataset` of float32 `(batch_size, image_size, image_size, 3)` in [-1, 1].
    """
    sources = {"tfds_name": tfds_name, "image_dir": image_dir, "npz": npz, "arrays": arrays}
    given = [key for key, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ValueError(
            "Give exactly one image source of `tfds_name`, `image_dir`, `npz` or `arrays`; got "
            f"{given or 'none'}."
        )
    common = dict(image_size=image_size, batch_size=batch_size, shuffle=shuffle, seed=seed,
                  repeat=repeat, drop_remainder=drop_remainder)
    if tfds_name is not None:
        return tfds_image_dataset(tfds_name, split=split, data_dir=data_dir, augment=augment,
                                  crop=crop, shuffle_buffer=shuffle_buffer, **common)
    common.update(augment="flip" if augment == "default" else augment,
                  crop="center" if crop == "default" else crop)
    if image_dir is not None:
        return image_folder_dataset(image_dir, **common)
    images = _load_npz_spec(npz) if npz is not None else arrays
    return array_image_dataset(images, **common)
