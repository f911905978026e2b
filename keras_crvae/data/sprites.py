"""Procedural 2D sprites on the dSprites factor grid, drawn analytically, with their factors.

dSprites (Matthey et al. 2017, github.com/deepmind/dsprites-dataset) holds 737,280 binary 64x64
images of one white sprite on black: every combination of 5 independent factors

    shape        3   square, ellipse, heart
    scale        6   linspace(0.5, 1, 6)
    orientation  40  linspace(0, 2 pi, 40) radians
    pos_x        32  linspace(0, 1, 32)
    pos_y        32  linspace(0, 1, 32)

This machine cannot download it, so `ProceduralSprites` draws the same grid from closed-form shapes:
a pixel is on when its centre lies inside the sprite (no anti-aliasing, like dSprites). The sprite
of scale `s` has "radius" `s * 0.16` of the image width; its reference point moves linearly from
0.2 to 0.8 of the width and height as `pos_x` / `pos_y` go from 0 to 1 (x to the right, y down);
`orientation` turns it anticlockwise on screen about that point. The shapes, in units of the radius:

    square   |u| <= 0.8 and |v| <= 0.8
    ellipse  u^2 + (v / 0.5)^2 <= 1              (a 2:1 ellipse)
    heart    (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0,   x = u / 0.7, y = -v / 0.7 + 0.125 (point down)

They are not dSprites' bitmaps (whose exact outlines and position range differ slightly), so scores
here are comparable with each other, not with numbers reported on dSprites itself. With a prepared
TFDS copy of the real data (`tfds.builder("dsprites").download_and_prepare()` on a connected
machine), `load_tfds_dsprites` returns the same dict.
"""

import collections

import numpy as np

IMAGE_SIZE = 64
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_VALUES = collections.OrderedDict([
    ("shape", np.arange(3, dtype=np.float32)),
    ("scale", np.linspace(0.5, 1.0, 6, dtype=np.float32)),
    ("orientation", np.linspace(0.0, 2.0 * np.pi, 40, dtype=np.float32)),
    ("pos_x", np.linspace(0.0, 1.0, 32, dtype=np.float32)),
    ("pos_y", np.linspace(0.0, 1.0, 32, dtype=np.float32)),
])
RADIUS = 0.16          # sprite radius at scale 1, as a fraction of the image width
POSITION_RANGE = (0.2, 0.8)  # where pos = 0 and pos = 1 put the sprite's reference point
_CHUNK = 2048          # images rendered per NumPy pass (memory ~ chunk * 4096 floats)


def _inside(shape_index, u, v):
    """Boolean mask of shape-local points `(u, v)` (radius units) inside one shape."""
    if shape_index == 0:
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape_index == 1:
        return u ** 2 + (v / 0.5) ** 2 <= 1.0
    x, y = u / 0.7, -v / 0.7 + 0.125  # the curve spans x in [-1.14, 1.14], y in [-1, 1.25]
    return (x ** 2 + y ** 2 - 1.0) ** 3 - x ** 2 * y ** 3 <= 0.0


def render_sprites(factors, image_size=IMAGE_SIZE):
    """Draws the sprites of factor indices.

    Args:
        factors: int array `(N, 5)`: indices into `FACTOR_SIZES` (shape, scale, orientation,
            pos_x, pos_y).
        image_size: int, default 64.

    Returns:
        float32 array `(N, image_size, image_size, 1)` with values in {0, 1}.
    """
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"`factors` must have shape (N, {len(FACTOR_SIZES)}); got "
                         f"{factors.shape}.")
    if np.any(factors < 0) or np.any(factors >= np.asarray(FACTOR_SIZES)):
        raise ValueError(f"`factors` must hold indices below {FACTOR_SIZES} per column.")
    images = np.zeros((len(factors), image_size, image_size, 1), np.float32)
    # Pixel centres in units of the image width: column -> x (right), row -> y (down).
    centres = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    low, high = POSITION_RANGE
    for start in range(0, len(factors), _CHUNK):
        chunk = factors[start:start + _CHUNK]
        scale = FACTOR_VALUES["scale"][chunk[:, 1]][:, None, None] * RADIUS
        angle = FACTOR_VALUES["orientation"][chunk[:, 2]][:, None, None]
        centre_x = (low + (high - low) * FACTOR_VALUES["pos_x"][chunk[:, 3]])[:, None, None]
        centre_y = (low + (high - low) * FACTOR_VALUES["pos_y"][chunk[:, 4]])[:, None, None]
        dx = (centres[None, None, :] - centre_x) / scale
        dy = (centres[None, :, None] - centre_y) / scale
        # Anticlockwise on screen (y down): rotate the point clockwise in (x, y) coordinates.
        cos, sin = np.cos(angle), np.sin(angle)
        u = cos * dx - sin * dy
        v = sin * dx + cos * dy
        mask = np.zeros(u.shape, bool)
        for shape_index in range(3):
            rows = chunk[:, 0] == shape_index
            if np.any(rows):
                mask[rows] = _inside(shape_index, u[rows], v[rows])
        images[start:start + _CHUNK, ..., 0] = mask
    return images


def sample_factors(num, rng=None, fixed=None):
    """Uniform factor indices `(num, 5)`; `fixed={column: index}` holds columns constant."""
    rng = np.random.default_rng(rng)
    factors = np.stack([rng.integers(0, size, int(num)) for size in FACTOR_SIZES], axis=1)
    for column, index in (fixed or {}).items():
        factors[:, column] = index
    return factors


def factor_values(factors):
    """Factor indices `(N, 5)` -> float32 values `(N, 5)` (shape as 0, 1, 2)."""
    factors = np.asarray(factors)
    return np.stack([FACTOR_VALUES[name][factors[:, i]] for i, name in enumerate(FACTOR_NAMES)],
                    axis=1)


class ProceduralSprites:
    """The factor source of the disentanglement metrics for the procedural sprites.

    `keras_crvae.evaluation.disentanglement` asks a source for `factor_sizes`,
    `sample_factors(num, rng)` and `observations(factors)`; this one draws the images.

    >>> source = ProceduralSprites()
    >>> source.observations(source.sample_factors(2, rng=0)).shape
    (2, 64, 64, 1)
    """

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def sample_factors(self, num, rng=None):
        return sample_factors(num, rng)

    def observations(self, factors):
        return render_sprites(factors)


def load_sprites(num_images=None, seed=0):
    """Procedural sprites with their factors.

    Args:
        num_images: int or None. None: the whole grid in factor order (737,280 images, 12 GB as
            float32: only for machines that have it); an int: that many uniform draws.
        seed: int, default 0.

    Returns:
        dict: `images` float32 `(N, 64, 64, 1)` in {0, 1}, `factors` int `(N, 5)` indices,
        `factor_values` float32 `(N, 5)`.
    """
    if num_images is None:
        grids = np.meshgrid(*[np.arange(size) for size in FACTOR_SIZES], indexing="ij")
        factors = np.stack([grid.ravel() for grid in grids], axis=1)
    else:
        if int(num_images) < 1:
            raise ValueError(f"`num_images` must be >= 1, got {num_images}.")
        factors = sample_factors(int(num_images), seed)
    return {"images": render_sprites(factors), "factors": factors,
            "factor_values": factor_values(factors)}


def sprite_batches(batch_size, seed=0):
    """An endless generator of 1-tuples `(images,)`, float32 `(batch_size, 64, 64, 1)` of fresh
    uniform draws (a tuple, as Keras' `fit` expects of a generator).

    Each batch is drawn anew, so training never sees a fixed subset (dSprites' 737,280 images are
    in effect an infinite stream at CPU budgets). Feed it to `model.fit(..., steps_per_epoch=N)`.
    """
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    rng = np.random.default_rng(seed)
    while True:
        yield (render_sprites(sample_factors(int(batch_size), rng)),)


_TFDS_LABELS = ("label_shape", "label_scale", "label_orientation", "label_x_position",
                "label_y_position")


def load_tfds_dsprites(data_dir=None, num_images=None, split="train"):
    """The real dSprites from a prepared TFDS copy, as `load_sprites` returns it (never downloads).

    Args:
        data_dir: str or None, the TFDS data directory holding `dsprites`.
        num_images: int or None (all 737,280).
        split: str, default "train" (dSprites has only this split).
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder("dsprites", data_dir=data_dir)
    try:  # TFDS raises AssertionError for a dataset that is not prepared
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:
        raise FileNotFoundError("dSprites is not prepared in TFDS' data_dir "
                                f"{data_dir or '~/tensorflow_datasets'}; prepare it on a "
                                "connected machine (tfds.builder('dsprites').download_and_prepare()"
                                ").") from None
    if num_images is not None:
        dataset = dataset.take(int(num_images))
    images, factors = [], []
    for example in tfds.as_numpy(dataset.batch(4096)):
        images.append(np.asarray(example["image"], np.float32))
        factors.append(np.stack([np.asarray(example[key]) for key in _TFDS_LABELS], axis=1))
    images = np.concatenate(images)
    if images.max() > 1:
        images = images / 255.0
    factors = np.concatenate(factors).astype(np.int64)
    return {"images": images, "factors": factors, "factor_values": factor_values(factors)}
