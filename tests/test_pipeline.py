"""The streaming pipeline: its typed settings, drawing sizes, worker priority, and runs of
:func:`explain_files` and :func:`evaluate_files` on a tiny model."""

import csv
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from gradcam.io.inputs import find_inputs
from gradcam.io.outputs import OutputFolder
from gradcam.batch import RunSettings, decoding, evaluate_files, explain, explain_files, overlay_base


@pytest.fixture(scope="module")
def engine():
    """A tiny softmax classifier of 16x16 RGB images, 3 classes; its map is 8x8."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, activation="softmax")(x)
    return gradcam.GradCAM(keras.Model(inputs, x))


def photos(folder, count, size=(20, 12)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{n}.png")
    return folder


def test_settings_are_checked_when_made():
    settings = RunSettings(image_shape=[224, 200], targets=[3])
    assert settings.image_shape == (224, 200) and settings.targets == (3,) and settings.targets_per_image == 1
    assert RunSettings((8, 8)).targets_per_image == 1 and RunSettings((8, 8), targets=[0, 2]).targets_per_image == 2
    assert RunSettings((8, 8), batch_size=4).held_images == 8 + 12
    assert RunSettings((8, 8), batch_size=4, prefetch=5).held_images == 5 + 12
    for kwargs, message in [
        (dict(image_shape=(8,)), r"image_shape must be \(height, width\); got \(8,\)."),
        (dict(image_shape=(8, 0)), "image_shape's height and width must be a positive integer; got 0."),
        (dict(image_shape=(8, 8), batch_size=0), "batch_size must be a positive integer; got 0."),
        (dict(image_shape=(8, 8), alpha_limit=2), r"alpha_limit must be a fraction in \[0, 1\]; got 2."),
        (dict(image_shape=(8, 8), targets=[]), "targets is empty"),
        (dict(image_shape=(8, 8), overlay_size=-1), "overlay_size must be a non-negative integer; got -1."),
        (dict(image_shape=(8, 8), colormap="viridiss"), "Unknown matplotlib colormap 'viridiss'."),
        (dict(image_shape=(8, 8), format="gif"), "overlay format must be one of jpg, png, webp; got 'gif'."),
        (dict(image_shape=(8, 8), compress=True), "compress applies to PNG overlays only"),
        (dict(image_shape=(8, 8), overlays="no"), "overlays must be True or False; got 'no'."),
    ]:
        with pytest.raises(ValueError, match=message):
            RunSettings(**kwargs)


def test_overlay_base_caps_the_longer_side():
    image = Image.new("RGB", (800, 400))
    assert overlay_base(image, 384).size == (384, 192)
    assert overlay_base(Image.new("RGB", (300, 1000)), 384).size == (115, 384)
    assert overlay_base(image, 0) is image
    small = Image.new("RGB", (100, 50))
    assert overlay_base(small, 384) is small


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_workers_run_below_the_engine_and_leave_the_caller_alone():
    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with ThreadPoolExecutor(1, initializer=decoding._background_priority) as pool:
        worker = pool.submit(niceness).result()
    assert worker == min(19, niceness() + 10)


def test_a_run_writes_overlays_summaries_and_heatmaps_in_input_order(tmp_path, engine):
    inputs = find_inputs([photos(tmp_path / "in", 5)])
    settings = RunSettings((16, 16), targets=[2, 0], batch_size=2, format="png", workers=2)
    with OutputFolder(tmp_path / "out") as folder:
        report = explain_files(engine, inputs, folder, settings, header={"model": "tiny"})
    assert (report.total, report.ok, report.failed) == (5, 5, [])
    docs = np.concatenate([gradcam.image_from_path(i.path, (16, 16)) for i in inputs])
    # in the run's batches of 2: on some backends a map's last bits depend on the batch
    expected = np.concatenate([engine.compute(docs[n:n + 2], targets=[2, 0]).heatmaps for n in range(0, 5, 2)])
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        np.testing.assert_array_equal(npz["heatmaps"], expected)
        assert npz["paths"].tolist() == [i.path for i in inputs]
    with open(tmp_path / "out" / "summary.json", encoding="utf-8") as file:
        summary = json.load(file)
    assert summary["model"] == "tiny" and summary["targets"] == [2, 0] and summary["format"] == "png"
    assert [r["targets"][0]["overlay"] for r in summary["images"]] == [f"{n}.2.gradcam.png" for n in range(5)]
    assert summary["counts"] == {"images": 5, "ok": 5, "failed": 0, "empty_maps": report.empty_maps}
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        [f"{n}.{k}.gradcam.png" for n in range(5) for k in (0, 2)] + ["heatmaps.npz", "summary.csv", "summary.json"])


def test_without_overlays_nothing_is_drawn_and_the_maps_are_the_same(tmp_path, engine, monkeypatch):
    def no_drawing(*args, **kwargs):
        raise AssertionError("an overlay was drawn")

    monkeypatch.setattr(explain, "overlay_heatmap", no_drawing)
    monkeypatch.setattr(decoding, "overlay_base", no_drawing)
    inputs = find_inputs([photos(tmp_path / "in", 3)])
    settings = RunSettings((16, 16), targets=[1], batch_size=2, overlays=False)
    with OutputFolder(tmp_path / "out") as folder:
        report = explain_files(engine, inputs, folder, settings)
    assert (report.ok, report.failed) == (3, [])
    assert sorted(os.listdir(tmp_path / "out")) == ["heatmaps.npz", "summary.csv", "summary.json"]
    docs = np.concatenate([gradcam.image_from_path(i.path, (16, 16)) for i in inputs])
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        expected = [engine.compute(docs[n:n + 2], targets=[1]).heatmaps for n in (0, 2)]  # the run's batches
        np.testing.assert_array_equal(npz["heatmaps"], np.concatenate(expected))
    with open(tmp_path / "out" / "summary.json", encoding="utf-8") as file:
        summary = json.load(file)
    assert summary["overlays"] is False
    assert [t["overlay"] for r in summary["images"] for t in r["targets"]] == [None] * 3


def test_every_image_failing_keeps_the_shape_of_the_run(tmp_path, engine):
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    for name in ["a.png", "b.jpg"]:
        (folder_in / name).write_text("not an image")
    settings = RunSettings((16, 16), targets=[0, 2])
    with OutputFolder(tmp_path / "out") as folder:
        report = explain_files(engine, find_inputs([folder_in]), folder, settings)
    assert report.ok == 0 and len(report.failed) == 2
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (0, 2, 8, 8)
        assert npz["targets"].shape == (0, 2) and npz["scores"].shape == (0, 2)


def test_a_failed_write_fails_that_image_and_leaves_no_partial_file(tmp_path, engine, monkeypatch):
    encode, calls = explain.encode_image, []

    def disk_full_once(image, format, compress):  # called with the temporary file already open
        calls.append(image)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return encode(image, format, compress)

    monkeypatch.setattr(explain, "encode_image", disk_full_once)
    inputs = find_inputs([photos(tmp_path / "in", 3)])
    with OutputFolder(tmp_path / "out") as folder:
        report = explain_files(engine, inputs, folder, RunSettings((16, 16), workers=1))
    assert report.ok == 2 and len(report.failed) == 1
    path, error = report.failed[0]
    assert error == f"cannot write the overlay of {path!r}: OSError: [Errno 28] No space left on device"
    written = sorted(os.listdir(tmp_path / "out"))
    assert len([n for n in written if n.endswith(".jpg")]) == 2
    assert not any(n.startswith(os.path.basename(path)[:-4] + ".") for n in written)
    assert [n for n in written if n.startswith(".")] == []


def test_the_timer_hook_sees_every_stage_in_the_thread_doing_it(tmp_path, engine):
    seen, lock = [], threading.Lock()

    class Timer:
        def __init__(self, stage):
            self.stage = stage

        def __enter__(self):
            with lock:
                seen.append((self.stage, threading.current_thread().name.split("_")[0]))

        def __exit__(self, *exc_info):
            return False

    inputs = find_inputs([photos(tmp_path / "in", 3)])
    with OutputFolder(tmp_path / "out") as folder:
        explain_files(engine, inputs, folder, RunSettings((16, 16), batch_size=2), timer=Timer)
    threads = {}
    for stage, thread in seen:
        threads.setdefault(stage, set()).add(thread)
    assert threads == {
        "decode": {"gradcam-worker"}, "resize": {"gradcam-worker"}, "overlay": {"gradcam-worker"},
        "encode": {"gradcam-worker"}, "wait_decode": {"MainThread"}, "preprocess": {"MainThread"},
        "engine": {"MainThread"}, "wait_writer": {"MainThread"}, "finish": {"MainThread"},
        "wait_engine": {"gradcam-record"}, "wait_draw": {"gradcam-record"}, "summary": {"gradcam-record"},
    }
    assert sum(stage == "decode" for stage, _ in seen) == 3


def test_evaluate_gives_each_metric_the_images_as_decoded_and_each_map(tmp_path, engine):
    photos(tmp_path / "in", 3)
    (tmp_path / "in" / "3.png").write_text("not an image")
    inputs = find_inputs([tmp_path / "in"])
    calls = []

    def halve_in_place(x):  # as keras.applications' preprocess_input scales float arrays
        x /= 2
        return x

    def brightness(model, docs, heatmaps, targets, *, preprocess):
        calls.append((model, docs.copy(), heatmaps.copy(), targets.copy(), preprocess))
        return docs.mean(axis=(1, 2, 3)) + heatmaps.sum(axis=(1, 2)) + targets

    def darkness(model, docs, heatmaps, targets, *, preprocess):
        return -docs.mean(axis=(1, 2, 3))

    plus = gradcam.GradCAMPlusPlus(engine.model)
    settings = RunSettings((16, 16), preprocess=halve_in_place, targets=[2, 0], batch_size=2, overlays=False)
    with OutputFolder(tmp_path / "out") as folder:
        report = evaluate_files([engine, plus], inputs, folder, settings, {"brightness": brightness, "dark": darkness})
    assert (report.ok, [os.path.basename(p) for p, _ in report.failed]) == (3, ["3.png"])
    assert os.listdir(tmp_path / "out") == ["metrics.csv"]
    docs = np.concatenate([gradcam.image_from_path(i.path, (16, 16)) for i in inputs[:3]])
    maps = np.concatenate([  # in the run's batches, 2 images then 1
        np.concatenate([e.compute(halve_in_place(docs[n:n + 2].copy()), targets=[2, 0]).heatmaps for e in (engine, plus)],
                       axis=1) for n in (0, 2)])
    # two batches (2 images, then 1) x four maps (each method's targets in turn)
    assert len(calls) == 8
    for call, (start, stop, k) in zip(calls, [(0, 2, k) for k in range(4)] + [(2, 3, k) for k in range(4)]):
        model, images, heatmaps, targets, preprocess = call
        assert model is engine.model and preprocess is halve_in_place
        np.testing.assert_array_equal(images, docs[start:stop])  # not halved
        np.testing.assert_array_equal(heatmaps, maps[start:stop, k])
        assert targets.tolist() == [[2, 0, 2, 0][k]] * (stop - start)
    with open(tmp_path / "out" / "metrics.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 * 4 * 2 + 1 and rows[-1]["error"].endswith("3.png' is not an image file Pillow can read.")
    for n in range(3):
        for k, method in enumerate(["gradcam", "gradcam", "gradcam++", "gradcam++"]):
            bright, dark = rows[n * 8 + 2 * k: n * 8 + 2 * k + 2]
            target = [2, 0, 2, 0][k]
            assert (bright["method"], bright["metric"], bright["target"]) == (method, "brightness", str(target))
            assert dark["metric"] == "dark"
            expected = docs[n].mean() + maps[n, k].sum() + target
            assert np.float32(bright["value"]) == np.float32(expected)
            assert np.float32(dark["value"]) == np.float32(-docs[n].mean())
    assert report.means[("gradcam++", "dark")] == pytest.approx(-docs.mean(axis=(1, 2, 3)).mean(), rel=1e-6)
    assert list(report.means) == [(m, name) for m in ("gradcam", "gradcam++") for name in ("brightness", "dark")]


def test_the_old_module_name_warns_and_gives_the_same_objects():
    import importlib
    import sys

    import gradcam.batch

    sys.modules.pop("gradcam.pipeline", None)
    with pytest.warns(DeprecationWarning, match="gradcam.pipeline is deprecated; import from gradcam.batch"):
        old = importlib.import_module("gradcam.pipeline")
    assert [getattr(old, name) for name in gradcam.batch.__all__] == [
        getattr(gradcam.batch, name) for name in gradcam.batch.__all__]


def test_an_interrupted_run_reports_no_failure_for_a_drawing_it_cancelled(tmp_path, engine, monkeypatch):
    import io
    import time

    from gradcam.progress import Progress

    decode, record_image, recording = decoding._Decoder.decode, explain._Explaining.record_image, threading.Event()

    def slow(self, item):  # the one worker is decoding the next images when Ctrl-C comes...
        time.sleep(0.5)
        return decode(self, item)

    def recorded(self, *args):
        recording.set()  # ... while the first image waits for its drawing, queued behind them
        return record_image(self, *args)

    compute, calls = type(engine).compute, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            assert recording.wait(5)
            raise KeyboardInterrupt
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(decoding._Decoder, "decode", slow)
    monkeypatch.setattr(explain._Explaining, "record_image", recorded)
    monkeypatch.setattr(type(engine), "compute", interrupted)
    stream = io.StringIO()
    inputs = find_inputs([photos(tmp_path / "in", 4)])
    with OutputFolder(tmp_path / "out") as folder:
        with pytest.raises(KeyboardInterrupt):
            explain_files(engine, inputs, folder, RunSettings((16, 16), batch_size=1, workers=1),
                          progress=Progress(4, stream=stream, tty=False))
    assert stream.getvalue() == ""  # no "skipped: cannot write the overlay of ...: CancelledError"
