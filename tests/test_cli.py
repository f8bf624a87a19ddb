"""The ``gradcam`` command end to end: good and bad files, exit codes, outputs equal to
the library's results, refusing to overwrite, atomic writes.

Most tests run ``gradcam.cli.main`` in-process on a tiny random-weights model saved as a
``.keras`` file (32x32 RGB input, 3 classes); one runs the default EfficientNet-Lite0.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from gradcam import batch
from gradcam.cli import main
from gradcam.render import format_as_image

SAMPLES = os.path.dirname(gradcam.samples.path("chelsea"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny classifier that takes RGB 0..255 (it rescales itself), saved to a file."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    with warnings.catch_warnings():  # Keras's saving code trips a NumPy 2 deprecation
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        keras.Model(inputs, x, name="tiny").save(path)
    return str(path)


def photo(path, size=(48, 40), mode="RGB", seed=0, **save_kwargs):
    """Save a random picture (any Pillow mode) and return its path."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_kwargs)
    return path


def run(capsys, *args):
    """Run the command in-process; return (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def summary(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as file:
        return json.load(file)


def leftovers(folder):
    """Temporary files left anywhere under ``folder``."""
    return [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files if f.endswith(".tmp")]


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

    status, stdout, stderr = run(capsys, "explain", photos, tmp_path / "missing.jpg", "--model",
                                 model_file, "--out", out)

    assert status == 1
    skipped = [line for line in stderr.splitlines() if line.startswith("gradcam: skipped: ")]
    assert len(skipped) == 4
    assert "'empty.jpg' is not an image file" in stderr.replace(str(photos) + os.sep, "")
    assert "is not an image file" in stderr and "truncated or corrupt" in stderr
    assert "No image file at" in stderr and "missing.jpg" in stderr
    report = summary(out)
    status_of = {os.path.relpath(r["path"], tmp_path): r["status"] for r in report["images"]}
    assert sorted(p for p, s in status_of.items() if s == "failed") == [
        os.path.join("missing.jpg"), os.path.join("photos", "empty.jpg"),
        os.path.join("photos", "text.jpg"), os.path.join("photos", "truncated.jpg")]
    assert report["counts"] == {"images": 12, "ok": 8, "failed": 4}
    assert [f["path"] for f in report["failed"]] == [r["path"] for r in report["images"] if r["status"] == "failed"]
    overlays = {r["targets"][0]["overlay"] for r in report["images"] if r["status"] == "ok"}
    assert "sub/rgb.2.png" in overlays or any(o.startswith("sub/rgb.") for o in overlays)
    for overlay in overlays:
        assert (out / overlay).is_file()
    rotated = next(r for r in report["images"] if r["path"].endswith("rotated.jpg"))
    assert Image.open(out / rotated["targets"][0]["overlay"]).size == (20, 48)  # upright
    with np.load(out / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape == (8, 1, 16, 16) and npz["paths"].shape == (8,)
    with open(out / "summary.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok", "failed"}
    assert leftovers(out) == []
    assert "explained 8 of 12 images" in stderr


def test_outputs_equal_the_library_results(tmp_path, capsys, model_file):
    photos = tmp_path / "photos"
    paths = [photo(photos / "a.png", size=(64, 40)), photo(photos / "b.jpg", size=(30, 50), seed=3)]
    out = tmp_path / "out"

    status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out,
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
            assert target["overlay"] == f"{path.stem}.{target['index']}.png"
            written = np.asarray(Image.open(out / target["overlay"]))
            np.testing.assert_array_equal(written, np.asarray(format_as_image(expl, target=k).convert("RGB")))
        top = records[n]["top"]
        assert [c["index"] for c in top] == list(np.argsort(-expected.outputs[n]))
        assert records[n]["layer"] == "conv2"


def test_overlays_are_capped_at_the_overlay_size(tmp_path, capsys, model_file):
    photo(tmp_path / "wide.png", size=(800, 200))
    status, _, _ = run(capsys, "explain", tmp_path / "wide.png", "--model", model_file, "--out", tmp_path / "out",
                       "--compress")
    overlay = summary(tmp_path / "out")["images"][0]["targets"][0]["overlay"]
    assert status == 0 and Image.open(tmp_path / "out" / overlay).size == (320, 80)


def test_decompression_bomb_is_skipped(tmp_path, capsys, model_file, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    photo(tmp_path / "in" / "small.png", size=(40, 30))
    photo(tmp_path / "in" / "bomb.png", size=(200, 200))
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out")
    assert status == 1
    assert "bomb.png' is too large to decode safely" in stderr
    assert summary(tmp_path / "out")["counts"] == {"images": 2, "ok": 1, "failed": 1}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet_fifty"], "--model: unknown model 'resnet_fifty'; expected one of efficientnet_lite0"),
        (["--model", "nowhere/model.keras"], "--model: no model file at 'nowhere/model.keras'"),
        (["--layer", "conv9"], "--layer: No layer named 'conv9' in model 'tiny'. Closest layer names: 'conv2', 'conv1'."),
        (["--layer", "pool"], "--layer: Layer 'pool' has output shape (None, 6); Grad-CAM needs"),
        (["--target", "tiger cat"], "--target: Cannot find class 'tiger cat': the model has 3 outputs and no class names"),
        (["--target", "7"], "--target: Target 7 is out of range: the model has 3 classes (0..2)."),
        (["--colormap", "viridiss"], "Unknown matplotlib colormap 'viridiss'."),
        (["--alpha-limit", "300"], "alpha_limit must be a fraction in [0, 1]"),
        (["--image-size", "64", "64"], "--image-size 64 64: the model takes images of 32x32"),
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


def test_unreadable_model_file_and_empty_folder(tmp_path, capsys):
    (tmp_path / "broken.keras").write_text("not a model")
    (tmp_path / "empty").mkdir()
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", tmp_path / "broken.keras")
    assert status == 2 and f"gradcam: error: --model: cannot load '{tmp_path / 'broken.keras'}'" in stderr
    status, _, stderr = run(capsys, "explain", tmp_path / "empty")
    assert status == 2 and "gradcam: error: no image files found in" in stderr
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--batch-size", "0")
    assert status == 2 and "--batch-size: expected a positive integer; got '0'" in stderr


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

    for name in batch.RUN_FILES:  # an overlay alone is enough to refuse
        os.unlink(out / name)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out)
    assert status == 2 and "a.2.png' exists" in stderr.replace("a.0.png", "a.2.png").replace("a.1.png", "a.2.png")

    status, _, _ = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out, "--overwrite")
    assert status == 0 and summary(out)["counts"]["ok"] == 1


def test_a_failed_write_fails_that_image_and_leaves_no_partial_file(tmp_path, capsys, model_file, monkeypatch):
    for name in ["a.png", "b.png", "c.png"]:
        photo(tmp_path / "in" / name)
    encode, calls = batch.encode_png, []

    def disk_full_once(image, compress):  # called with the temporary file already open
        calls.append(image)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return encode(image, compress)

    monkeypatch.setattr(batch, "encode_png", disk_full_once)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out)
    assert status == 1
    assert "cannot write the overlay of" in stderr and "No space left on device" in stderr
    report = summary(out)
    assert report["counts"] == {"images": 3, "ok": 2, "failed": 1}
    failed = os.path.basename(report["failed"][0]["path"])
    assert not any(name.startswith(failed.replace(".png", ".")) for name in os.listdir(out))
    assert len([name for name in os.listdir(out) if name.endswith(".png")]) == 2
    assert leftovers(tmp_path) == []


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
    assert sorted(os.listdir(out)) in ([], ["a.2.png"], ["a.0.png"], ["a.1.png"])
    assert leftovers(tmp_path) == []


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
    if not os.path.exists(os.path.join(SAMPLES, "chelsea.jpg")):
        pytest.skip("samples/chelsea.jpg is missing")
    for name in ["chelsea.jpg", "coffee.jpg"]:
        shutil.copy(os.path.join(SAMPLES, name), tmp_path / name)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", tmp_path / "chelsea.jpg", tmp_path / "coffee.jpg", "--out", out)
    assert status == 0, stderr
    chelsea, coffee = summary(out)["images"]
    assert "cat" in chelsea["targets"][0]["name"] and chelsea["layer"] == "top_activation"
    assert coffee["targets"][0]["name"] == "espresso"
    assert coffee["targets"][0]["overlay"] == "coffee.967-espresso.png"
    assert Image.open(out / "coffee.967-espresso.png").size == (320, 213)
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

