"""The restricted, torch-free reader of legacy ``torch.save`` state dicts."""

import collections
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from unittest import mock

import numpy as np
import pytest

from gradcam.models import efficientnet_lite, torch_weights
from gradcam.models.torch_weights import ForbiddenGlobalError, read_torch_state_dict

LITE0 = efficientnet_lite._VARIANTS["Lite0"]
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
HEADER = b"".join(pickle.dumps(record, protocol=2)
                  for record in (0x1950A86A20F9469CFC6C, 1001, SYS_INFO))


@pytest.fixture(scope="module")
def lite0_path():
    return efficientnet_lite._state_dict_path(LITE0)


def _raw_pickle(module, name):
    """A pickle that calls ``module.name()``, written by hand: the global need not exist."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."


class _Storage:
    def __init__(self, key, values):
        self.key, self.values = key, np.ascontiguousarray(values)


class _Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, size, stride)
        self.parameter = parameter


def write_legacy_state_dict(path, state, trailing=b""):
    """Write ``state`` ({name: _Tensor}) as ``torch.save`` did before 1.6, without torch.

    Stand-ins for ``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter`` and the
    storage types live in fake ``torch`` modules only while pickling, so that the pickle
    names the same globals a real file does.
    """
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    dtype_names = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}
    storage_types = {}
    for dtype, name in dtype_names.items():
        storage_types[dtype] = type(name, (), {"__module__": "torch"})
        setattr(fake_torch, name, storage_types[dtype])

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    def _rebuild_parameter(*args):
        raise AssertionError("never called while writing")

    for function in (_rebuild_tensor_v2, _rebuild_parameter):
        function.__module__, function.__qualname__ = "torch._utils", function.__name__
        setattr(fake_utils, function.__name__, function)

    class TensorReducer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", storage_types[obj.values.dtype], obj.key, "cpu",
                        obj.values.size, None)
            return None

        def reducer_override(self, obj):
            if not isinstance(obj, _Tensor):
                return NotImplemented
            if obj.parameter:
                return (_rebuild_parameter, (_Tensor(*obj.args), True, collections.OrderedDict()))
            return (_rebuild_tensor_v2, (*obj.args, False, collections.OrderedDict()))

    storages = {}
    for tensor in state.values():
        storages.setdefault(tensor.args[0].key, tensor.args[0])
    with mock.patch.dict(sys.modules, {"torch": fake_torch, "torch._utils": fake_utils}):
        fake_torch._utils = fake_utils
        with open(path, "wb") as f:
            f.write(HEADER)
            TensorReducer(f, protocol=2).dump(collections.OrderedDict(state))
            pickle.dump(list(storages), f, protocol=2)
            for storage in storages.values():
                f.write(struct.pack("<q", storage.values.size))
                f.write(storage.values.astype(storage.values.dtype.newbyteorder("<")).tobytes())
            f.write(trailing)
    return path


def test_reads_the_lite0_wheel_exactly_as_torch_does(lite0_path):
    state = read_torch_state_dict(lite0_path, expected_sha256=LITE0.sha256)
    assert len(state) == 296
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(counters) == 49
    assert all(state[k].dtype == np.int64 and state[k].shape == () for k in counters)
    assert list(state)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    stem = state["_conv_stem.weight"]
    assert stem.dtype == np.float32 and stem.shape == (32, 3, 3, 3) and stem.flags.c_contiguous
    # Values as torch.load(..., weights_only=True) gives them (torch 2.13.0).
    assert stem.ravel()[:3].tolist() == [-1.1103360652923584, -1.3087704181671143,
                                         -0.010156914591789246]
    assert state["_fc.bias"][:3].tolist() == [0.032053910195827484, -0.01598576083779335,
                                              0.005290735047310591]
    assert state["_fc.weight"].shape == (1000, 1280)


def test_views_offsets_shared_storages_and_parameters(tmp_path):
    floats = _Storage("0", np.arange(12, dtype=np.float32))
    counter = _Storage("1", np.array([7], dtype=np.int64))
    path = write_legacy_state_dict(tmp_path / "views.pth", {
        "matrix": _Tensor(floats, 0, (3, 4), (4, 1)),
        "transposed": _Tensor(floats, 0, (4, 3), (1, 4)),
        "strided": _Tensor(floats, 5, (2,), (3,), parameter=True),
        "empty": _Tensor(floats, 0, (0, 5), (5, 1)),
        "count": _Tensor(counter, 0, (), ()),
    })
    state = read_torch_state_dict(path)
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(state["matrix"], matrix)
    np.testing.assert_array_equal(state["transposed"], matrix.T)
    assert state["transposed"].flags.c_contiguous
    np.testing.assert_array_equal(state["strided"], [5.0, 8.0])
    assert state["empty"].shape == (0, 5)
    assert state["count"].dtype == np.int64 and state["count"].shape == () and state["count"] == 7
    state["matrix"][0, 0] = 100  # each array owns its memory
    assert state["transposed"][0, 0] == 0


@pytest.mark.parametrize("module, name", [
    ("os", "system"),
    ("builtins", "eval"),
    ("torch", "load"),
    ("torch", "BFloat16Storage"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("collections", "Counter"),
])
@pytest.mark.parametrize("where", ["whole file", "state dict"])
def test_refuses_any_other_global(tmp_path, module, name, where):
    path = tmp_path / "evil.pth"
    path.write_bytes((HEADER if where == "state dict" else b"") + _raw_pickle(module, name))
    with pytest.raises(ForbiddenGlobalError, match=rf"refusing to load global {module}\.{name}"):
        read_torch_state_dict(path)


def test_refused_global_is_never_called(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "exploit.pth"
    path.write_bytes(HEADER + pickle.dumps({"weight": Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError,
                       match=r"refusing to load global (os|posix|nt)\.system") as info:
        read_torch_state_dict(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_checks_sha256_before_reading(lite0_path):
    wrong = "0" * 64
    with pytest.raises(ValueError) as info:
        read_torch_state_dict(lite0_path, expected_sha256=wrong)
    message = str(info.value)
    assert lite0_path in message and wrong in message and LITE0.sha256 in message


@pytest.mark.parametrize("keep", [0, 10, 16, 137, 5000, 18_000_000, -1])
def test_truncated_file_is_a_clear_error(tmp_path, lite0_path, keep):
    with open(lite0_path, "rb") as f:
        data = f.read()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="truncated") as info:
        read_torch_state_dict(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="sha256"):  # with the digest, caught before parsing
        read_torch_state_dict(path, expected_sha256=LITE0.sha256)


def test_corrupted_bytes_are_a_clear_error(tmp_path, lite0_path):
    with open(lite0_path, "rb") as f:
        data = bytearray(f.read())
    data[5] ^= 0xFF  # inside the magic number
    path = tmp_path / "corrupted.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupted\.pth.*bad magic number"):
        read_torch_state_dict(path)
    data[5] ^= 0xFF
    data[-1000] ^= 0x01  # a weight's bit: only the digest can tell
    path.write_bytes(bytes(data))
    assert hashlib.sha256(data).hexdigest() != LITE0.sha256
    with pytest.raises(ValueError, match=r"corrupted\.pth has sha256"):
        read_torch_state_dict(path, expected_sha256=LITE0.sha256)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "image.pth"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"Cannot read .*image\.pth as a PyTorch state dict"):
        read_torch_state_dict(path)


@pytest.mark.parametrize("tensor, trailing, message", [
    (_Tensor(_Storage("0", np.zeros(4, np.float32)), 2, (2, 2), (2, 1)), b"", "overruns"),
    (_Tensor(_Storage("0", np.zeros(4, np.float32)), 0, (2, 2), (-2, 1)), b"", "stride"),
    (_Tensor(_Storage("0", np.zeros(4, np.float32)), 0, (4,), (1,)), b"x", "after the last"),
])
def test_inconsistent_layout_is_a_clear_error(tmp_path, tensor, trailing, message):
    path = write_legacy_state_dict(tmp_path / "bad.pth", {"w": tensor}, trailing=trailing)
    with pytest.raises(ValueError, match=message):
        read_torch_state_dict(path)


# Crafted files spell out their pickles opcode by opcode (see pickletools), so that each
# test shows exactly what a hostile file holds.
def op_str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def op_int(n):
    if -2**31 <= n < 2**31:
        return b"J" + struct.pack("<i", n)  # BININT
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def op_tuple(*items):
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def op_dict(items):
    return b"}(" + b"".join(op_str(key) + value for key, value in items.items()) + b"u"


def op_global(module, name):
    return f"c{module}\n{name}\n".encode()  # GLOBAL


def op_call(function, *args):
    return function + op_tuple(*args) + b"R"  # REDUCE


NONE, FALSE, BUILD = b"N", b"\x89", b"b"
ORDERED_DICT = op_call(op_global("collections", "OrderedDict"))
REBUILD_TENSOR = op_global("torch._utils", "_rebuild_tensor_v2")
FLOAT_STORAGE = op_global("torch", "FloatStorage")


def op_storage(key, numel, storage_type=FLOAT_STORAGE):
    return op_tuple(op_str("storage"), storage_type, op_str(key), op_str("cpu"), op_int(numel),
                    NONE) + b"Q"  # BINPERSID


def op_tensor(storage, offset, size, stride, rebuild=REBUILD_TENSOR):
    return op_call(rebuild, storage, op_int(offset), op_tuple(*map(op_int, size)),
                   op_tuple(*map(op_int, stride)), FALSE, ORDERED_DICT)


def write_crafted(path, state, storages, header=HEADER, keys=None):
    """Write a legacy file whose state-dict pickle is ``state`` (opcodes, no PROTO/STOP)."""
    records = b"".join(struct.pack("<q", values.size) + values.tobytes()
                       for values in storages.values())
    path.write_bytes(header + b"\x80\x02" + state + b"." +
                     pickle.dumps(list(storages) if keys is None else keys, protocol=2) + records)
    return path


def one_tensor_file(path, tensor, values=np.arange(4, dtype="<f4"), **kwargs):
    """A state dict {"w": tensor} over the storage "0" holding ``values``."""
    return write_crafted(path, ORDERED_DICT + op_str("w") + tensor + b"s", {"0": values}, **kwargs)


_CHILD = """
import importlib.util, sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
except ImportError:
    pass
spec = importlib.util.spec_from_file_location("torch_weights", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
try:
    state = module.read_torch_state_dict(sys.argv[2])
except Exception as error:
    print(f"{type(error).__name__}: {error}")
else:
    print({name: array.tolist() for name, array in state.items()})
"""


def read_in_child(path):
    """Read ``path`` in a process of at most 1 GiB and 60 s; return what it printed.

    For files that made earlier versions of the reader hang, crash or exhaust the memory:
    there the test fails (timeout, signal, MemoryError) instead of taking pytest down.
    """
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, torch_weights.__file__, os.fspath(path)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_crafted_file_reads_as_written(tmp_path):
    path = one_tensor_file(tmp_path / "ok.pth", op_tensor(op_storage("0", 4), 1, (3,), (1,)))
    state = read_torch_state_dict(path)
    assert list(state) == ["w"] and state["w"].tolist() == [1.0, 2.0, 3.0]


# BUILD sets an object's attributes after it is made, so after its layout was checked: with
# stride -1 from offset 18 this tensor read 68 bytes of memory before the storage's 4.
BUILD_TARGETS = {
    "tensor": op_tensor(op_storage("0", 1), 0, (1,), (1,))
    + op_dict({"offset": op_int(18), "size": op_tuple(op_int(19)),
               "stride": op_tuple(op_int(-1))}) + BUILD,
    "storage": op_tensor(op_storage("0", 1) + op_dict({"numel": op_int(10**6)}) + BUILD,
                         0, (1,), (1,)),
    "storage type": op_tensor(
        op_storage("0", 1, FLOAT_STORAGE + op_dict({"dtype": op_str("float64")}) + BUILD),
        0, (1,), (1,)),
    "function": op_tensor(op_storage("0", 1), 0, (1,), (1,),
                          rebuild=REBUILD_TENSOR + op_dict({"marker": op_int(1)}) + BUILD),
}


@pytest.mark.parametrize("target", BUILD_TARGETS)
def test_build_is_refused_on_every_stand_in(tmp_path, target):
    path = one_tensor_file(tmp_path / "build.pth", BUILD_TARGETS[target],
                           values=np.ones(1, "<f4"))
    with pytest.raises(ValueError, match=r"refusing BUILD \(setting attributes\) on <"):
        read_torch_state_dict(path)
    assert vars(torch_weights._rebuild_tensor_v2) == {}


def test_build_with_a_huge_negative_stride_is_refused(tmp_path):
    # It made the unfixed reader read at 2**42 bytes before the storage: SIGSEGV.
    tensor = op_tensor(op_storage("0", 1), 0, (1,), (1,))
    build = op_dict({"size": op_tuple(op_int(2)), "stride": op_tuple(op_int(-2**40)),
                     "offset": op_int(2**40)}) + BUILD
    path = one_tensor_file(tmp_path / "segv.pth", tensor + build, values=np.ones(1, "<f4"))
    assert read_in_child(path).startswith(
        f"ValueError: Cannot read {path} as a PyTorch state dict: refusing BUILD")


def test_build_on_the_state_dict_sets_nothing(tmp_path):
    # torch stores a state dict's _metadata with BUILD; an "items" attribute once hid the
    # entries from the reader, which then returned {}.
    hide = op_dict({"_metadata": ORDERED_DICT,
                    "items": op_global("collections", "OrderedDict")}) + BUILD
    state = ORDERED_DICT + op_str("w") + op_tensor(op_storage("0", 2), 0, (2,), (1,)) + b"s"
    path = write_crafted(tmp_path / "hide.pth", state + hide, {"0": np.array([5, 6], "<f4")})
    assert {k: v.tolist() for k, v in read_torch_state_dict(path).items()} == {"w": [5.0, 6.0]}


def test_more_elements_than_the_storage_holds(tmp_path):
    # Two 35000 x 35000 tensors with stride 0 on a one-element storage made the unfixed
    # reader allocate 9.8 GB from 391 bytes; 3000 x 3000 shows it without the harm.
    path = one_tensor_file(tmp_path / "bomb.pth",
                           op_tensor(op_storage("0", 1), 0, (3000, 3000), (0, 0)),
                           values=np.ones(1, "<f4"))
    with pytest.raises(ValueError, match=r"tensor 'w' of size \(3000, 3000\) has 9000000 "
                                         r"elements, more than its storage '0' holds \(1\)"):
        read_torch_state_dict(path)


def test_tensors_together_hold_at_most_four_times_the_file(tmp_path):
    full = op_tensor(op_storage("0", 4096), 0, (4096,), (1,))
    state = ORDERED_DICT + b"".join(op_str(f"w{i}") + full + b"s" for i in range(8))
    path = write_crafted(tmp_path / "views.pth", state, {"0": np.zeros(4096, "<f4")})
    size = os.path.getsize(path)
    with pytest.raises(ValueError, match=rf"the tensors would take 131072 bytes, more than 4 "
                                         rf"times the file's {size}"):
        read_torch_state_dict(path)
    state = ORDERED_DICT + b"".join(op_str(f"w{i}") + full + b"s" for i in range(3))
    path = write_crafted(tmp_path / "tied.pth", state, {"0": np.zeros(4096, "<f4")})
    assert len(read_torch_state_dict(path)) == 3  # tied weights: three views of one storage


@pytest.mark.parametrize("offset, size, stride, message", [
    (0, "22", "21", r"size '22', stride '21' and offset 0; expected two tuples"),
    (0, (True,), (1,), r"size \(True,\), stride \(1,\)"),
    (0, (2, 2), (2,), r"size \(2, 2\), stride \(2,\)"),
    (0, (1,) * 33, (1,) * 33, r"at most 32"),
    (0, (2**63,), (1,), r"in 0 \.\. 2\*\*63 - 1"),
    (-1, (1,), (1,), r"offset -1"),
    (5, (0,), (1,), r"size \(0,\), stride \(1,\) at offset 5 overruns its storage '0' of 4"),
    (4, (), (), r"size \(\), stride \(\) at offset 4 overruns"),
])
def test_layouts_outside_the_storage_are_refused(tmp_path, offset, size, stride, message):
    storage = _Storage("0", np.arange(4, dtype=np.float32))
    path = write_legacy_state_dict(tmp_path / "bad.pth",
                                   {"w": _Tensor(storage, offset, size, stride)})
    with pytest.raises(ValueError, match=message):
        read_torch_state_dict(path)


def test_zip_checkpoints_are_named_as_such(tmp_path):
    path = tmp_path / "new_style.pth"
    with zipfile.ZipFile(path, "w") as archive:  # what torch.save writes since torch 1.6
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/version", "3\n")
    with pytest.raises(ValueError, match=r"new_style\.pth as a PyTorch state dict: zip "
                                         r"checkpoints are not supported"):
        read_torch_state_dict(path)


def test_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=rf"Cannot read {tmp_path} as a PyTorch state dict: "
                                         r"it is a folder, not a regular file\."):
        read_torch_state_dict(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "weights.pth"
    os.mkfifo(path)
    assert read_in_child(path) == (f"ValueError: Cannot read {path} as a PyTorch state dict: "
                                   "it is a FIFO, not a regular file.")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it():
    assert read_in_child("/dev/zero") == ("ValueError: Cannot read /dev/zero as a PyTorch state "
                                          "dict: it is a device, not a regular file.")


def test_a_file_over_one_gib_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.pth"
    with open(path, "wb") as f:
        f.truncate((1 << 30) + 1)  # sparse: no disk space used
    assert read_in_child(path) == (
        f"ValueError: Cannot read {path} as a PyTorch state dict: it has 1073741825 bytes, "
        "more than the 1073741824 (1 GiB) this reader accepts.")


def test_a_memo_index_costs_one_entry(tmp_path):
    # pickle's own unpickler grows its memo to the largest index a LONG_BINPUT names: these
    # 5 bytes made it ask for 32 GiB.
    state = ORDERED_DICT + b"r\xff\xff\xff\x7f" + op_str("w")
    path = write_crafted(tmp_path / "memo.pth",
                         state + op_tensor(op_storage("0", 2), 0, (2,), (1,)) + b"s",
                         {"0": np.array([1, 2], "<f4")})
    assert read_in_child(path) == "{'w': [1.0, 2.0]}"


def _sys_info(items):
    return b"\x80\x02" + op_dict(items) + b"."


@pytest.mark.parametrize("header, message", [
    # A float: one of the opcodes a state dict does not need.
    (_sys_info({"little_endian": b"\x88", "x": b"G" + struct.pack(">d", 1.5)}),
     r"pickle opcode BINFLOAT \('G'\) at byte \d+ is not allowed in a state dict"),
    (b"\x80\x02\x8b\x04\x00\x00\x00\x00\x00\x00\x00.",
     r"pickle opcode LONG4 \('\\x8b'\) at byte \d+ is not allowed"),
    (b"\x80\x04K\x01.", r"pickle protocol 4, expected 2"),
    # Integer keys: their hashes are the file's to choose, so a dict of colliding keys
    # takes quadratic time to build.
    (b"\x80\x02}" + op_str("little_endian") + b"\x88s" + op_int(2**61 - 1) + b"Ns.",
     r"a dict key 2305843009213693951 is not a string"),
    # Storages belong to the state dict alone (and globals: test_refuses_any_other_global).
    (b"\x80\x02NQ.", r"a storage outside the state dict"),
])
def test_header_opcodes_outside_a_state_dict_are_refused(tmp_path, header, message):
    path = write_crafted(tmp_path / "header.pth", ORDERED_DICT, {},
                         header=HEADER[:HEADER.index(b"\x80\x02}")] + header)
    with pytest.raises(ValueError, match=message):
        read_torch_state_dict(path)


@pytest.mark.parametrize("state, message", [
    # OrderedDict(x) copies x: a few bytes per call would hold a large object many times.
    (op_call(op_global("collections", "OrderedDict"),
             b"]" + op_tuple(op_str("w"), op_tensor(op_storage("0", 4), 0, (4,), (1,))) + b"a"),
     r"collections\.OrderedDict called with \(\[\('w', <tensor>\)\],\): a state dict calls it "
     r"with no arguments"),
    (ORDERED_DICT + op_str("w") + op_call(FLOAT_STORAGE) + b"s",
     r"refusing to call <storage type FloatStorage>: REDUCE may only call collections"),
    (op_global("collections", "OrderedDict") + b")\x81",
     r"pickle opcode NEWOBJ \('\\x81'\) at byte \d+ is not allowed"),
    (ORDERED_DICT + op_str("w") + op_tensor(op_storage("0", 4), 0, (4,), (1,)) + b"s"
     + op_str("v") + op_tensor(op_storage("0", 2), 0, (2,), (1,)) + b"s",
     r"storage '0' is declared as 4 x float32 and as 2 x float32"),
])
def test_state_dict_calls_and_storages_outside_a_state_dict_are_refused(tmp_path, state,
                                                                         message):
    path = write_crafted(tmp_path / "state.pth", state, {"0": np.arange(4, dtype="<f4")})
    with pytest.raises(ValueError, match=message):
        read_torch_state_dict(path)


@pytest.mark.parametrize("keys, message", [
    (["0", "0"], r"the storages listed, \['0', '0'\], are not once each those the tensors "
                 r"use, \['0'\]"),
    ([], r"the storages listed, \[\], are not once each"),
])
def test_storage_keys_list_each_used_storage_once(tmp_path, keys, message):
    values = np.arange(4, dtype="<f4")
    path = one_tensor_file(tmp_path / "keys.pth", op_tensor(op_storage("0", 4), 0, (4,), (1,)),
                           keys=keys)
    path.write_bytes(path.read_bytes() + (struct.pack("<q", 4) + values.tobytes()) * (
        len(keys) - 1))
    with pytest.raises(ValueError, match=message):
        read_torch_state_dict(path)


def test_bool_storage_holds_only_zeros_and_ones(tmp_path):
    bools = op_global("torch", "BoolStorage")
    tensor = op_tensor(op_storage("0", 3, bools), 0, (3,), (1,))
    path = one_tensor_file(tmp_path / "bools.pth", tensor, values=np.array([0, 1, 1], "u1"))
    assert read_torch_state_dict(path)["w"].tolist() == [False, True, True]
    path = one_tensor_file(tmp_path / "bools.pth", tensor, values=np.array([0, 1, 2], "u1"))
    with pytest.raises(ValueError, match=r"BoolStorage '0' holds a byte other than 0 and 1"):
        read_torch_state_dict(path)


def test_messages_quote_what_the_file_holds_briefly(tmp_path):
    # A list that holds one 1000-item list 1000 times is 6 kB of pickle and a 3 MB repr.
    row = b"]" + b"(" + b"K\x00" * 1000 + b"e" + b"q\x01"
    header = b"\x80\x02" + b"]" + row + b"a" + b"(" + b"h\x01" * 999 + b"e" + b"."
    path = write_crafted(tmp_path / "long.pth", ORDERED_DICT, {},
                         header=HEADER[:HEADER.index(b"\x80\x02}")] + header)
    with pytest.raises(ValueError, match=r"unsupported system info \[\[0, 0, 0, 0, 0, 0, "
                                         r"\.\.\.\], \[0, 0, 0, 0, 0, 0, \.\.\.\], ") as info:
        read_torch_state_dict(path)
    assert len(str(info.value)) < 400
