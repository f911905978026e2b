"""Atomic file writing, model files and image grids (PNG) shared by the callbacks, the jobs, the CLI
and the tools; and `enter_phase`, the drills' test-only SIGTERM hook.

Model files come in two forms, both loaded by `load_model`:

- a `.keras` file (Keras' own archive: config and weights in one zip), written by `save_model`;
- the **npz form**, a folder holding `model.json` (the Keras config, the variables' paths and shapes
  and the weights file's SHA-256) and `weights.npz` (`save_weights_npz`: the variables' values in
  `model.weights` order, float32 or float16), written by `save_npz_form`. A long run's committed
  weights (`final_weights.npz`) are that npz already, so a model shipped in this form holds the same
  bytes, which git stores once (issue 25's size cap: a Table 1 row's weights are ~30 MB).
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile

import numpy as np

# Test-only, not a flag: `CRVAE_TEST_SIGTERM_AT=PHASE` makes the process send itself SIGTERM as it
# enters PHASE, so that the drills hit a phase reliably instead of racing a timer;
# `PHASE:KILL` sends SIGKILL instead (a crash: nothing runs after it).
SIGTERM_AT_VARIABLE = "CRVAE_TEST_SIGTERM_AT"
# training, saving, evaluation: `jobs.base.TrainingJob.run`; export: `export.export_saved_model`.
PHASES = ("training", "saving", "evaluation", "export")
# Model files (module docstring).
KERAS_MODEL_FILE = "model.keras"
NPZ_FORM_CONFIG, NPZ_FORM_WEIGHTS = "model.json", "weights.npz"
NPZ_FORM_FORMAT = "keras_crvae.npz_form.v1"
WEIGHTS_NPZ_DTYPES = ("float32", "float16")


def enter_phase(phase):
    """Marks the start of `phase` (one of `PHASES`): sends this process SIGTERM (SIGKILL) when the
    test-only variable `CRVAE_TEST_SIGTERM_AT` is `phase` (`phase:KILL`); does nothing otherwise
    (the only cost of the hook in normal use is one environment lookup per phase)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
    requested = os.environ.get(SIGTERM_AT_VARIABLE)
    if requested == phase:
        os.kill(os.getpid(), signal.SIGTERM)
    elif requested == f"{phase}:KILL":
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it is renamed onto `path` atomically.

    A crash mid-write leaves the old file (or nothing) instead of a truncated one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # The whole compound suffix (".weights.h5", not ".h5"): Keras checks it on the file it writes.
    name = os.path.basename(path).lstrip(".")
    suffix = name[name.index("."):] if "." in name else ""
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    os.remove(temporary)  # writers such as keras `save` create the file themselves
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        if error.errno is not None and error.filename in (None, temporary):
            # Name the file the caller asked for (a write error names no file, or the temporary).
            raise OSError(error.errno, error.strerror, path) from error
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(data, path):
    """Writes `data` as indented JSON to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")


def save_model(model, path):
    """Saves `model` to a `.keras` file atomically (a crash mid-write keeps the previous file)."""
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"`path` must end in '.keras', got {path!r}.")
    with atomic_path(path) as temporary:
        model.save(temporary)
    return path


def load_model(path, compile=True):
    """Loads a model saved by this library: a `.keras` file, or a folder (or its `model.json`) in the
    npz form (`save_npz_form`); a folder holding `model.keras` loads that file.

    Args:
        path: str or path.
        compile: bool. For a `.keras` file, whether to restore the compilation it was saved with
            (the npz form stores none: its models load uncompiled).

    Raises:
        FileNotFoundError: nothing at `path`, or a folder with neither form.
        ValueError: an npz form whose files do not match each other (`load_npz_form`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at `model`={path!r}. Pass the path of a .keras file or "
                                f"of a folder holding {NPZ_FORM_CONFIG} and {NPZ_FORM_WEIGHTS}.")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, KERAS_MODEL_FILE)):
        path = os.path.join(path, KERAS_MODEL_FILE)
    elif os.path.isdir(path) or os.path.basename(path) == NPZ_FORM_CONFIG:
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        if not os.path.isfile(os.path.join(folder, NPZ_FORM_CONFIG)):
            raise FileNotFoundError(f"No model in the folder `model`={path!r}: it holds neither "
                                    f"{KERAS_MODEL_FILE} nor {NPZ_FORM_CONFIG}.")
        return load_npz_form(folder)
    import keras

    import keras_crvae.models  # noqa: F401  (registers the library's classes for deserialization)

    return keras.saving.load_model(path, compile=compile)


# --- The weights-only npz and the npz form -----------------------------------------------------


def float16_if_representable(array):
    """`array` as float16 when it is floating and every value is finite with a magnitude below
    65504 (float16's largest); otherwise `array` unchanged (integers, non-finite or huge values)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return array
    if array.size and not np.all(np.abs(array) < np.finfo(np.float16).max):
        return array
    return array.astype(np.float16)


def save_npy(array, path):
    """Saves one array to a `.npy` file at `path` atomically (a crash mid-write keeps the previous
    file); returns `path`."""
    with atomic_path(path) as temporary:
        np.save(temporary, np.asarray(array))
    return path


def save_weights_npz(model, path, dtype="float32"):
    """`model.get_weights()` (the model's variables, without the optimizer's) to a compressed npz
    (`arr_0`, `arr_1`, ... in `model.weights` order).

    Args:
        model: a built Keras model.
        path: str or path.
        dtype: "float32" (arrays as they are) or "float16": each floating array is stored in 16
            bits where float16 holds its values (`float16_if_representable`); the rest stay as
            they are. `load_weights_npz` widens them again.
    """
    if dtype not in WEIGHTS_NPZ_DTYPES:
        raise ValueError(f"`dtype` must be one of {WEIGHTS_NPZ_DTYPES}, got {dtype!r}.")
    arrays = model.get_weights()
    if dtype == "float16":
        arrays = [float16_if_representable(array) for array in arrays]
    np.savez_compressed(path, *arrays)


def read_weights_npz(path):
    """The arrays of a `save_weights_npz` file, in order (list of numpy arrays)."""
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def load_weights_npz(model, path):
    """The inverse of `save_weights_npz`, into a built `model` of the same architecture (16-bit
    arrays are widened to the variables' dtypes)."""
    model.set_weights([np.asarray(array, dtype=variable.dtype) if np.issubdtype(
        array.dtype, np.floating) else array
        for array, variable in zip(read_weights_npz(path), model.weights)])


def file_sha256(path):
    """SHA-256 (hex) of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npz_form(model, folder, weights=None, dtype="float32"):
    """Writes `model` in the npz form: `folder/model.json` and `folder/weights.npz` (module
    docstring), each atomically.

    Args:
        model: a built Keras model whose class Keras can serialize (`get_config`).
        folder: str or path; created if missing.
        weights: None (write `model`'s weights with `save_weights_npz(dtype=dtype)`) or the path of
            an existing `save_weights_npz` file holding exactly `model`'s weights (e.g. a run's
            `final_weights.npz`), copied byte for byte so that git stores one blob for both. Its
            arrays must have the variables' shapes and, widened, their values: checked here.
        dtype: "float32" or "float16", with `weights=None`.

    Returns:
        The path of `model.json`.
    """
    import keras

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    weights_path = os.path.join(folder, NPZ_FORM_WEIGHTS)
    with atomic_path(weights_path) as temporary:
        if weights is None:
            save_weights_npz(model, temporary, dtype=dtype)
        else:
            stored = read_weights_npz(weights)
            values = model.get_weights()
            if len(stored) != len(values) or any(
                    a.shape != v.shape or not np.array_equal(a.astype(v.dtype), v)
                    for a, v in zip(stored, values)):
                raise ValueError(f"`weights`={os.fspath(weights)!r} does not hold the model's "
                                 "weights (other shapes or values).")
            shutil.copyfile(weights, temporary)
    spec = {"format": NPZ_FORM_FORMAT, "keras_version": keras.__version__,
            "weights_file": NPZ_FORM_WEIGHTS, "weights_sha256": file_sha256(weights_path),
            "variables": [{"path": variable.path, "shape": list(variable.shape),
                           "dtype": str(variable.dtype)} for variable in model.weights],
            "config": keras.saving.serialize_keras_object(model)}
    config_path = os.path.join(folder, NPZ_FORM_CONFIG)
    write_json(spec, config_path)
    return config_path


def read_npz_form_spec(folder):
    """`folder/model.json` of an npz form (dict); ValueError for another file."""
    with open(os.path.join(folder, NPZ_FORM_CONFIG)) as handle:
        spec = json.load(handle)
    if not isinstance(spec, dict) or spec.get("format") != NPZ_FORM_FORMAT:
        raise ValueError(f"{os.path.join(folder, NPZ_FORM_CONFIG)} is not a keras_crvae npz-form "
                         f"model file (no \"format\": \"{NPZ_FORM_FORMAT}\").")
    return spec


def load_npz_form(folder):
    """Loads a model written by `save_npz_form` (uncompiled, its variables in their dtypes).

    Raises:
        ValueError: `weights.npz` is not the file `model.json` was written with (SHA-256), or the
            rebuilt model's variables differ from the recorded ones (paths, shapes): the weights
            are never loaded into the wrong variables.
    """
    import keras

    import keras_crvae.models  # noqa: F401  (registers the library's classes for deserialization)

    folder = os.fspath(folder)
    spec = read_npz_form_spec(folder)
    weights_path = os.path.join(folder, spec["weights_file"])
    if file_sha256(weights_path) != spec["weights_sha256"]:
        raise ValueError(f"{weights_path} is not the weights file {NPZ_FORM_CONFIG} was written "
                         "with (another SHA-256).")
    model = keras.saving.deserialize_keras_object(spec["config"])
    found = [(variable.path, list(variable.shape)) for variable in model.weights]
    recorded = [(variable["path"], variable["shape"]) for variable in spec["variables"]]
    if found != recorded:
        mismatch = next((pair for pair in zip(found, recorded) if pair[0] != pair[1]),
                        (len(found), len(recorded)))
        raise ValueError(f"{os.path.join(folder, NPZ_FORM_CONFIG)}: the rebuilt model's variables "
                         f"differ from the recorded ones (first difference: {mismatch}).")
    load_weights_npz(model, weights_path)
    return model


def image_grid(images, columns=8, padding=2):
    """Tiles images `(N, H, W, C)` in [0, 1] (or [-1, 1] if any value is negative) into one uint8
    array `(rows*(H+p)+p, columns*(W+p)+p, C)` with `padding` pixels of white between tiles."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"`images` must have shape (N, H, W, C) with N >= 1; got {images.shape}.")
    images = _to_unit_range(images)
    count, height, width, channels = images.shape
    columns = max(1, min(int(columns), count))
    rows = -(-count // columns)
    grid = np.ones((rows * (height + padding) + padding, columns * (width + padding) + padding,
                    channels), dtype=np.float32)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return (grid * 255.0 + 0.5).astype(np.uint8)


def save_image_grid(images, path, columns=8, scale=2):
    """Saves `image_grid(images, columns)` as a PNG at `path` (atomically), upscaled `scale` times."""
    from PIL import Image

    grid = image_grid(images, columns)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG")
    return path


def to_uint8_images(images):
    """Images `(N, H, W, C)` in [0, 1] (or [-1, 1] if any value is negative) -> uint8 0..255, the
    mapping `image_grid` draws with (the format `crvae sample --output=PATH.npz` writes)."""
    return (_to_unit_range(images) * 255.0 + 0.5).astype(np.uint8)


def _to_unit_range(images):
    """float32 images in [0, 1]: [-1, 1] images (any value negative) are mapped, then clipped."""
    images = np.asarray(images, dtype=np.float32)
    if images.size and images.min() < 0:
        images = (images + 1.0) / 2.0
    return np.clip(images, 0.0, 1.0)


class NpzArrayWriter:
    """Writes one array of a known shape into an `.npz` archive batch by batch, in bounded memory.

    The archive is what `numpy.savez` writes (an uncompressed zip, ZIP64 where needed, holding
    `KEY.npy`), so `numpy.load(path)[key]` reads it back; but the `.npy` member is streamed: its
    header (with the final shape) first, then each batch's bytes as `write` receives them, so
    memory holds one batch, never the whole array. (Chosen over `numpy.lib.format.open_memmap`,
    whose dirty pages count in the resident set until the kernel writes them back, and which
    would need a second pass to zip the `.npy` into an `.npz`.) The file appears at `path` only
    when all `shape[0]` rows are written (temporary file + rename, `atomic_path`); an error or an
    interruption leaves no partial archive.

    >>> with NpzArrayWriter("samples.npz", "x", (10, 28, 28, 1), np.uint8) as writer:  # doctest: +SKIP
    ...     for batch in batches:          # each (B, 28, 28, 1), B rows at a time
    ...         writer.write(batch)

    Args:
        path: str, the `.npz` file.
        key: str, the array's name in the archive.
        shape: tuple, the whole array's shape `(N, ...)`; batches are `(B, *shape[1:])`.
        dtype: the array's dtype; batches are cast to it.
    """

    def __init__(self, path, key, shape, dtype):
        self.path, self.key = os.fspath(path), str(key)
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.rows_written = 0
        self._context = self._archive = self._member = None

    def __enter__(self):
        import zipfile

        self._context = atomic_path(self.path)
        temporary = self._context.__enter__()
        try:
            self._archive = zipfile.ZipFile(temporary, mode="w", compression=zipfile.ZIP_STORED,
                                            allowZip64=True)
            self._member = self._archive.open(f"{self.key}.npy", mode="w", force_zip64=True)
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": self.shape}
            np.lib.format.write_array_header_2_0(self._member, header)
        except BaseException:
            self._close(*sys.exc_info())
            raise
        return self

    def write(self, batch):
        """Appends `batch` `(B, *shape[1:])` (cast to the writer's dtype) after the rows written."""
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if batch.shape[1:] != self.shape[1:]:
            raise ValueError(f"`batch` must have shape (B, {', '.join(map(str, self.shape[1:]))}); "
                             f"got {batch.shape}.")
        if self.rows_written + len(batch) > self.shape[0]:
            raise ValueError(f"{self.rows_written + len(batch)} rows written to an array of "
                             f"{self.shape[0]}.")
        self._member.write(batch.tobytes())
        self.rows_written += len(batch)

    def __exit__(self, *error):
        if error[0] is None and self.rows_written != self.shape[0]:
            error = (ValueError, ValueError(f"{self.rows_written} of {self.shape[0]} rows "
                                            "written; the archive is not kept."), None)
            self._close(*error)
            raise error[1]
        return self._close(*error)

    def _close(self, *error):
        """Closes the member and the archive; renames the file into place only without `error`."""
        for closable in (self._member, self._archive):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # noqa: BLE001 (closing after a failed write: the first error wins)
                    if error[0] is None:
                        raise
        self._member = self._archive = None
        return self._context.__exit__(*error) if self._context is not None else False


# === Reading user files and checking output paths (NumPy only: the CLI runs these before TF) ===


class ArchiveKeyError(KeyError):
    """A key missing from an `.npz` archive (a `KeyError` whose message reads as plain text)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def split_npz_spec(spec, default_key=None):
    """`"PATH"` or `"PATH:KEY"` -> `(path, key)`; a path that exists as given is never split."""
    spec = os.fspath(spec)
    if not os.path.exists(spec) and ":" in spec:
        path, key = spec.rsplit(":", 1)
        if path and key and os.sep not in key:
            return path, key
    return spec, default_key


def read_npz_array(path, key=None, preferred_keys=()):
    """One numeric array of an `.npz` archive, with a one-line error for every way a file can be wrong.

    Never unpickles: an archive holding Python objects is refused (a `.npz` from a stranger must not
    run code on load).

    Args:
        path: str, the `.npz` file.
        key: str or None. None: the first of `preferred_keys` present, else the archive's only array.
        preferred_keys: keys tried in order when `key` is None.

    Returns:
        `(array, key)`.

    Raises:
        FileNotFoundError: no such file.
        ArchiveKeyError (a `KeyError`): no array `key`.
        ValueError: a folder, not a NumPy archive, a damaged archive, an ambiguous key, or an array
            of objects.
    """
    import zipfile

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder; expected a .npz file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a NumPy .npz archive (write one with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            if key is None:
                found = [name for name in preferred_keys if name in names]
                key = found[0] if found else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise ValueError(f"{path!r} holds the arrays {names}; name one as PATH:KEY")
            array = archive[key] if key in names else None
    except ValueError as error:
        if "pickle" in str(error).lower() or "object" in str(error).lower():
            raise ValueError(f"{path!r}:{key} holds Python objects, not numbers; save a numeric "
                             "array (e.g. uint8 images) with numpy.savez") from None
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise ValueError(f"{path!r} is a damaged .npz archive ({type(error).__name__}: "
                         f"{str(error)[:120]})") from None
    if array is None:
        raise ArchiveKeyError(f"{path!r} has no array {key!r}; it holds {names} (use PATH:KEY)")
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                      or array.dtype == np.bool_):
        raise ValueError(f"{path!r}:{key} has dtype {array.dtype}; expected numbers (e.g. uint8 "
                         "images)")
    return array, key


def output_file_problem(path, suffixes=()):
    """Why `path` cannot be written as an output file, or None if it can.

    Checked before any work runs, so that a long job never fails at its last step: not a folder, a
    parent folder that exists and is writable, and (optionally) one of `suffixes`.
    """
    path = os.fspath(path)
    if not path:
        return "expected a file path"
    if os.path.isdir(path) or path.endswith(os.sep):
        return "is a folder; expected a file path" + (f" ending in {' or '.join(suffixes)}"
                                                      if suffixes else "")
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        return f"expected a file path ending in {' or '.join(suffixes)}"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"its folder {parent!r} does not exist"
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "is not writable"
    return None


def output_dir_problem(path):
    """Why `path` cannot be used (or created) as an output folder, or None if it can."""
    path = os.fspath(path)
    if not path:
        return "expected a folder path"
    if os.path.exists(path) and not os.path.isdir(path):
        return "is a file; expected a folder (it is created if missing)"
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing!r} is a file, so the folder cannot be created"
    if not os.access(existing, os.W_OK):
        return "is not writable"
    return None
