"""Checks the commands share, run before any work and before TensorFlow loads.

Paths, data files and `.keras` files are checked here with the standard library and NumPy; each
failed check raises a `UsageError` naming the flag, the value and what is expected.
"""

import glob
import json
import os
import zipfile

import numpy as np

from keras_crvae.cli.flags import FLAGS, UsageError, flag_text, require
from keras_crvae.io import (KERAS_MODEL_FILE, NPZ_FORM_CONFIG, output_dir_problem,
                            output_file_problem, read_npz_array, read_npz_form_spec, split_npz_spec)

# Model classes (config.json's class_name) with a generator only: no encoder, no likelihood.
GENERATOR_ONLY_CLASSES = ("GAN", "InfoGAN")


def check_output_dir(name):
    """A UsageError unless the folder --name names can be written (`io.output_dir_problem`)."""
    problem = output_dir_problem(FLAGS[name].value)
    if problem:
        raise UsageError(f"{flag_text(name)}: {problem}")


def check_output_file(path, name, suffixes):
    """A UsageError unless `path` (of --name) can be written with one of `suffixes`."""
    problem = output_file_problem(path, suffixes)
    if problem:
        raise UsageError(f"{flag_text(name, path)}: {problem}")


def read_npz(spec, name, default_key=None, preferred_keys=()):
    """The array a `PATH.npz[:KEY]` flag names, or a UsageError naming the flag."""
    path, key = split_npz_spec(spec, default_key)
    try:
        return read_npz_array(path, key, preferred_keys)[0]
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"{flag_text(name, spec)}: {error}") from None


def check_image_array(images, name, spec, image_shape):
    """The shape, dtype and value rules of `data.to_unit_images` (grey) or colour images, in NumPy."""
    shape = tuple(images.shape)
    expected = tuple(image_shape)
    grey = expected[-1] == 1
    if grey:
        fits = shape[1:] in (expected, expected[:-1])
        wanted = f"(N, {expected[0]}, {expected[1]}) or (N, {', '.join(map(str, expected))})"
    else:
        fits = len(shape) == 4 and shape[-1] in (1, 3) and (
            image_shape is None or shape[1:3] == expected[:2] or expected[0] is None)
        wanted = f"(N, {expected[0]}, {expected[1]}, 3)" if expected[0] else "(N, H, W, 3)"
    if not fits:
        raise UsageError(f"{flag_text(name, spec)}: images of shape {shape}; expected {wanted}")
    if shape[0] == 0:
        raise UsageError(f"{flag_text(name, spec)}: holds 0 images")
    if images.dtype == np.bool_:
        return
    low, high = images.min(), images.max()
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise UsageError(f"{flag_text(name, spec)}: {images.dtype} values in [{low}, {high}]; "
                             "expected grey levels 0..255 or floats in [0, 1]")
    elif not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        raise UsageError(f"{flag_text(name, spec)}: {images.dtype} values in [{low}, {high}]; "
                         "expected floats in [0, 1] or uint8 grey levels 0..255")


def colour_images(name, spec):
    """The colour images `(N, H, W, 1 or 3)` that --name=`spec` (`PATH.npz[:KEY]`, key 'x' by
    default) holds, checked as `check_image_array` checks them."""
    images = read_npz(spec, name, default_key="x")
    if images.ndim == 3:
        images = images[..., None]
    check_image_array(images, name, spec, (None, None, 3))
    return images


def mnist_images(name, default, image_shape=(28, 28, 1)):
    """Checks and loads an MNIST-style data flag: None (embedded, loaded later), 'embedded',
    'embedded:test', 'tfds:NAME' (checked later) or an .npz array (loaded now)."""
    spec = FLAGS[name].value or default
    if spec in ("embedded", "embedded:train", "embedded:test"):
        require(tuple(image_shape) == (28, 28, 1), name, f"images of shape {tuple(image_shape)} "
                "(the embedded subset is 28x28 MNIST)", spec)
        return spec, None
    if spec.startswith("tfds:"):
        require(spec in ("tfds:mnist", "tfds:binarized_mnist"), name,
                "tfds:mnist or tfds:binarized_mnist", spec)
        require(FLAGS.data_dir is None or os.path.isdir(os.path.expanduser(FLAGS.data_dir)),
                "data_dir", "an existing folder")
        check_tfds_prepared(name, spec, spec.split(":", 1)[1])
        return spec, None
    images = read_npz(spec, name, preferred_keys=("x_train", "x"))
    check_image_array(images, name, spec, image_shape)
    return spec, images


def check_tfds_prepared(name, spec, dataset):
    """A UsageError unless TFDS `dataset` is prepared in --data_dir (default: $TFDS_DATA_DIR or
    ~/tensorflow_datasets), found by its `dataset_info.json`, before TensorFlow (and TFDS, which
    logs a warning first) load. Nothing is ever downloaded."""
    root = FLAGS.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    if "://" in root:  # a remote store (gs://): TFDS itself checks it
        return
    root = os.path.expanduser(root)
    pattern = os.path.join(glob.escape(root), glob.escape(dataset.split("/")[0]), "**",
                           "dataset_info.json")
    if not glob.glob(pattern, recursive=True):
        raise UsageError(f"{flag_text(name, spec)}: not prepared in {root}; expected a TFDS "
                         f"dataset prepared once with `tfds build {dataset} --data_dir={root}` "
                         "(nothing is downloaded here), or pass --data_dir")


def check_model_path():
    """--model is a readable .keras file, a folder holding one (`model.keras`), or a model in the
    npz form (`keras_crvae.io.save_npz_form`: a folder holding `model.json` and `weights.npz`, or its
    `model.json`); returns the model's class name from its config, before TensorFlow loads."""
    if not FLAGS.model:
        raise UsageError("--model is required: the path of a .keras file written by `crvae train`")
    path = FLAGS.model
    if not os.path.exists(path):
        raise UsageError(f"{flag_text('model')}: no such file")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, KERAS_MODEL_FILE)):
        return _keras_file_class(os.path.join(path, KERAS_MODEL_FILE))
    if os.path.isdir(path) or os.path.basename(path) == NPZ_FORM_CONFIG:
        return _npz_form_class(path if os.path.isdir(path) else os.path.dirname(path))
    return _keras_file_class(path)


def _npz_form_class(folder):
    """The class name of the npz-form model in `folder` (`check_model_path`)."""
    if not os.path.isfile(os.path.join(folder, NPZ_FORM_CONFIG)):
        raise UsageError(f"{flag_text('model')}: is a folder without {KERAS_MODEL_FILE} or "
                         f"{NPZ_FORM_CONFIG}; expected a .keras file (e.g. "
                         f"{os.path.join(folder, KERAS_MODEL_FILE)}) or a saved model's folder")
    try:
        spec = read_npz_form_spec(folder)
        weights = os.path.join(folder, spec["weights_file"])
        class_name = spec["config"]["class_name"]
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise UsageError(f"{flag_text('model')}: {NPZ_FORM_CONFIG} is not a readable npz-form "
                         f"model ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
                         ) from None
    if not os.path.isfile(weights):
        raise UsageError(f"{flag_text('model')}: no {os.path.basename(weights)} beside "
                         f"{NPZ_FORM_CONFIG}; expected the weights file it was written with")
    return class_name


def _keras_file_class(path):
    """The class name in the `.keras` file `path`'s config.json (`check_model_path`)."""
    damaged = f"{flag_text('model')}: not a readable .keras file (damaged or truncated?)"
    if not zipfile.is_zipfile(path):
        raise UsageError(damaged)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise UsageError(damaged) from None
    if bad is not None:
        raise UsageError(f"{damaged[:-1]}: {bad} fails its checksum)")
    if "config.json" not in names:
        raise UsageError(f"{flag_text('model')}: a zip file without config.json; expected a "
                         ".keras model")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (ValueError, OSError, zipfile.BadZipFile):
        raise UsageError(damaged) from None
    return config.get("class_name") if isinstance(config, dict) else None

