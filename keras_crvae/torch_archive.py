"""Reading PyTorch checkpoint archives with NumPy: no torch, and no code from the archive executed.

A PyTorch zip archive (`torch.save` since 1.6, and TorchScript's `torch.jit.save`) is a zip file
holding `PREFIX/data.pkl` (a pickle of the saved object) and one member `PREFIX/data/KEY` per
tensor storage (raw little-endian bytes). The pickle names the callables it needs as globals; an
ordinary `pickle.load` imports and calls whatever they name, so a hostile archive can run any code
(`os.system`). `load` unpickles with a restricted unpickler instead, which resolves only these
globals, each to a NumPy re-implementation or an inert record (never an import):

- `torch._utils._rebuild_tensor_v2` (and `_rebuild_parameter`, which wraps it): a tensor from its
  storage, offset, size and stride -> an `np.ndarray` (copied; every index bounds-checked);
- the storage classes `torch.FloatStorage`, `torch.DoubleStorage`, ..., `torch.UntypedStorage`:
  the dtype of a storage, whose bytes come from `PREFIX/data/KEY` (the pickle's persistent ids);
- `collections.OrderedDict`: a state dict, or a tensor's (empty) backward hooks;
- `torch.jit._pickle.build_intlist` (and the other `build_*list`): a list, as TorchScript
  writes them;
- classes of the `__torch__` namespace (TorchScript's modules, e.g. `__torch__.inceptionv3.
  Conv2dLayer`): an inert `ScriptObject` record of the attributes the archive stores. Their code
  (`PREFIX/code/`) is never read.

Any other global refuses the archive with `UnsafeArchiveError` naming it. `state_dict` flattens
what `load` returns into `{"a.b.weight": array}`, named as `torch`'s `state_dict()` names them.

>>> from keras_crvae import torch_archive
>>> arrays = torch_archive.state_dict(torch_archive.load("default_1.pt"))  # doctest: +SKIP
>>> arrays["net.layers.0.weight"].shape                                    # doctest: +SKIP
(32, 3, 3, 3)

NumPy and the standard library only: the `crvae` command reads archives before TensorFlow loads.
Reference: the format is `torch.serialization._save` / `_load` and `torch.jit._pickle`.
"""

import collections
import io
import os
import pickle
import zipfile

import numpy as np


class UnsafeArchiveError(ValueError):
    """An archive whose pickle asks for something other than tensors, storages and plain data."""


# Storage class -> dtype of its elements (torch's legacy typed storages, as archives name them).
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


class _StorageType:
    """What the global `torch.XStorage` resolves to: the storage's element dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class _BFloat16Storage:
    """`torch.BFloat16Storage`: NumPy has no bfloat16; its values are widened to float32."""

    name, dtype = "BFloat16Storage", np.dtype(np.uint16)


class ScriptObject:
    """An inert record of a TorchScript object (a `__torch__.*` class instance) in an archive.

    Attributes:
        torch_class: str, the class's qualified name in the archive, e.g.
            `"__torch__.inceptionv3.Conv2dLayer"`.
        attributes: dict, the state the archive stores (submodules as `ScriptObject`s, tensors
            as `np.ndarray`s, flags and numbers as Python values).
    """

    torch_class = "__torch__"

    def __new__(cls, *args):
        if args:
            raise UnsafeArchiveError(f"{cls.torch_class} is built with arguments; a TorchScript "
                                     "object's state comes from its attributes only")
        record = super().__new__(cls)
        record.attributes = {}
        return record

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UnsafeArchiveError(f"{self.torch_class}: expected a dict of attributes, got "
                                     f"{type(state).__name__}")
        self.attributes = dict(state)

    def __repr__(self):
        return f"ScriptObject({self.torch_class}, {len(self.attributes)} attributes)"


def _script_class(module, name):
    """An inert `ScriptObject` subclass for the TorchScript class `module.name`."""
    return type(name, (ScriptObject,), {"torch_class": f"{module}.{name}"})


class _Storage:
    """A storage read from the archive: a flat array of its elements."""

    def __init__(self, values, key):
        self.values, self.key = values, key


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """`torch._utils._rebuild_tensor_v2` in NumPy: the strided view of `storage` that a tensor
    is, copied into an `np.ndarray` of shape `size`, after checking that every element it reads
    lies inside the storage."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _Storage):
        raise UnsafeArchiveError(f"a tensor's storage is a {type(storage).__name__}; expected a "
                                 "storage of the archive")
    size, stride = tuple(size), tuple(stride)
    integers = (storage_offset,) + size + stride
    if not all(type(value) is int and value >= 0 for value in integers) or len(size) != len(stride):
        raise UnsafeArchiveError(f"tensor of storage {storage.key}: bad offset {storage_offset!r}, "
                                 f"size {size!r} or stride {stride!r}")
    values = storage.values
    count = int(np.prod(size, dtype=np.int64)) if size else 1
    if count:
        last = storage_offset + sum((length - 1) * step for length, step in zip(size, stride))
        if last >= values.shape[0]:
            raise UnsafeArchiveError(f"tensor of storage {storage.key} reads element {last} of a "
                                     f"storage of {values.shape[0]}")
    else:
        return np.zeros(size, values.dtype)
    view = np.lib.stride_tricks.as_strided(
        values[storage_offset:], shape=size,
        strides=tuple(step * values.dtype.itemsize for step in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    """`torch._utils._rebuild_parameter`: a parameter is its tensor."""
    del requires_grad, backward_hooks, state
    if not isinstance(data, np.ndarray):
        raise UnsafeArchiveError(f"a parameter of a {type(data).__name__}; expected a tensor")
    return data


def _build_list(values):
    """`torch.jit._pickle.build_intlist` and the like: the list itself."""
    if not isinstance(values, list):
        raise UnsafeArchiveError(f"a TorchScript list of a {type(values).__name__}")
    return values


def _ordered_dict(*args):
    """`collections.OrderedDict`, accepting only what archives pass: nothing, or pairs."""
    if args and not (len(args) == 1 and isinstance(args[0], (list, tuple))):
        raise UnsafeArchiveError("collections.OrderedDict called with unexpected arguments")
    return collections.OrderedDict(*args)


ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("torch", "BFloat16Storage"): _BFloat16Storage,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `ALLOWED_GLOBALS` and `__torch__` classes; reads storages from the zip."""

    def __init__(self, data, archive, prefix, byteorder):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if (module == "__torch__" or module.startswith("__torch__.")) and name.isidentifier():
            return _script_class(module, name)
        raise UnsafeArchiveError(
            f"the archive asks for the global {module}.{name}; only torch's tensor and storage "
            "rebuilders, collections.OrderedDict and TorchScript (__torch__) records are allowed, "
            "so it is not read (it could run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeArchiveError(f"unexpected persistent id {str(pid)[:80]}")
        _, storage_type, key, _, numel = pid
        if not (isinstance(storage_type, _StorageType) or storage_type is _BFloat16Storage):
            raise UnsafeArchiveError(f"storage {key!r} of type {storage_type!r}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise UnsafeArchiveError(f"bad storage id {str(pid)[:80]}")
        if key not in self._storages:
            self._storages[key] = _Storage(self._read_storage(storage_type, key, numel), key)
        return self._storages[key]

    def _read_storage(self, storage_type, key, numel):
        """The elements of storage `key` (`numel` of them) as a flat NumPy array."""
        member = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(member)
        except KeyError:
            raise UnsafeArchiveError(f"storage {key!r} has no member {member!r}") from None
        dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
        if len(raw) < numel * dtype.itemsize and storage_type.name != "UntypedStorage":
            raise UnsafeArchiveError(f"storage {key!r}: {len(raw)} bytes for {numel} elements of "
                                     f"{dtype}")
        values = np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)
        values = values.astype(dtype.newbyteorder("="))
        if storage_type is _BFloat16Storage:
            values = (values.astype(np.uint32) << 16).view(np.float32)
        return values


def _pickle_member(names):
    """The archive's `PREFIX/data.pkl` and its PREFIX (e.g. "archive/"), or an error."""
    found = [name for name in names if name.endswith("data.pkl") and name.count("/") == 1]
    if len(found) != 1:
        raise ValueError("not a PyTorch zip archive: expected one PREFIX/data.pkl member, found "
                         f"{len(found)}")
    return found[0], found[0][:-len("data.pkl")]


def load(file):
    """The object a PyTorch zip archive holds, with tensors as NumPy arrays, executing no code.

    Args:
        file: a path, or a binary file object (e.g. `io.BytesIO` of an archive inside a wheel).

    Returns:
        The unpickled object: for `torch.save(state_dict)` an `OrderedDict` of `np.ndarray`s; for
        a TorchScript archive the root `ScriptObject` (see the module docstring).

    Raises:
        UnsafeArchiveError (a `ValueError`): the pickle asks for a global outside the allowed
            ones, or a tensor reads outside its storage.
        ValueError: not a zip archive, or not PyTorch's zip format (e.g. torch's legacy
            non-zip format, written with `_use_new_zipfile_serialization=False`).
    """
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else str(
        getattr(file, "name", "the archive"))
    if isinstance(file, (str, os.PathLike)) and not zipfile.is_zipfile(file):
        raise ValueError(f"{name!r} is not a PyTorch zip archive (torch.save writes "
                         "zip archives since torch 1.6)")
    try:
        with zipfile.ZipFile(file) as archive:
            member, prefix = _pickle_member(archive.namelist())
            byteorder = "little"
            if f"{prefix}byteorder" in archive.namelist():
                byteorder = archive.read(f"{prefix}byteorder").decode().strip()
                if byteorder not in ("little", "big"):
                    raise UnsafeArchiveError(f"byteorder {byteorder[:20]!r}")
            unpickler = _RestrictedUnpickler(archive.read(member), archive, prefix, byteorder)
            return unpickler.load()
    except zipfile.BadZipFile as error:
        raise ValueError(f"{name!r} is a damaged zip archive ({error})") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError) as error:
        if isinstance(error, UnsafeArchiveError):
            raise
        raise UnsafeArchiveError(f"{name!r}: its pickle is not a PyTorch checkpoint "
                                 f"({type(error).__name__}: {str(error)[:120]})") from None


def state_dict(loaded, prefix=""):
    """The tensors of what `load` returned, as `{name: np.ndarray}` named like `state_dict()`.

    A mapping (a saved state dict, possibly nested) gives its keys joined with "."; a
    `ScriptObject` (a TorchScript module) gives its tensor attributes and, recursively, those of
    its submodules (`net.layers.0.weight`). Values that are neither tensors nor containers of
    tensors (flags, numbers) are left out.
    """
    if isinstance(loaded, ScriptObject):
        loaded = loaded.attributes
    if isinstance(loaded, np.ndarray):
        return {prefix[:-1]: loaded}
    tensors = {}
    if isinstance(loaded, dict):
        for key, value in loaded.items():
            if isinstance(value, (np.ndarray, dict, ScriptObject)):
                tensors.update(state_dict(value, f"{prefix}{key}."))
    return tensors
