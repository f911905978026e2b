"""Atomic file writing, `.keras` model files and image grids (PNG) shared by the callbacks, the jobs,
the CLI and the tools; and `enter_phase`, the drills' test-only SIGTERM hook."""

import contextlib
import json
import os
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


def load_model(path):
    """Loads a `.keras` model saved by this library, with a clear error for a missing file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at `model`={path!r}. Pass the path of a .keras file.")
    import keras

    import keras_crvae.models  # noqa: F401  (registers the library's classes for deserialization)

    return keras.saving.load_model(path)


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
