"""The restricted, torch-free reader of legacy ``torch.save`` state dicts."""

import collections
import hashlib
import os
import pickle
import struct
import sys
import types
from unittest import mock

import numpy as np
import pytest

from gradcam.models import efficientnet_lite
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
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (os|posix|nt)\.system") as info:
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
