"""Colour-image pipelines: preprocessing math, folders with bad files, arrays, npz, TFDS (mocked)."""

import io
import logging
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from keras_crvae import data
from keras_crvae.data import images as images_module

SHARED_FACES = pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "celeba64_subset.npz"


def to_numpy(tensor):
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)


def scaled(uint8_image):
    """The expected [-1, 1] value of uint8 pixels: v / 127.5 - 1."""
    return uint8_image.astype(np.float32) / 127.5 - 1.0


def column_stripes(height, width):
    """uint8 image whose every column has its own grey level (10 * column + channel)."""
    columns = 10 * np.arange(width, dtype=np.uint8)[None, :, None] + np.arange(3, dtype=np.uint8)
    return np.broadcast_to(columns, (height, width, 3)).copy()


# === preprocess_image ===

def test_uint8_float_and_grey_inputs_scale_exactly_to_minus_one_one():
    image = np.array([[0, 255], [51, 204]], np.uint8)[..., None].repeat(3, axis=-1)
    out = to_numpy(data.preprocess_image(image, image_size=2))
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_allclose(out, scaled(image), atol=1e-6)
    assert out.min() == -1.0 and out.max() == 1.0
    np.testing.assert_allclose(to_numpy(data.preprocess_image(image / 255.0, image_size=2)), out, atol=1e-6)
    for grey in (image[..., :1], image[..., 0]):  # (H, W, 1) and (H, W) -> three equal channels
        np.testing.assert_allclose(to_numpy(data.preprocess_image(grey, image_size=2)), out, atol=1e-6)


@pytest.mark.parametrize("height, width, first_column", [(4, 8, 2), (5, 8, 1), (4, 5, 0)])
def test_center_crop_keeps_the_middle_columns_of_a_wide_image(height, width, first_column):
    """Side S = H; columns (W - S) // 2 ... (W - S) // 2 + S - 1, no resampling when S == image_size."""
    image = column_stripes(height, width)
    out = to_numpy(data.preprocess_image(image, image_size=height))
    np.testing.assert_allclose(out, scaled(image[:, first_column:first_column + height]), atol=1e-6)


def test_center_crop_keeps_the_middle_rows_of_a_tall_image():
    image = np.transpose(column_stripes(4, 9), (1, 0, 2))  # 9 x 4, row stripes
    out = to_numpy(data.preprocess_image(image, image_size=4))
    np.testing.assert_allclose(out, scaled(image[2:6]), atol=1e-6)


def test_resize_of_a_constant_image_stays_constant_and_in_range():
    image = np.full((218, 178, 3), 200, np.uint8)
    out = to_numpy(data.preprocess_image(image, image_size=64))
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(out, 200 / 127.5 - 1.0, atol=1e-5)


def test_celeba_face_box_is_the_two_stage_vae_window():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    out = to_numpy(data.preprocess_image(frame, image_size=128, crop=data.CELEBA_FACE_CROP))
    np.testing.assert_allclose(out, scaled(frame[45:173, 25:153]), atol=1e-6)


@pytest.mark.parametrize("box_pixels, expected_rows, expected_cols", [
    # (ymin, xmin, ymax, xmax): 40x40 box centred at (40, 70): R = int(0.75 * 40) = 30.
    ((20, 50, 60, 90), (10, 70), (40, 100)),
    # Near the top-left corner the StackGAN square is clipped: centre (10, 15), R = int(0.75 * 20) = 15.
    ((0, 5, 20, 25), (0, 25), (0, 30)),
])
def test_bbox_crop_follows_stackgan(box_pixels, expected_rows, expected_cols):
    height, width = 100, 200
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    bbox = np.array(box_pixels, np.float32) / np.array([height, width, height, width], np.float32)
    rows, cols = slice(*expected_rows), slice(*expected_cols)
    expected = image[rows, cols]
    if expected.shape[0] != expected.shape[1]:  # clipped: StackGAN resizes the box as it is
        import tensorflow as tf

        expected_out = tf.image.resize(expected.astype(np.float32) / 255.0, (30, 30), antialias=True)
        expected_out = np.clip(to_numpy(expected_out), 0, 1) * 2 - 1
        size = 30
    else:
        expected_out, size = scaled(expected), expected.shape[0]
    out = to_numpy(data.preprocess_image(image, image_size=size, crop="bbox", bbox=bbox))
    np.testing.assert_allclose(out, expected_out, atol=1e-5)


def test_flip_is_horizontal_random_and_reproducible_per_seed():
    image = column_stripes(6, 6)
    image[0] = 255  # top row differs, so a vertical flip would be visible
    plain = scaled(image)
    flipped_count = 0
    for index in range(20):
        out = to_numpy(data.preprocess_image(image, image_size=6, augment="flip", seed=[index, 7]))
        if np.allclose(out, plain[:, ::-1], atol=1e-6):
            flipped_count += 1
        else:
            np.testing.assert_allclose(out, plain, atol=1e-6)
        if index < 3:
            again = to_numpy(data.preprocess_image(image, image_size=6, augment="flip", seed=[index, 7]))
            np.testing.assert_array_equal(out, again)
    assert 3 <= flipped_count <= 17


def test_crop_flip_takes_random_full_height_windows():
    """random_crop_scale=1 on a 4x10 image: no resize, a 4x4 window at offset 0..6, maybe mirrored."""
    image = column_stripes(4, 10)
    windows = [((k, flip), scaled(image[:, k:k + 4])[:, ::-1] if flip else scaled(image[:, k:k + 4]))
               for k in range(7) for flip in (False, True)]
    seen = set()
    for index in range(24):
        out = to_numpy(data.preprocess_image(image, image_size=4, augment="crop_flip", seed=[index, 3],
                                             random_crop_scale=1.0))
        matches = [key for key, window in windows if np.allclose(out, window, atol=1e-6)]
        assert len(matches) == 1, "output is not a (mirrored) window of the image"
        seen.add(matches[0])
    assert len({offset for offset, _ in seen}) >= 4 and {flip for _, flip in seen} == {False, True}
    big = data.preprocess_image(np.zeros((96, 128, 3), np.uint8), image_size=64, augment="crop_flip")
    assert tuple(big.shape) == (64, 64, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(augment="rotate"), "augment"),
    (dict(image_size=0), "image_size"),
    (dict(image_size=64.0), "image_size"),
    (dict(crop="middle"), "crop"),
    (dict(crop=(0.5, 0.0, 0.6, 1.0)), "crop"),
    (dict(crop="bbox"), "bbox"),
    (dict(augment="crop_flip", random_crop_scale=0.5), "random_crop_scale"),
])
def test_preprocess_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.preprocess_image(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_preprocess_rejects_bad_image_shapes():
    with pytest.raises(ValueError, match="channels"):
        data.preprocess_image(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        data.preprocess_image(np.zeros((2, 8, 8, 3), np.uint8))


# === arrays and npz ===

def test_array_pipeline_without_augmentation_returns_the_images_in_order():
    images = np.random.default_rng(2).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    batches = [to_numpy(b) for b in data.array_image_dataset(images, image_size=8, batch_size=4,
                                                             augment=None, shuffle=False)]
    assert [b.shape for b in batches] == [(4, 8, 8, 3)] * 2  # the last partial batch is dropped
    np.testing.assert_allclose(np.concatenate(batches), scaled(images[:8]), atol=1e-6)
    grey = data.array_image_dataset(images[..., :1], image_size=4, batch_size=5, augment=None)
    assert next(iter(grey)).shape == (5, 4, 4, 3)
    # A fractional box through image_dataset: rows/cols 2..5 of the 8x8 images.
    boxed = data.image_dataset(arrays=images, image_size=4, batch_size=2, augment=None, shuffle=False,
                               crop=(0.25, 0.25, 0.5, 0.5))
    np.testing.assert_allclose(to_numpy(next(iter(boxed))), scaled(images[:2, 2:6, 2:6]), atol=1e-6)


def test_seeded_pipeline_is_reproducible_and_reshuffles_every_epoch():
    images = np.arange(32, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    first = data.image_dataset(arrays=images, image_size=4, batch_size=32, seed=3)
    second = data.image_dataset(arrays=images, image_size=4, batch_size=32, seed=3)
    epoch1, epoch2 = to_numpy(next(iter(first))), to_numpy(next(iter(first)))
    np.testing.assert_array_equal(epoch1, to_numpy(next(iter(second))))
    assert not np.array_equal(epoch1, epoch2)
    # Each constant image comes through exactly once per epoch, flipped or not.
    np.testing.assert_allclose(np.sort(epoch1[:, 0, 0, 0]), scaled(np.arange(32)), atol=1e-6)


def test_repeat_crosses_epochs_and_array_errors():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    dataset = data.array_image_dataset(images, image_size=4, batch_size=5, repeat=True)
    assert next(iter(dataset)).shape == (5, 4, 4, 3)
    with pytest.raises(ValueError, match="batch_size"):
        data.array_image_dataset(images, batch_size=5)
    with pytest.raises(ValueError, match=r"\[0, 1\].*\(x \+ 1\) / 2"):
        data.array_image_dataset(np.full((4, 4, 4, 3), -0.5, np.float32), batch_size=2)
    with pytest.raises(ValueError, match="images.*shape"):
        data.array_image_dataset(np.zeros((4, 4, 4, 2), np.uint8), batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        data.array_image_dataset(np.zeros((0, 4, 4, 3), np.uint8))


def test_npz_spec_with_and_without_key(tmp_path):
    path = tmp_path / "faces.npz"
    faces = np.full((4, 8, 8, 3), 255, np.uint8)
    np.savez(path, x=faces, other=np.zeros((4, 8, 8, 3), np.uint8))
    plain = to_numpy(next(iter(data.image_dataset(npz=os.fspath(path), image_size=8, batch_size=4))))
    other = to_numpy(next(iter(data.image_dataset(npz=f"{path}:other", image_size=8, batch_size=4))))
    assert plain.min() == 1.0 and other.max() == -1.0
    with pytest.raises(KeyError, match="missing"):
        data.image_dataset(npz=f"{path}:missing")
    with pytest.raises(FileNotFoundError):
        data.image_dataset(npz=os.fspath(tmp_path / "absent.npz"))


def test_image_dataset_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        data.image_dataset()
    with pytest.raises(ValueError, match="exactly one.*image_dir.*arrays"):
        data.image_dataset(image_dir=os.fspath(tmp_path), arrays=np.zeros((4, 8, 8, 3), np.uint8))


def test_load_celeba_subset_needs_a_path(tmp_path, monkeypatch):
    monkeypatch.delenv(images_module.CELEBA_NPZ_ENV, raising=False)
    with pytest.raises(ValueError, match=images_module.CELEBA_NPZ_ENV):
        data.load_celeba_subset()
    path = tmp_path / "small.npz"
    np.savez(path, x=np.zeros((2, 64, 64, 3), np.uint8))
    monkeypatch.setenv(images_module.CELEBA_NPZ_ENV, os.fspath(path))
    assert data.load_celeba_subset().shape == (2, 64, 64, 3)
    np.savez(path, x=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="64, 64, 3"):
        data.load_celeba_subset(path)
    with pytest.raises(FileNotFoundError):
        data.load_celeba_subset(tmp_path / "absent.npz")


@pytest.mark.skipif(not SHARED_FACES.exists(), reason="shared/data/celeba64_subset.npz is not present")
def test_real_faces_pipeline():
    faces = data.load_celeba_subset(SHARED_FACES)
    assert faces.shape == (2500, 64, 64, 3) and faces.dtype == np.uint8
    ordered = data.image_dataset(npz=os.fspath(SHARED_FACES), batch_size=16, augment=None, shuffle=False)
    np.testing.assert_allclose(to_numpy(next(iter(ordered))), scaled(faces[:16]), atol=1e-6)
    batch = to_numpy(next(iter(data.image_dataset(npz=os.fspath(SHARED_FACES), batch_size=64, seed=0))))
    assert batch.shape == (64, 64, 64, 3) and batch.dtype == np.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0 and batch.std() > 0.2


# === image folders ===

def _encoded(array, image_format):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture
def image_folder(tmp_path):
    """6 good images (png, jpeg, gif, bmp, grey png, nested), 1 garbage .jpg, 1 truncated .jpg, 1 .txt."""
    red = np.zeros((10, 14, 3), np.uint8)
    red[..., 0] = 255
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    files = {
        "red.png": _encoded(red, "PNG"),
        "photo.JPG": _encoded(np.full((20, 16, 3), 90, np.uint8), "JPEG"),
        "anim.gif": _encoded(np.full((8, 8, 3), 30, np.uint8), "GIF"),
        "bitmap.bmp": _encoded(np.full((8, 8, 3), 60, np.uint8), "BMP"),
        "nested/grey.png": _encoded(np.full((9, 9), 128, np.uint8), "PNG"),
        "nested/deeper/other.jpeg": _encoded(np.full((12, 12, 3), 10, np.uint8), "JPEG"),
        "garbage.jpg": b"this is not an image at all",
        "nested/truncated.jpg": _encoded(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8),
                                         "JPEG")[:300],
        "notes.txt": b"not an image and not an image name",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


def test_scan_separates_bad_files_and_ignores_other_extensions(image_folder):
    good, bad = data.scan_image_folder(image_folder)
    assert len(good) == 7 and [os.path.basename(p) for p in bad] == ["garbage.jpg"]
    good, bad = data.scan_image_folder(image_folder, verify="decode")
    assert len(good) == 6 and sorted(os.path.basename(p) for p in bad) == ["garbage.jpg", "truncated.jpg"]
    assert not any(p.endswith(".txt") for p in good + bad)
    with pytest.raises(ValueError, match="verify"):
        data.scan_image_folder(image_folder, verify="maybe")


def test_folder_pipeline_skips_and_reports_corrupt_files(image_folder, caplog):
    with caplog.at_level(logging.WARNING, logger=images_module.__name__):
        dataset = data.image_folder_dataset(image_folder, image_size=8, batch_size=1, augment=None,
                                            shuffle=False, drop_remainder=False)
    assert "Skipping 1 unreadable or corrupt image file(s) of 8" in caplog.text
    assert "garbage.jpg" in caplog.text
    batches = [to_numpy(batch) for batch in dataset]
    assert len(batches) == 6  # the truncated JPEG passes the header check, fails to decode, is dropped
    assert all(b.shape == (1, 8, 8, 3) and b.min() >= -1.0 and b.max() <= 1.0 for b in batches)
    paths = data.scan_image_folder(image_folder)[0]
    red = batches[[os.path.basename(p) for p in paths if "truncated" not in p].index("red.png")][0]
    np.testing.assert_allclose(red[..., 0], 1.0, atol=1e-6)  # lossless PNG: exact colour
    np.testing.assert_allclose(red[..., 1:], -1.0, atol=1e-6)


def test_folder_pipeline_errors(tmp_path):
    with pytest.raises(ValueError, match="No usable image files"):
        data.image_dataset(image_dir=os.fspath(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="1 were corrupt"):
        data.image_folder_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        data.image_folder_dataset(tmp_path / "absent")


def test_folder_pipeline_batches_through_image_dataset(image_folder):
    dataset = data.image_dataset(image_dir=os.fspath(image_folder), image_size=16, batch_size=3, seed=0)
    batches = [to_numpy(batch) for batch in dataset]
    assert [b.shape for b in batches] == [(3, 16, 16, 3)] * 2


# === TFDS (mocked; nothing is downloaded) ===

@pytest.mark.parametrize("name", ["celeb_a", "lsun/bedroom"])
def test_tfds_pipelines_with_mock_data(name):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        dataset = data.image_dataset(tfds_name=name, batch_size=4, seed=0)
        batches = [to_numpy(batch) for batch in dataset]
    assert len(batches) == 2
    assert all(b.shape == (4, 64, 64, 3) and b.dtype == np.float32 for b in batches)
    assert all(b.min() >= -1.0 and b.max() <= 1.0 for b in batches)


def test_tfds_birds_are_cropped_to_the_stackgan_box():
    """Mocked examples with a known box (TFDS's random mock boxes can have min > max)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    image = column_stripes(40, 80)
    image[:, :, 1] = np.arange(40, dtype=np.uint8)[:, None]  # rows visible in channel 1
    # Box rows 10..30, cols 30..50: R = 15, centre (20, 40) -> rows 5..35, cols 25..55.
    bbox = np.array([10 / 40, 30 / 80, 30 / 40, 50 / 80], np.float32)

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensors({"image": image, "bbox": bbox}).repeat(2)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        dataset = data.tfds_image_dataset("caltech_birds2011", image_size=30, batch_size=2, augment=None,
                                          shuffle=False)
        batch = to_numpy(next(iter(dataset)))
    np.testing.assert_allclose(batch[0], scaled(image[5:35, 25:55]), atol=1e-6)
    defaults = images_module.TFDS_IMAGE_DATASETS
    assert defaults["celeb_a"]["augment"] == "flip" and defaults["caltech_birds2011"]["augment"] == "flip"
    assert defaults["lsun/bedroom"]["augment"] == "crop_flip"


def test_tfds_missing_or_unknown_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build celeb_a"):
        data.tfds_image_dataset("celeb_a", data_dir=os.fspath(tmp_path))
    with pytest.raises(ValueError, match="name"):
        data.tfds_image_dataset("cifar10")
    with pytest.raises(ValueError, match="bbox"):
        data.tfds_image_dataset("celeb_a", crop="bbox")
