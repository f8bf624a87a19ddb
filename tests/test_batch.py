"""The streaming pipeline's parts: finding inputs, naming outputs, atomic PNG files."""

import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from gradcam.batch import (
    Input,
    atomic_file,
    encode_png,
    existing_outputs,
    find_inputs,
    overlay_base,
    overlay_name,
    save_png,
    target_label,
)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_find_inputs_walks_folders_in_order_and_names_outputs(tmp_path):
    photos = tmp_path / "photos"
    for name in ["b.jpg", "a.PNG", "notes.txt", ".hidden.jpg", "sub/c.jpeg", ".cache/d.jpg"]:
        touch(photos / name)
    inputs = find_inputs([photos])
    assert [os.path.relpath(i.path, photos) for i in inputs] == ["a.PNG", "b.jpg", os.path.join("sub", "c.jpeg")]
    assert [i.name for i in inputs] == ["a", "b", "sub/c"]


def test_find_inputs_keeps_missing_files_and_drops_repeats(tmp_path):
    image = touch(tmp_path / "x" / "cat.jpg")
    inputs = find_inputs([image, tmp_path / "x", tmp_path / "gone.jpg"])
    assert [i.name for i in inputs] == ["cat", "gone"]
    assert inputs[1].path == str(tmp_path / "gone.jpg")


def test_names_never_collide(tmp_path):
    for name in ["a/x/cat.jpg", "b/x/cat.jpg", "a/x/cat.png"]:
        touch(tmp_path / name)
    inputs = find_inputs([tmp_path / "a" / "x", tmp_path / "b" / "x"])
    assert [i.name for i in inputs] == ["a/x/cat.jpg", "a/x/cat.png", "b/x/cat"]


def test_output_folder_is_not_searched(tmp_path):
    touch(tmp_path / "cat.jpg")
    touch(tmp_path / "gradcam-out" / "cat.282-tiger_cat.png")
    assert [i.name for i in find_inputs([tmp_path], exclude=tmp_path / "gradcam-out")] == ["cat"]


def test_overlay_names():
    assert target_label(282, "tiger cat") == "282-tiger_cat"
    assert target_label(3, "jack-o'-lantern") == "3-jack-o_-lantern"
    assert target_label(7, None) == "7"
    assert overlay_name(Input("p/sub/cat.jpg", "sub/cat"), 282, "tiger cat") == "sub/cat.282-tiger_cat.png"


def test_existing_outputs_finds_run_files_and_overlays_of_any_class(tmp_path):
    inputs = [Input("in/cat.jpg", "cat"), Input("in/sub/dog.jpg", "sub/dog")]
    out = tmp_path / "out"
    assert existing_outputs(out, inputs) == []
    touch(out / "sub" / "dog.208-Labrador_retriever.png")
    touch(out / "sub" / "dogma.1.png")  # another image's overlay
    assert existing_outputs(out, inputs) == [str(out / "sub" / "dog.208-Labrador_retriever.png")]
    touch(out / "summary.json")
    assert existing_outputs(out, inputs)[0] == str(out / "summary.json")


def test_atomic_file_replaces_only_on_success(tmp_path):
    path = tmp_path / "result.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as file:
            file.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["result.bin"]
    with atomic_file(path) as file:
        file.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["result.bin"]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("mode, shape", [("RGB", (37, 53, 3)), ("RGBA", (5, 1, 4)), ("RGB", (1, 1, 3))])
def test_encode_png_round_trips(mode, shape, compress):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(Image.fromarray(pixels, mode=mode), compress)))
    assert decoded.mode == mode
    np.testing.assert_array_equal(np.asarray(decoded), pixels)


def test_compressed_png_is_smaller_on_a_photo():
    photo = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    assert len(encode_png(photo, compress=True)) < len(encode_png(photo)) / 2


def test_encode_png_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="RGB or RGBA images; got mode 'L'"):
        encode_png(Image.new("L", (2, 2)))
    with pytest.raises(ValueError):
        save_png(Image.new("L", (2, 2)), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_overlay_base_caps_the_longer_side():
    image = Image.new("RGB", (800, 400))
    assert overlay_base(image, 384).size == (384, 192)
    assert overlay_base(Image.new("RGB", (300, 1000)), 384).size == (115, 384)
    assert overlay_base(image, 0) is image
    small = Image.new("RGB", (100, 50))
    assert overlay_base(small, 384) is small


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_workers_run_below_the_engine_and_leave_the_caller_alone():
    from gradcam.batch import _background_priority

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with ThreadPoolExecutor(1, initializer=_background_priority) as pool:
        worker = pool.submit(niceness).result()
    assert worker == min(19, niceness() + 10)
