"""The procedural sprites: images match their factors (position, scale, shape, orientation)."""

import numpy as np
import pytest

from keras_crvae.data import sprites

pytestmark = pytest.mark.portable

SQUARE, ELLIPSE, HEART = range(3)
PIXELS_PER_POSITION_STEP = 64 * (sprites.POSITION_RANGE[1] - sprites.POSITION_RANGE[0]) / 31


def centroid(image):
    rows, columns = np.nonzero(image[..., 0])
    return columns.mean(), rows.mean()


def one(shape=SQUARE, scale=5, orientation=0, pos_x=16, pos_y=16):
    return sprites.render_sprites(np.array([[shape, scale, orientation, pos_x, pos_y]]))[0]


def test_grid_and_values_match_dsprites():
    assert sprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert np.prod(sprites.FACTOR_SIZES) == 737280
    np.testing.assert_allclose(sprites.FACTOR_VALUES["scale"], np.linspace(0.5, 1, 6))
    np.testing.assert_allclose(sprites.FACTOR_VALUES["orientation"][[0, -1]], [0, 2 * np.pi])


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_centroid_follows_pos_x_and_pos_y(shape):
    # Moving pos_x by n steps moves the sprite's centroid right by n * (0.6 * 64 / 31) pixels and
    # leaves its row unchanged; pos_y likewise downwards (to the rasterisation's half pixel).
    base_x, base_y = centroid(one(shape, pos_x=4, pos_y=4))
    for steps in (5, 13, 27):
        x, y = centroid(one(shape, pos_x=4 + steps, pos_y=4))
        assert x - base_x == pytest.approx(steps * PIXELS_PER_POSITION_STEP, abs=0.5)
        assert y == pytest.approx(base_y, abs=0.5)
        x, y = centroid(one(shape, pos_x=4, pos_y=4 + steps))
        assert y - base_y == pytest.approx(steps * PIXELS_PER_POSITION_STEP, abs=0.5)
        assert x == pytest.approx(base_x, abs=0.5)


def test_area_grows_with_the_square_of_scale():
    # The square's side is 1.6 radii: area = (1.6 * 0.16 * 64 * s)^2 pixels, within edge pixels.
    for index, scale in enumerate(sprites.FACTOR_VALUES["scale"]):
        area = one(SQUARE, scale=index).sum()
        expected = (1.6 * sprites.RADIUS * 64 * scale) ** 2
        assert abs(area - expected) <= 4 * np.sqrt(expected) + 4
    areas = [one(shape, scale=index).sum() for shape in range(3) for index in range(6)]
    assert all(np.diff(np.reshape(areas, (3, 6)), axis=1).ravel() > 0)


def test_ellipse_area_and_orientation():
    # Ellipse semi-axes 1 and 0.5 radii: area pi * a * b; at orientation 0 it is wider than tall,
    # a quarter turn (index 10 of 40 over [0, 2 pi] is 92 degrees) makes it taller than wide.
    image = one(ELLIPSE, scale=5)
    radius = sprites.RADIUS * 64
    assert image.sum() == pytest.approx(np.pi * radius * 0.5 * radius, rel=0.08)
    rows, columns = np.nonzero(image[..., 0])
    assert np.ptp(columns) > 1.8 * np.ptp(rows)
    rows, columns = np.nonzero(one(ELLIPSE, scale=5, orientation=10)[..., 0])
    assert np.ptp(rows) > 1.8 * np.ptp(columns)


def test_orientation_turns_anticlockwise_on_screen():
    # An eighth of a turn (5 of 39 steps of 2 pi / 39 ~ 46 deg) tilts the ellipse's long axis so
    # that its right end rises (smaller row) on screen.
    rows, columns = np.nonzero(one(ELLIPSE, scale=5, orientation=5)[..., 0])
    right = columns > np.median(columns)
    assert rows[right].mean() < rows[~right].mean()


def test_shapes_differ_and_images_are_binary():
    images = sprites.render_sprites(np.array([[s, 5, 0, 16, 16] for s in range(3)]))
    assert set(np.unique(images)) <= {0.0, 1.0}
    assert images.shape == (3, 64, 64, 1) and images.dtype == np.float32
    assert all(np.abs(images[i] - images[j]).sum() > 20 for i in range(3) for j in range(i))


def test_load_sprites_returns_factors_beside_images():
    data = sprites.load_sprites(num_images=16, seed=3)
    assert data["images"].shape == (16, 64, 64, 1)
    np.testing.assert_array_equal(data["images"], sprites.render_sprites(data["factors"]))
    np.testing.assert_allclose(data["factor_values"][:, 1],
                               sprites.FACTOR_VALUES["scale"][data["factors"][:, 1]])
    (batch,) = next(sprites.sprite_batches(8, seed=0))
    assert batch.shape == (8, 64, 64, 1)


def test_bad_factors_raise():
    with pytest.raises(ValueError, match="indices below"):
        sprites.render_sprites(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        sprites.render_sprites(np.zeros((2, 4), int))


def test_tfds_dsprites_reads_a_prepared_copy_and_names_a_missing_one(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="not prepared"):
        sprites.load_tfds_dsprites(data_dir=str(tmp_path))
    with tfds.testing.mock_data(num_examples=6):
        data = sprites.load_tfds_dsprites(data_dir=str(tmp_path))
    assert data["images"].shape == (6, 64, 64, 1) and data["factors"].shape == (6, 5)
    assert data["images"].max() <= 1.0
    assert np.all(data["factors"] < np.asarray(sprites.FACTOR_SIZES))
