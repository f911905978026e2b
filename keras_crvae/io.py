"""Atomic file writing and image grids (PNG) shared by the callbacks, the CLI and the tools."""

import contextlib
import json
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it is renamed onto `path` atomically.

    A crash mid-write leaves the old file (or nothing) instead of a truncated one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    os.remove(temporary)  # writers such as keras `save` create the file themselves
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(data, path):
    """Writes `data` as indented JSON to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")


def image_grid(images, columns=8, padding=2):
    """Tiles images `(N, H, W, C)` in [0, 1] (or [-1, 1] if any value is negative) into one uint8
    array `(rows*(H+p)+p, columns*(W+p)+p, C)` with `padding` pixels of white between tiles."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"`images` must have shape (N, H, W, C) with N >= 1; got {images.shape}.")
    if images.min() < 0:
        images = (images + 1.0) / 2.0
    images = np.clip(images, 0.0, 1.0)
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
