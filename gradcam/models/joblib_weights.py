"""Read a list of numpy arrays saved by ``joblib.dump`` (LZ4-compressed), refusing anything else.

joblib files are pickles, and unpickling runs whatever callable the file names. The
``mtcnn`` wheel ships its networks' weights as such files (``mtcnn/assets/weights/*.lz4``:
an LZ4 frame around a protocol-4 pickle of a list of arrays, each array's raw bytes written
straight after the pickle opcodes that describe it). This module reads them with numpy,
:mod:`lz4.frame` and :func:`pickletools.genops`, which only decodes opcodes: nothing the
file names is imported or called.

What is accepted, everything else being refused with a ``ValueError`` that says why:

- The file: a regular file of at most 64 MiB, which decompresses to at most 256 MiB.
- The pickle: the opcodes of a list, tuples, strings, small integers, booleans, ``None``,
  the memo and framing; the globals ``joblib.numpy_pickle.NumpyArrayWrapper``,
  ``numpy.ndarray`` and ``numpy.dtype`` only, as markers; ``numpy.dtype`` called only with
  a plain numeric type code (``"f4"``, ``"i8"``...); a wrapper built only with the fields
  joblib writes (``subclass`` ``numpy.ndarray``, ``shape``, ``order``, ``dtype``,
  ``allow_mmap``, ``numpy_array_alignment_bytes``).
- The arrays: at most 32 dimensions, their bytes inside the decompressed data.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickletools
import reprlib
import stat

import numpy as np

__all__ = ["read_joblib_arrays"]

_MAX_FILE_BYTES = 64 << 20
_MAX_DATA_BYTES = 256 << 20
_MAX_DIMS = 32
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats

_describe = reprlib.Repr()  # a bounded repr of what a file holds, for messages
_describe.maxstring = _describe.maxother = 60


class _Global:
    """One of the three globals a joblib array list names; a marker, never resolved."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<global {self.name}>"


_GLOBALS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _Global("NumpyArrayWrapper"),
    ("numpy", "ndarray"): _Global("ndarray"),
    ("numpy", "dtype"): _Global("dtype"),
}
_WRAPPER, _NDARRAY, _DTYPE = _GLOBALS.values()
_CONSTANTS = {"NEWTRUE": True, "NEWFALSE": False, "NONE": None}
_WRAPPER_FIELDS = {"subclass", "shape", "order", "dtype", "allow_mmap",
                   "numpy_array_alignment_bytes"}


class _ArrayHeader:
    """A ``NumpyArrayWrapper`` under construction: the array's layout, then its bytes."""

    __slots__ = ()


def _dtype(args) -> np.dtype:
    """``numpy.dtype(code, False, True)`` for a plain numeric type code only."""
    if not (type(args) is tuple and len(args) == 3 and type(args[0]) is str
            and len(args[0]) <= 4 and args[1:] == (False, True)):
        raise ValueError(f"numpy.dtype called with {_describe.repr(args)}; expected a numeric "
                         "type code such as ('f4', False, True)")
    try:
        dtype = np.dtype(args[0])
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"unsupported array type {args[0]!r}; expected a numeric type")
    return dtype


def _with_byte_order(dtype: np.dtype, state) -> np.dtype:
    """Apply the byte order of numpy's dtype state ``(3, '<', None, ...)``."""
    if not (type(state) is tuple and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
        raise ValueError(f"unsupported dtype state {_describe.repr(state)}")
    return dtype.newbyteorder(state[1]) if state[1] in "<>" else dtype


def _read_array(stream: io.BytesIO, fields) -> np.ndarray:
    """Check a wrapper's fields, then read its array's bytes that follow in ``stream``."""
    if type(fields) is not dict or set(fields) - _WRAPPER_FIELDS or not {
        "subclass", "shape", "order", "dtype"} <= set(fields):
        raise ValueError(f"unsupported array wrapper {_describe.repr(fields)}")
    shape, order, dtype = fields["shape"], fields["order"], fields["dtype"]
    if fields["subclass"] is not _NDARRAY:
        raise ValueError(f"unsupported array class {_describe.repr(fields['subclass'])}")
    if not (type(shape) is tuple and len(shape) <= _MAX_DIMS
            and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"array shape {_describe.repr(shape)}; expected a tuple of at most "
                         f"{_MAX_DIMS} non-negative integers")
    if order not in ("C", "F") or not isinstance(dtype, np.dtype):
        raise ValueError(f"array order {_describe.repr(order)} and type "
                         f"{_describe.repr(dtype)}; expected 'C' or 'F' and a numeric type")
    if fields.get("numpy_array_alignment_bytes") is not None:
        padding = stream.read(1)
        stream.seek(int.from_bytes(padding or b"\0", "little"), io.SEEK_CUR)
    size = math.prod(shape) * dtype.itemsize
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"an array of shape {shape} and type {dtype} needs {size} bytes; "
                         f"the file holds {len(data)} more")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
    return np.array(array, dtype=dtype.newbyteorder("="), order="C")


def _unpickle_arrays(stream: io.BytesIO) -> list:
    """Run the restricted pickle machine over ``stream``; return the list it builds."""
    stack: list = []
    metastack: list = []
    memo: list = []
    while True:
        # genops decodes one opcode at a time; after a wrapper's BUILD its array's bytes
        # are read here, so decoding restarts where they end.
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BININT1", "BININT2", "BININT"):
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE"):
                stack.append({"EMPTY_LIST": list, "EMPTY_DICT": dict,
                              "EMPTY_TUPLE": tuple}[name]())
            elif name == "MEMOIZE":
                memo.append(stack[-1])
            elif name in ("BINGET", "LONG_BINGET"):
                if arg >= len(memo):
                    raise ValueError(f"memo index {arg} was never stored")
                stack.append(memo[arg])
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name == "TUPLE":
                items, stack = tuple(stack), metastack.pop()
                stack.append(items)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise ValueError(f"{name} with {len(stack)} items on the stack")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "STACK_GLOBAL":
                module, attribute = stack.pop(-2), stack.pop()
                if (module, attribute) not in _GLOBALS:
                    raise ValueError(
                        f"refusing global {_describe.repr(module)}.{_describe.repr(attribute)}: "
                        "a joblib array list names only joblib.numpy_pickle.NumpyArrayWrapper, "
                        "numpy.ndarray and numpy.dtype")
                stack.append(_GLOBALS[module, attribute])
            elif name == "NEWOBJ":
                args, cls = stack.pop(), stack.pop()
                if cls is not _WRAPPER or args != ():
                    raise ValueError(f"NEWOBJ of {_describe.repr(cls)}; expected "
                                     "NumpyArrayWrapper()")
                stack.append(_ArrayHeader())
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                if func is not _DTYPE:
                    raise ValueError(f"refusing to call {_describe.repr(func)}: only numpy.dtype")
                stack.append(_dtype(args))
            elif name == "SETITEMS":
                items, stack = stack, metastack.pop()
                if type(stack[-1]) is not dict or len(items) % 2:
                    raise ValueError("SETITEMS on something other than a dict")
                stack[-1].update(zip(items[::2], items[1::2]))
            elif name in ("APPEND", "APPENDS"):
                if name == "APPENDS":
                    items, stack = stack, metastack.pop()
                else:
                    items = [stack.pop()]
                if type(stack[-1]) is not list:
                    raise ValueError("APPENDS on something other than a list")
                stack[-1].extend(items)
            elif name == "BUILD":
                state = stack.pop()
                if isinstance(stack[-1], np.dtype):
                    stack[-1] = _with_byte_order(stack[-1], state)
                elif isinstance(stack[-1], _ArrayHeader):
                    stack[-1] = _read_array(stream, state)
                    break  # restart decoding after the array's bytes
                else:
                    raise ValueError(f"BUILD on {_describe.repr(stack[-1])}")
            elif name == "STOP":
                result = stack.pop()
                if stack or metastack or type(result) is not list or not all(
                        isinstance(a, np.ndarray) for a in result):
                    raise ValueError("the pickle does not hold a list of arrays")
                return result
            else:
                raise ValueError(f"unsupported pickle opcode {name}")
        else:
            raise ValueError("the pickle ends without STOP")


def read_joblib_arrays(path, expected_sha256=None) -> list:
    """Read the list of arrays of an LZ4-compressed ``joblib.dump`` file, without joblib.

    Args:
        path: the file, e.g. ``mtcnn/assets/weights/pnet.lz4``.
        expected_sha256: the file's expected sha256 as hex, or `None` not to check it.
            Defaults to `None`.

    Returns:
        A list of C-contiguous numpy arrays in native byte order.

    Raises:
        ValueError: the file is not a regular file, is too large, does not match
            ``expected_sha256``, is not an LZ4 frame, or holds anything but a list of
            numeric arrays (the message says what was found, and names ``path``).
        ImportError: the ``lz4`` package is not installed.
    """
    import lz4.frame

    path = os.fspath(path)

    def check(info):
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_FILE_BYTES:
            raise ValueError(f"{path} is not a regular file of at most "
                             f"{_MAX_FILE_BYTES >> 20} MiB")

    try:
        check(os.stat(path))  # before opening: a FIFO would block, a folder cannot be read
        with open(path, "rb") as file:
            check(os.fstat(file.fileno()))
            compressed = file.read(_MAX_FILE_BYTES + 1)
        if expected_sha256 is not None:
            digest = hashlib.sha256(compressed).hexdigest()
            if digest != expected_sha256:
                raise ValueError(f"{path} has sha256 {digest}; expected {expected_sha256}")
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            data = decompressor.decompress(compressed, max_length=_MAX_DATA_BYTES + 1)
        except RuntimeError as error:
            raise ValueError(f"not an LZ4 frame ({error})") from None
        if len(data) > _MAX_DATA_BYTES or not decompressor.eof:
            raise ValueError(f"decompresses to more than {_MAX_DATA_BYTES >> 20} MiB, or is "
                             "truncated")
        return _unpickle_arrays(io.BytesIO(data))
    except (ValueError, EOFError, IndexError, KeyError, TypeError) as error:
        if str(error).startswith(path):
            raise
        raise ValueError(f"{path}: {error}") from None
