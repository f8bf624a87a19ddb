"""The ``gradcam`` command end to end: good and bad files, exit codes, outputs equal to
the library's results, refusing to overwrite, atomic writes, the output folder's lock,
and what the terminal shows.

Most tests run ``gradcam.cli.main`` in-process on a tiny random-weights model saved as a
``.keras`` file (32x32 RGB input, 3 classes, 16x16 maps); one runs the default
EfficientNet-Lite0; a few run the command in a child process, to see its file
descriptors, what it imports, or to kill it.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from helpers.cli import leftovers, photo, run, run_child, save_model, summary
from gradcam.render import format_as_image

RUN_FILES = ("heatmaps.npz", "summary.csv", "summary.json")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny.keras")


def test_good_odd_and_bad_files(tmp_path, capsys, model_file):
    photos = tmp_path / "photos"
    photo(photos / "rgb.jpg")
    photo(photos / "sub" / "rgb.jpg", seed=1)  # same name, other folder
    photo(photos / "cmyk.jpg", mode="CMYK")
    photo(photos / "sixteen.png", mode="I;16")
    photo(photos / "palette.png", mode="P")
    photo(photos / "gray.png", mode="L")
    photo(photos / "rgba.png", mode="RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    photo(photos / "rotated.jpg", size=(48, 20), exif=exif)
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.jpg").write_text("not an image")
    good = (photos / "rgb.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"

    status, stdout, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out)

    assert status == 1
    skipped = [line for line in stderr.splitlines() if line.startswith("gradcam: skipped: ")]
    assert len(skipped) == 3
    assert "gradcam: skipped: 'empty.jpg' is empty (0 bytes)." in stderr.replace(str(photos) + os.sep, "")
    assert "is not an image file" in stderr and "truncated or corrupt" in stderr
    report = summary(out)
    status_of = {os.path.relpath(r["path"], photos): r["status"] for r in report["images"]}
    assert sorted(p for p, s in status_of.items() if s == "failed") == ["empty.jpg", "text.jpg", "truncated.jpg"]
    assert report["counts"] == {"images": 11, "ok": 8, "failed": 3, "empty_maps": report["counts"]["empty_maps"]}
    assert [f["path"] for f in report["failed"]] == [r["path"] for r in report["images"] if r["status"] == "failed"]
    overlays = {r["targets"][0]["overlay"] for r in report["images"] if r["status"] == "ok"}
    assert any(o.startswith("sub/rgb.") for o in overlays)
    for overlay in overlays:
        assert (out / overlay).is_file() and Image.open(out / overlay).format == "JPEG"
    rotated = next(r for r in report["images"] if r["path"].endswith("rotated.jpg"))
    assert Image.open(out / rotated["targets"][0]["overlay"]).size == (20, 48)  # upright
    with np.load(out / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (8, 1, 16, 16) and npz["paths"].shape == (8,)
    with open(out / "summary.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 11 and {r["status"] for r in rows} == {"ok", "failed"}
    assert leftovers(out) == []
    assert "explained 8 of 11 images" in stderr


def two_photos(tmp_path):
    """``photos/a.png`` (64x40) and ``photos/b.jpg`` (30x50): the folder and the paths."""
    photos = tmp_path / "photos"
    return photos, [photo(photos / "a.png", size=(64, 40)), photo(photos / "b.jpg", size=(30, 50), seed=3)]


def test_outputs_equal_the_library_results(tmp_path, capsys, model_file):
    photos, paths = two_photos(tmp_path)
    out = tmp_path / "out"

    status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out, "--format", "png",
                            "--overlay-size", "0", "--target", "2", "--target", "0", "--batch-size", "1")

    assert status == 0, stderr
    model = keras.models.load_model(model_file)
    engine = gradcam.GradCAM(model)
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in paths])
    expected = engine.compute(docs, targets=[2, 0])
    with np.load(out / "heatmaps.npz") as npz:
        np.testing.assert_array_equal(npz["heatmaps"], expected.heatmaps)
        np.testing.assert_array_equal(npz["targets"], expected.targets)
        np.testing.assert_allclose(npz["scores"], expected.scores, rtol=1e-6)
        np.testing.assert_allclose(npz["probas"], expected.probas, rtol=1e-6)
        assert [os.path.basename(p) for p in npz["paths"]] == ["a.png", "b.jpg"]
        assert str(npz["layer"]) == "conv2"
    records = summary(out)["images"]
    for n, path in enumerate(paths):
        expl = engine.explain(docs[n:n + 1], targets=[2, 0], images=[gradcam.load_image(path)])[0]
        for k, target in enumerate(records[n]["targets"]):
            assert target["overlay"] == f"{path.stem}.{target['index']}.gradcam.png"
            written = np.asarray(Image.open(out / target["overlay"]))
            np.testing.assert_array_equal(written, np.asarray(format_as_image(expl, target=k).convert("RGB")))
        top = records[n]["top"]
        assert [c["index"] for c in top] == list(np.argsort(-expected.outputs[n]))
        assert records[n]["layer"] == "conv2"


def test_probabilities_are_proba_and_logits_are_score(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    status, _, _ = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                       "--target", "1")
    assert status == 0
    model = keras.models.load_model(model_file)
    expected = gradcam.GradCAM(model).compute(gradcam.image_from_path(tmp_path / "in" / "a.png", (32, 32)),
                                              targets=[1])
    record = summary(tmp_path / "out")["images"][0]
    assert [sorted(c) for c in record["top"]] == [["index", "name", "proba"]] * 3
    np.testing.assert_allclose([c["proba"] for c in record["top"]], np.sort(expected.outputs[0])[::-1], rtol=1e-6)
    [target] = record["targets"]
    np.testing.assert_allclose([target["score"], target["proba"]], [expected.scores[0, 0], expected.probas[0, 0]],
                               rtol=1e-6)
    with open(tmp_path / "out" / "summary.csv", newline="", encoding="utf-8") as file:
        [row] = list(csv.DictReader(file))
    assert re.fullmatch(r"(\d \(proba [0-9.e-]+\); ){2}\d \(proba [0-9.e-]+\)", row["top_classes"])


@pytest.mark.parametrize("format, pillow_format", [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_overlay_formats(tmp_path, capsys, model_file, format, pillow_format):
    photo(tmp_path / "in" / "a.png", size=(64, 48))
    args = ["explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out", "--target", "0"]
    status, _, stderr = run(capsys, *args, *(["--format", format] if format != "jpg" else []))
    assert status == 0, stderr
    overlay = tmp_path / "out" / f"a.0.gradcam.{format}"
    assert summary(tmp_path / "out")["images"][0]["targets"][0]["overlay"] == f"a.0.gradcam.{format}"
    assert summary(tmp_path / "out")["format"] == format
    assert Image.open(overlay).format == pillow_format and Image.open(overlay).size == (64, 48)


def test_no_overlays_writes_the_same_heatmaps_and_summaries_without_images(tmp_path, capsys, model_file):
    photos, paths = two_photos(tmp_path)
    args = ["explain", photos, "--model", model_file, "--target", "2", "--target", "0", "--method", "gradcam",
            "--method", "layercam", "--batch-size", "1"]
    assert run(capsys, *args, "--out", tmp_path / "drawn")[0] == 0

    status, _, stderr = run(capsys, *args, "--out", tmp_path / "bare", "--no-overlays")

    assert status == 0, stderr
    assert sorted(os.listdir(tmp_path / "bare")) == sorted(RUN_FILES)
    with np.load(tmp_path / "drawn" / "heatmaps.npz") as drawn, np.load(tmp_path / "bare" / "heatmaps.npz") as bare:
        assert sorted(drawn) == sorted(bare)
        for name in drawn:
            np.testing.assert_array_equal(bare[name], drawn[name])
    drawn, bare = summary(tmp_path / "drawn"), summary(tmp_path / "bare")
    assert (drawn["overlays"], bare["overlays"]) == (True, False)
    for with_images, without in zip(drawn["images"], bare["images"]):
        assert [t["overlay"] for t in without["targets"]] == [None] * 4
        assert all(t["overlay"].endswith(".jpg") for t in with_images["targets"])
        for t in with_images["targets"]:
            t["overlay"] = None
        assert without == with_images
    with open(tmp_path / "bare" / "summary.csv", newline="", encoding="utf-8") as file:
        assert [row["overlay"] for row in csv.DictReader(file)] == [""] * 8


def test_overlays_are_capped_at_the_overlay_size(tmp_path, capsys, model_file):
    photo(tmp_path / "wide.png", size=(800, 200))
    status, _, _ = run(capsys, "explain", tmp_path / "wide.png", "--model", model_file, "--out", tmp_path / "out",
                       "--format", "png", "--compress")
    overlay = summary(tmp_path / "out")["images"][0]["targets"][0]["overlay"]
    assert status == 0 and Image.open(tmp_path / "out" / overlay).size == (320, 80)


def test_decompression_bomb_is_skipped(tmp_path, capsys, model_file, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    photo(tmp_path / "in" / "small.png", size=(40, 30))
    photo(tmp_path / "in" / "bomb.png", size=(200, 200))
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out")
    assert status == 1
    assert "bomb.png' is too large to decode safely" in stderr
    assert summary(tmp_path / "out")["counts"] == {"images": 2, "ok": 1, "failed": 1, "empty_maps": 0}


def test_every_image_failing_writes_heatmaps_with_the_runs_shape(tmp_path, capsys, model_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_text("not an image")
    (tmp_path / "in" / "b.jpg").write_bytes(b"")
    status, _, _ = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                       "--target", "0", "--target", "2")
    assert status == 1
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (0, 2, 16, 16)
        assert npz["targets"].shape == (0, 2) and npz["scores"].shape == (0, 2)


def test_all_zero_maps_are_marked_and_reported_once(tmp_path, capsys):
    # Conv (one all-ones 2x2 filter over RGB, stride 2) -> Flatten -> Dense(softmax). On a
    # uniform image the four activations are equal, so logit 0 = A00 - A01 - A10 + A11 = 0
    # beats logit 1 = -0.01 * sum(A) < 0; its gradient, +1 at two positions and -1 at the
    # other two, averages to zero: the map of class 0 is all zero.
    inputs = keras.Input((4, 4, 3))
    conv = keras.layers.Conv2D(1, 2, strides=2, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    conv.set_weights([np.ones((2, 2, 3, 1), np.float32)])
    dense.set_weights([np.array([[1, -0.01], [-1, -0.01], [-1, -0.01], [1, -0.01]], np.float32)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        model.save(tmp_path / "flatten.keras")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8), (100, 100, 100)).save(tmp_path / "in" / "gray.png")
    Image.new("RGB", (8, 8), (50, 50, 50)).save(tmp_path / "in" / "dark.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", tmp_path / "flatten.keras",
                            "--out", tmp_path / "out")
    assert status == 0
    assert [line for line in stderr.splitlines() if "warning" in line.lower()] == [
        'gradcam: warning: 2 of 2 maps are all zero: no part of the layer\'s output raises the class score '
        '("empty" in summary.json). Try --score output, or another --layer.']
    report = summary(tmp_path / "out")
    assert [r["targets"][0]["empty"] for r in report["images"]] == [True, True]
    assert report["counts"]["empty_maps"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet_fifty"], "--model: unknown model 'resnet_fifty'; expected one of efficientnet_lite0"),
        (["--model", "nowhere/model.keras"], "--model: no model file at 'nowhere/model.keras'"),
        (["--layer", "conv9"], "--layer: No layer named 'conv9' in model 'tiny'. Closest layer names: 'conv2', 'conv1'."),
        (["--layer", "pool"], "--layer: Layer 'pool' has output shape (None, 6); "),
        (["--target", "tiger cat"], "--target: Cannot find class 'tiger cat': the model has 3 outputs and no class names"),
        (["--target", "7"], "--target: Target 7 is out of range: the model has 3 classes (0..2)."),
        (["--target", "\u00b2"], "--target: Cannot find class '\u00b2': the model has 3 outputs and no class names"),
        (["--colormap", "viridiss"], "--colormap: Unknown matplotlib colormap 'viridiss'."),
        (["--image-size", "64", "64"], "--image-size: the model takes images of 32x32 (height x width); got 64x64."),
        (["--compress"], "--compress: compress applies to PNG overlays only; the format is jpg."),
        (["--method", "gradcm"], "--method: Unknown method 'gradcm'; the methods are 'gradcam', 'gradcam++'"),
        (["--method", "scorecam", "--method", "scorecam"], "--method: 'scorecam' is given twice."),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, model_file, args, message):
    photo(tmp_path / "in" / "a.png")
    if "--model" not in args:
        args = ["--model", model_file] + args
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--out", tmp_path / "out", "--quiet", *args)
    assert status == 2
    assert stderr.splitlines()[-1].startswith(f"gradcam: error: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["2", "300", "-0.1", "nan", "half"])
def test_alpha_limit_is_a_fraction(tmp_path, capsys, model_file, value):
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--alpha-limit", value)
    assert status == 2
    assert stderr.splitlines()[-1] == (
        f"gradcam explain: error: argument --alpha-limit: expected a fraction from 0 to 1; got '{value}'")
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model(tmp_path, capsys):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "text.keras").write_text("not a model")
    (tmp_path / "text.h5").write_text("not a model")
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "folder.keras").mkdir()
    shutil.make_archive(str(tmp_path / "archive"), "zip", tmp_path / "in")
    os.rename(tmp_path / "archive.zip", tmp_path / "archive.keras")
    expected = {
        "text.keras": "is not a Keras model file: a .keras file is a zip archive, and this file is not one.",
        "text.h5": "is not a Keras model file: a .h5 file is an HDF5 file, and this file is not one.",
        "notes.txt": "is not a Keras model file: expected a .keras file (or a legacy .h5 file); got a file "
                     "ending in '.txt'.",
        "folder.keras": "is a folder, not a model file; expected a .keras file saved with model.save(...).",
        "archive.keras": "is not a Keras model file: it is a zip archive without the config.json of a saved "
                         "Keras model.",
    }
    for name, message in expected.items():
        status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", tmp_path / name, "--out",
                                tmp_path / "out")
        assert status == 2
        assert stderr.strip() == f"gradcam: error: --model: '{tmp_path / name}' {message}"
    assert not (tmp_path / "out").exists()


def test_empty_folder_and_bad_batch_size(tmp_path, capsys, model_file):
    (tmp_path / "empty").mkdir()
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "empty", "--model", model_file)
    assert status == 2 and stderr.strip() == f"gradcam: error: no image files found in '{tmp_path / 'empty'}'."
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--batch-size", "0")
    assert status == 2 and "--batch-size: expected a positive integer; got '0'" in stderr


def test_a_missing_input_stops_before_tensorflow_and_creates_nothing(tmp_path, model_file):
    photo(tmp_path / "in" / "a.png")
    code = ("import sys; from gradcam.cli import main; status = main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules); sys.exit(status)")
    done = run_child("explain", tmp_path / "in", tmp_path / "missing.jpg", "--model", model_file, "--out",
                     tmp_path / "out", code=code)
    assert done.returncode == 2
    assert done.stderr == f"gradcam: error: '{tmp_path / 'missing.jpg'}' does not exist.\n"
    assert done.stdout == "False\n"
    assert not (tmp_path / "out").exists()


def test_the_output_folder_is_never_read(tmp_path, capsys, model_file):
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    photo(photos / "b.png", seed=1)
    os.symlink(photos, tmp_path / "link")
    for out in [photos, tmp_path / "link"]:
        status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out)
        assert status == 2 and f"gradcam: error: '{photos}' is the output folder" in stderr
    assert sorted(os.listdir(photos)) == ["a.png", "b.png"]
    # the output folder inside the input folder, named through the link: skipped
    for _ in range(3):
        status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", tmp_path / "link" / "maps",
                                "--overwrite")
        assert status == 0, stderr
        assert summary(photos / "maps")["counts"]["images"] == 2
    assert len(os.listdir(photos / "maps")) == 2 + len(RUN_FILES)


def test_never_overwrites_without_overwrite(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    assert run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out)[0] == 0
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}

    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out)
    assert status == 2
    assert stderr.strip() == (f"gradcam: error: '{out / 'heatmaps.npz'}' exists: --out '{out}' holds outputs of "
                              "an earlier run. Pass --overwrite to replace them, or choose another --out.")
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == before

    for name in RUN_FILES:  # an overlay alone is enough to refuse, whatever its format
        os.unlink(out / name)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out,
                            "--format", "png")
    assert status == 2 and re.search(r"a\.\d\.gradcam\.jpg' exists", stderr)

    status, _, _ = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out, "--overwrite")
    assert status == 0 and summary(out)["counts"]["ok"] == 1
    assert leftovers(out) == []


def test_a_folder_in_use_by_another_run_is_refused(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    lock = {"pid": os.getpid(), "host": os.uname().nodename, "started": None, "since": "2030-01-01T00:00:00"}
    (out / ".gradcam.lock").write_text(json.dumps(lock))
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out)
    assert status == 2
    assert stderr.strip() == (
        f"gradcam: error: --out: '{out}' is in use by another gradcam run (process {os.getpid()} on "
        f"{os.uname().nodename}, since 2030-01-01T00:00:00): wait for it to finish, or choose another output "
        f"folder. If no run is using it, remove '{out / '.gradcam.lock'}'.")
    assert os.listdir(out) == [".gradcam.lock"]


def test_a_killed_run_leaves_nothing_that_the_next_run_does_not_remove(tmp_path, model_file):
    photos = tmp_path / "in"
    for n in range(600):
        photo(photos / f"{n:04d}.png", size=(8, 8), seed=n)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    child = subprocess.Popen([sys.executable, "-m", "gradcam", "explain", photos, "--model", model_file, "--out",
                              out, "--batch-size", "1", "--quiet"], env=env)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(n.startswith("0010.") for n in os.listdir(out))):
            assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert leftovers(out) != [] and not (out / "summary.json").exists()  # killed mid-run

    done = run_child("explain", photos, "--model", model_file, "--out", out, "--overwrite", "--quiet")
    assert done.returncode == 0, done.stderr
    assert leftovers(tmp_path) == []
    assert summary(out)["counts"]["ok"] == 600


def test_a_run_that_cannot_fit_in_memory_is_refused(tmp_path, capsys):
    any_size = save_model(tmp_path / "any_size.keras", input_shape=(None, None, 3))
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", any_size, "--out", tmp_path / "out",
                            "--image-size", "20000", "20000")
    assert status == 2
    assert re.fullmatch(
        r"gradcam: error: not enough memory: images of 20000x20000 in batches of 32 need at least [0-9.]+ GiB, "
        r"and [0-9.]+ [KMG]i?B(ytes)? is available\. Choose a smaller --batch-size or --image-size\.",
        stderr.splitlines()[-1])
    assert not (tmp_path / "out").exists()


def test_the_memory_check_compares_the_estimate_with_what_is_available(tmp_path, capsys, model_file, monkeypatch):
    from gradcam.cli import memory

    photo(tmp_path / "in" / "a.png")
    # 32x32 images, batch 2: 4 decoded ahead + 3 x 2 = 10 images of 12 KiB; the largest
    # layer (conv1, 32x32x4 float32, 16 KiB) 2.5 x 2 times: 200 KiB in all
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 * 1024 - 1)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--batch-size", "2", "--quiet")
    assert status == 2
    assert stderr.strip() == ("gradcam: error: not enough memory: images of 32x32 in batches of 2 need at least "
                              "200.0 KiB, and 200.0 KiB is available. Choose a smaller --batch-size or --image-size.")
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 * 1024)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--batch-size", "2", "--quiet")
    assert status == 0, stderr


def test_no_tensorflow_lines_on_the_terminal_unless_verbose(tmp_path, model_file):
    photo(tmp_path / "in" / "a.png")
    done = run_child("explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"gradcam: loading {model_file} and compiling its explanations..."
    assert lines[1].startswith("gradcam: explaining 1 image with gradcam at layer 'conv2', 1 forward pass "
                               "(setup took ")
    assert re.fullmatch(r"1/1 images 100% \| [0-9.]+ images/s \| ETA 0:00", lines[2])
    assert lines[3].startswith("gradcam: explained 1 of 1 image in ") and len(lines) == 4


def test_interrupted_run_writes_no_summary_and_no_partial_file(tmp_path, capsys, model_file, monkeypatch):
    for name in ["a.png", "b.png", "c.png"]:
        photo(tmp_path / "in" / name)
    compute = gradcam.GradCAM.compute
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the warm-up, the first image, then Ctrl-C
            raise KeyboardInterrupt
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(gradcam.GradCAM, "compute", interrupted)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out,
                            "--batch-size", "1")
    assert status == 130 and "gradcam: interrupted" in stderr
    assert stderr.rstrip().endswith("Run the same command with --resume to go on with it.")
    assert "skipped" not in stderr
    written = sorted(os.listdir(out))
    assert written[0] == ".gradcam-run.explain"  # the journal, for --resume
    assert written[1:] in ([], ["a.2.gradcam.jpg"], ["a.0.gradcam.jpg"], ["a.1.gradcam.jpg"])
    assert leftovers(tmp_path) == []


def test_several_methods_one_overlay_each(tmp_path, capsys, model_file):
    photos, paths = two_photos(tmp_path)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out, "--format", "png",
                            "--overlay-size", "0", "--target", "2", "--target", "0",
                            "--method", "gradcam++", "--method", "ablationcam")
    assert status == 0, stderr
    assert "explaining 2 images with gradcam++, ablationcam at layer 'conv2'" in stderr
    model = keras.models.load_model(model_file)
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in paths])
    plus = gradcam.GradCAMPlusPlus(model).compute(docs, targets=[2, 0])
    ablation = gradcam.AblationCAM(model).compute(docs, targets=[2, 0])
    with np.load(out / "heatmaps.npz") as npz:  # each method's targets in turn
        np.testing.assert_array_equal(npz["heatmaps"], np.concatenate([plus.heatmaps, ablation.heatmaps], axis=1))
        assert npz["targets"].tolist() == [[2, 0, 2, 0]] * 2
        assert npz["methods"].tolist() == ["gradcam++", "gradcam++", "ablationcam", "ablationcam"]
    report = summary(out)
    assert report["methods"] == ["gradcam++", "ablationcam"]
    for n, path in enumerate(paths):
        targets = report["images"][n]["targets"]
        assert [(t["method"], t["index"], t["overlay"]) for t in targets] == [
            ("gradcam++", 2, f"{path.stem}.2.gradcam++.png"), ("gradcam++", 0, f"{path.stem}.0.gradcam++.png"),
            ("ablationcam", 2, f"{path.stem}.2.ablationcam.png"), ("ablationcam", 0, f"{path.stem}.0.ablationcam.png")]
        image = gradcam.load_image(path)
        for t, engine in zip(targets, [plus] * 2 + [ablation] * 2):
            k = [2, 0].index(t["index"])
            expected = gradcam.render.overlay_heatmap(image, engine.heatmaps[n, k]).convert("RGB")
            np.testing.assert_array_equal(np.asarray(Image.open(out / t["overlay"])), np.asarray(expected))
    with open(out / "summary.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["path"][-5:], r["method"], r["target"]) for r in rows] == [
        (p, m, t) for p in ("a.png", "b.jpg") for m in ("gradcam++", "ablationcam") for t in ("2", "0")]


def test_class_names_are_used_for_targets_summaries_and_overlay_names(tmp_path, capsys, model_file):
    names = tmp_path / "names.txt"
    names.write_text("cat\nguinea pig\nbird\n\n", encoding="utf-8")
    path = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", path, "--model", model_file, "--out", out, "--class-names", names,
                            "--target", "Guinea_Pig", "--target", "bird")
    assert status == 0, stderr
    report = summary(out)
    assert report["class_names"] == str(names)
    (record,) = report["images"]
    assert [(t["index"], t["name"], t["overlay"]) for t in record["targets"]] == [
        (1, "guinea pig", "a.1-guinea_pig.gradcam.jpg"), (2, "bird", "a.2-bird.gradcam.jpg")]
    assert {c["name"] for c in record["top"]} == {"cat", "guinea pig", "bird"}
    assert sorted(os.listdir(out)) == ["a.1-guinea_pig.gradcam.jpg", "a.2-bird.gradcam.jpg", *RUN_FILES]
    with open(out / "summary.csv", newline="", encoding="utf-8") as file:
        assert [row["target_name"] for row in csv.DictReader(file)] == ["guinea pig", "bird"]


@pytest.mark.parametrize("text, message", [
    ("cat\ndog\n", "{file} ends at line 2: 2 names; expected 3, one per output of the model."),
    ("cat\ndog\nbird\nfish\n", "{file}, line 4: 'fish' is one name too many; expected 3 names, one per output "
                                 "of the model, and the file has 4."),
    ("cat\n\nbird\n", "{file}, line 2: an empty class name; expected one name per line (blank lines only at "
                       "the end)."),
    ("cat\ndog\nDog\n", "{file}, line 3: 'Dog' repeats line 2 ('dog'); expected a different name for each class."),
])
def test_bad_class_names_files_are_usage_errors(tmp_path, capsys, model_file, text, message):
    names = tmp_path / "names.txt"
    names.write_text(text, encoding="utf-8")
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--class-names", names, "--quiet")
    assert status == 2
    assert stderr.strip() == "gradcam: error: --class-names: " + message.format(file=repr(str(names)))
    assert not (tmp_path / "out").exists()


def test_a_huge_class_names_file_is_refused_before_tensorflow(tmp_path, model_file):
    names = tmp_path / "names.txt"
    with open(names, "wb") as file:
        file.truncate(2**30)  # a sparse 1 GiB file: never read whole
    photo(tmp_path / "in" / "a.png")
    code = ("import sys; from gradcam.cli import main; status = main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules); sys.exit(status)")
    done = run_child("explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                     "--class-names", names, code=code)
    assert done.returncode == 2 and done.stdout == "False\n"
    assert done.stderr == (f"gradcam: error: --class-names: '{names}' is larger than 1048576 bytes; expected a "
                           "text file of class names, one per line.\n")


def test_help_names_every_method(capsys):
    status, stdout, _ = run(capsys, "explain", "--help")
    assert status == 0
    text = " ".join(stdout.split())
    listed = re.search(r"--method NAME (.*?)\(default: gradcam\)", text).group(1)
    assert set(gradcam.METHODS) <= set(re.split(r"[ ,;:.]+", listed))


@keras.saving.register_keras_serializable(package="gradcam_tests")
class SubclassedClassifier(keras.Model):
    """A subclassed classifier of 32x32 RGB images, called in another order than its
    attributes are set."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = keras.layers.Dense(3, activation="softmax", name="head")
        self.conv = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")

    def call(self, inputs):
        return self.head(self.pool(self.conv(inputs / 255.0)))


def test_a_subclassed_model_file(tmp_path, capsys):
    keras.utils.set_random_seed(2)
    model = SubclassedClassifier(name="subclassed")
    model(np.zeros((1, 32, 32, 3), np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        model.save(tmp_path / "subclassed.keras")
    status, stdout, _ = run(capsys, "layers", "--model", tmp_path / "subclassed.keras")
    assert status == 0
    assert stdout.splitlines()[1:] == ["* conv  (16, 16, 4)", "* = the automatic choice, used when --layer is not given"]
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", tmp_path / "subclassed.keras",
                            "--out", tmp_path / "out")
    assert status == 0, stderr
    (record,) = summary(tmp_path / "out")["images"]
    assert record["layer"] == "conv" and record["targets"][0]["proba"] is not None  # its softmax was found
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (1, 1, 16, 16)


def test_layers_marks_the_automatic_choice(capsys, model_file):
    status, stdout, _ = run(capsys, "layers", "--model", model_file)
    assert status == 0
    lines = stdout.splitlines()
    assert lines[1:] == [
        "  rescaling  (32, 32, 3)",
        "  conv1      (32, 32, 4)",
        "* conv2      (16, 16, 6)",
        "* = the automatic choice, used when --layer is not given",
    ]


def test_default_model_explains_sample_photos(tmp_path, capsys):
    for name in ["chelsea", "coffee"]:
        shutil.copy(gradcam.samples.path(name), tmp_path / f"{name}.jpg")
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", tmp_path / "chelsea.jpg", tmp_path / "coffee.jpg", "--out", out)
    assert status == 0, stderr
    chelsea, coffee = summary(out)["images"]
    assert "cat" in chelsea["targets"][0]["name"] and chelsea["layer"] == "top_activation"
    assert coffee["targets"][0]["name"] == "espresso"
    assert coffee["targets"][0]["overlay"] == "coffee.967-espresso.gradcam.jpg"
    assert Image.open(out / "coffee.967-espresso.gradcam.jpg").size == (320, 213)
    with np.load(out / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (2, 1, 7, 7)


def test_python_m_gradcam_help():
    done = subprocess.run([sys.executable, "-m", "gradcam", "explain", "--help"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: gradcam explain [-h]")
    assert "exit status: 0 all inputs explained" in done.stdout


def test_top_level_help_and_missing_command(capsys):
    status, stdout, _ = run(capsys, "--help")
    assert status == 0 and "gradcam explain photos/" in stdout
    status, _, stderr = run(capsys)
    assert status == 2 and "the following arguments are required: COMMAND" in stderr
