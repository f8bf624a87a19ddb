"""The summary and heatmap files: one record per image, ``proba`` for probabilities and
``score`` for the explained score, consistent shapes even when no image was explained."""

import csv
import json
import os

import numpy as np
import pytest

from gradcam.io.outputs import OutputFolder
from gradcam.io.summary import CSV_COLUMNS, ExplainedTarget, ImageResult, SummaryWriter, TopClass


def read(out):
    with open(out / "summary.json", encoding="utf-8") as file:
        summary = json.load(file)
    with open(out / "summary.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    with np.load(out / "heatmaps.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    return summary, rows, arrays


def test_softmax_model_records_probabilities_as_proba_and_logits_as_score(tmp_path):
    maps = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3) / 11
    with OutputFolder(tmp_path) as folder:
        writer = SummaryWriter(folder, {"model": "m.keras"}, "conv2", targets_per_image=2)
        writer.add(ImageResult(
            "in/a.png",
            top=(TopClass(2, "two", proba=0.75), TopClass(0, None, proba=0.25)),
            targets=(ExplainedTarget(2, "two", 3.5, 0.75, "a.2-two.gradcam.jpg"),
                     ExplainedTarget(0, None, -1.25, 0.25, "a.0.gradcam.jpg", empty=True)),
            heatmaps=maps))
        writer.add_failed("in/b.png", "'in/b.png' is not an image file Pillow can read.")
        writer.commit({"counts": {"images": 2}})
    summary, rows, arrays = read(tmp_path)
    assert list(summary) == ["model", "layer", "images", "failed", "counts"]
    assert summary["images"] == [
        {"path": "in/a.png", "status": "ok", "layer": "conv2",
         "top": [{"index": 2, "name": "two", "proba": 0.75}, {"index": 0, "name": None, "proba": 0.25}],
         "targets": [
             {"method": "gradcam", "index": 2, "name": "two", "score": 3.5, "proba": 0.75, "empty": False,
              "overlay": "a.2-two.gradcam.jpg"},
             {"method": "gradcam", "index": 0, "name": None, "score": -1.25, "proba": 0.25, "empty": True,
              "overlay": "a.0.gradcam.jpg"}]},
        {"path": "in/b.png", "status": "failed", "error": "'in/b.png' is not an image file Pillow can read."}]
    assert summary["failed"] == [{"path": "in/b.png", "error": "'in/b.png' is not an image file Pillow can read."}]
    top = "2 two (proba 0.75); 0 (proba 0.25)"
    assert rows == [
        dict(zip(CSV_COLUMNS, ["in/a.png", "ok", "", "conv2", "gradcam", "2", "two", "3.5", "0.75", "false",
                               "a.2-two.gradcam.jpg", top])),
        dict(zip(CSV_COLUMNS, ["in/a.png", "ok", "", "conv2", "gradcam", "0", "", "-1.25", "0.25", "true",
                               "a.0.gradcam.jpg", top])),
        dict(zip(CSV_COLUMNS, ["in/b.png", "failed", "'in/b.png' is not an image file Pillow can read."] + [""] * 9)),
    ]
    np.testing.assert_array_equal(arrays["heatmaps"], maps[np.newaxis])
    assert arrays["paths"].tolist() == ["in/a.png"] and arrays["targets"].tolist() == [[2, 0]]
    np.testing.assert_array_equal(arrays["scores"], [[3.5, -1.25]])
    np.testing.assert_array_equal(arrays["probas"], [[0.75, 0.25]])
    assert str(arrays["layer"]) == "conv2" and arrays["methods"].tolist() == ["gradcam", "gradcam"]
    assert sorted(os.listdir(tmp_path)) == ["heatmaps.npz", "summary.csv", "summary.json"]


def test_model_without_softmax_records_its_outputs_as_score(tmp_path):
    with OutputFolder(tmp_path) as folder:
        writer = SummaryWriter(folder, {}, "conv", targets_per_image=1)
        writer.add(ImageResult("a.png", top=(TopClass(1, "one", score=4.0),),
                               targets=(ExplainedTarget(1, "one", 4.0, None, "a.1-one.jpg"),),
                               heatmaps=np.ones((1, 2, 2), np.float32)))
        writer.commit({})
    summary, rows, arrays = read(tmp_path)
    assert summary["images"][0]["top"] == [{"index": 1, "name": "one", "score": 4.0}]
    assert rows[0]["top_classes"] == "1 one (score 4)" and rows[0]["proba"] == ""
    assert "probas" not in arrays


@pytest.mark.parametrize("map_size, shape", [((3, 5), (0, 2, 3, 5)), (None, (0, 2, 0, 0))])
def test_no_image_explained_gives_arrays_with_the_runs_shape(tmp_path, map_size, shape):
    with OutputFolder(tmp_path) as folder:
        writer = SummaryWriter(folder, {"targets": [0, 2]}, "conv", targets_per_image=2)
        writer.add_failed("a.png", "no")
        writer.commit({}, map_size=map_size)
    summary, rows, arrays = read(tmp_path)
    assert arrays["heatmaps"].shape == shape and arrays["heatmaps"].dtype == np.float32
    assert arrays["targets"].shape == (0, 2) and arrays["scores"].shape == (0, 2) and arrays["paths"].shape == (0,)
    assert summary["images"] == [{"path": "a.png", "status": "failed", "error": "no"}]


def test_maps_of_another_shape_are_refused(tmp_path):
    with OutputFolder(tmp_path) as folder:
        writer = SummaryWriter(folder, {}, "conv", targets_per_image=2)
        target = ExplainedTarget(0, None, 1.0, None, "a.0.jpg")
        with pytest.raises(ValueError, match=r"heatmaps of shape \(1, 2, 2\) for 2 targets; expected \(2, h, w\)"):
            writer.add(ImageResult("a.png", (), (target, target), np.ones((1, 2, 2), np.float32)))
        writer.add(ImageResult("a.png", (), (target, target), np.ones((2, 2, 2), np.float32)))
        with pytest.raises(ValueError, match=r"expected \(2, h, w\) with \(h, w\) = \(2, 2\)"):
            writer.add(ImageResult("b.png", (), (target, target), np.ones((2, 3, 3), np.float32)))
        writer.abort()
    assert os.listdir(tmp_path) == []


def test_abort_leaves_the_previous_files(tmp_path):
    (tmp_path / "summary.json").write_text("previous")
    with OutputFolder(tmp_path) as folder:
        writer = SummaryWriter(folder, {}, "conv", targets_per_image=1)
        writer.add_failed("a.png", "no")
        writer.abort()
    assert os.listdir(tmp_path) == ["summary.json"] and (tmp_path / "summary.json").read_text() == "previous"
