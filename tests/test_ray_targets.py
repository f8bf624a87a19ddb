"""Targets on Ray: the Explainer takes gradcam.targets objects, functions and FromColumns
targets whose per-image parameters are columns of the batch; the maps are the in-process
engine's (and the hand-computed ones of tests/test_targets.py).

The models are those of tests/helpers/target_models.py on the red channel of a 4x4 RGB
image (helpers.ray.on_red); for the red channel ``arange(16)`` (the tiny models' ``X``)
the segmenter's class-0 output is ``y0 = [[0, 0.8], [3.2, 4.0]]``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ray
import ray.data

import gradcam
import gradcam.ray as gradcam_ray
from gradcam.targets import Box, Contrast, Output, Segmentation, Similarity
from helpers.ray import local_ray as start_local_ray
from helpers.ray import on_red, tiny_rgb
from helpers.target_models import make_detector, make_segmenter
from helpers.tiny import assert_map

RED = np.zeros((2, 4, 4, 3), np.uint8)
RED[..., 0] = np.arange(16).reshape(4, 4)
RED[1, ..., 0] = RED[0, ..., 0][::-1]  # a second image: the rows upside down
MASKS = np.array([[[0, 1], [0, 0]], [[0, 0], [1, 1]]], bool)
QUERIES = np.array([[2, 2, 4, 4], [2, 0, 4, 2]], np.float32)


def segmenter():
    return on_red(make_segmenter())


def detector():
    return on_red(make_detector())


def plain_tiny():
    return tiny_rgb(activation=None)


def test_segmentation_masks_from_a_column_give_the_hand_computed_maps():
    """Image 0's mask keeps the top-right cell: score ``y0[0, 1] = 0.8`` and HiResCAM's map
    in that cell alone (tests/test_targets.py); a batch of two images with a mask each
    gives the in-process maps of the per-image masks."""
    target = gradcam_ray.FromColumns(Segmentation, {"mask": "mask"}, category=0)
    explainer = gradcam_ray.Explainer(model=segmenter, method="hirescam", layer="conv", targets=target)
    out = explainer({"image": RED[:1], "mask": MASKS[:1]})
    assert_map(out["heatmap"][0, 0], [[0, 1], [0, 0]])
    np.testing.assert_allclose(out["score"][:, 0], [0.8], atol=1e-5)
    assert out["target"].tolist() == [[-1]] and np.isnan(out["proba"]).all()
    flipped = np.concatenate([RED[:1], RED[:1, ::-1]])
    out = explainer({"image": flipped, "mask": MASKS, "id": np.array([5, 6])})
    assert out["id"].tolist() == [5, 6] and "mask" in out
    expected = gradcam.HiResCAM(segmenter(), layer="conv").compute(flipped.astype(np.float32),
                                                                   [Segmentation(0, MASKS)])
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-6)
    np.testing.assert_allclose(out["score"], expected.scores, atol=1e-5)
    assert_map(out["heatmap"][0, 0], [[0, 1], [0, 0]])
    assert not np.allclose(out["heatmap"][1, 0], out["heatmap"][0, 0])


def test_an_empty_first_batch_with_column_targets_keeps_the_columns_shapes():
    explainer = gradcam_ray.Explainer(model=segmenter, layer="conv",
                                      targets=gradcam_ray.FromColumns(Segmentation, {"mask": "mask"}, category=0))
    out = explainer({"image": np.zeros((0, 4, 4, 3), np.uint8), "mask": np.zeros((0, 2, 2), bool)})
    assert out["mask"].shape == (0, 2, 2) and out["heatmap"].shape == (0, 1, 2, 2)
    assert out["score"].shape == out["target"].shape == (0, 1)
    full = explainer({"image": RED[:1], "mask": MASKS[:1]})
    assert full["heatmap"].shape == (1, 1, 2, 2)


def test_boxes_from_a_column_pick_each_images_predicted_box():
    """The query ``(2, 2, 4, 4)`` is cell ``(1, 1)``'s box: ``y0[1, 1] = 4``, HiResCAM's map
    in that cell alone; ``(2, 0, 4, 2)`` picks cell ``(0, 1)``, ``0.8``."""
    target = gradcam_ray.FromColumns(Box, {"box": "query"}, category=0)
    explainer = gradcam_ray.Explainer(model=detector, method="hirescam", layer="conv", targets=[target])
    images = np.concatenate([RED[:1], RED[:1]])
    out = explainer({"image": images, "query": QUERIES})
    assert_map(out["heatmap"][0, 0], [[0, 0], [0, 1]])
    assert_map(out["heatmap"][1, 0], [[0, 1], [0, 0]])
    np.testing.assert_allclose(out["score"][:, 0], [4.0, 0.8], atol=1e-5)


def test_target_objects_and_functions_give_the_in_process_maps():
    """Several targets in one call, one of them per image from a column: the maps, scores
    and probabilities of GradCAM.compute with the same targets."""
    images = RED.astype(np.float32)
    embeddings = np.array([[1.0, 0.0], [0.3, -1.0]], np.float32)
    shared = [Output(1), Contrast(0, against=[1]), Similarity([0.0, 1.0]), lambda y: y[:, 0] - 2 * y[:, 1], 1]
    explainer = gradcam_ray.Explainer(
        model=plain_tiny, targets=[*shared, gradcam_ray.FromColumns(Similarity, {"embedding": "reference"})])
    out = explainer({"image": RED, "reference": embeddings})
    expected = gradcam.GradCAM(plain_tiny()).compute(images, [*shared, Similarity(embeddings)])
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-6)
    np.testing.assert_allclose(out["score"], expected.scores, atol=1e-5)
    np.testing.assert_array_equal(out["target"], expected.targets)
    assert out["target"][0].tolist() == [-1, 0, -1, -1, 1, -1]
    assert not np.allclose(out["heatmap"][:, 2], out["heatmap"][:, 5])  # the column's embeddings count


def test_a_per_image_array_in_a_target_object_points_to_columns():
    with pytest.raises(ValueError, match="for 1 images.*gradcam.ray.FromColumns"):
        gradcam_ray.Explainer(model=segmenter, layer="conv", targets=Segmentation(0, np.ones((3, 2, 2))))


@pytest.mark.parametrize("args, error, message", [
    ((Segmentation, {}), ValueError, "columns is empty"),
    ((Segmentation, ["mask"]), TypeError, "dict of argument names to column names"),
    (("Segmentation", {"mask": "mask"}), TypeError, "target class or a function"),
])
def test_from_columns_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        gradcam_ray.FromColumns(*args, category=0)
    with pytest.raises(ValueError, match="'category' is given both as a column and as a value"):
        gradcam_ray.FromColumns(Segmentation, {"category": "label"}, category=0)


def test_from_columns_missing_or_ragged_columns():
    explainer = gradcam_ray.Explainer(model=segmenter, layer="conv",
                                      targets=gradcam_ray.FromColumns(Segmentation, {"mask": "mask"}, category=0))
    with pytest.raises(ValueError, match=r"no column 'mask' \(for mask=\); its columns: 'image', 'path'"):
        explainer({"image": RED, "path": np.array(["a", "b"])})
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones((2, 2)), np.ones((3, 3))
    with pytest.raises(ValueError, match=r"column 'mask' holds values of several shapes \[\(2, 2\), \(3, 3\)\]"):
        explainer({"image": RED, "mask": ragged})


def test_from_columns_on_files_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(RED[0]).save(tmp_path / "red.png")
    target = gradcam_ray.FromColumns(Segmentation, {"mask": "mask"}, category=0)
    with pytest.raises(ValueError, match="read columns of the dataset, but the source is image files"):
        gradcam_ray.explain_images(str(tmp_path), model=segmenter, targets=target)


def test_evaluate_images_refuses_target_objects():
    with pytest.raises(TypeError, match="evaluate_images scores one class per image"):
        gradcam_ray.evaluate_images("photos/", model=plain_tiny, targets=Output(0))  # before any file is read


@pytest.fixture(scope="module")
def local_ray():
    """Ray on two CPUs; the model functions of this file and the helpers travel by value."""
    import helpers.ray
    import helpers.target_models
    import helpers.tiny

    with start_local_ray(sys.modules[__name__], helpers.ray, helpers.target_models, helpers.tiny):
        yield


def test_explain_images_reads_masks_from_the_datasets_column(local_ray):
    """A dataset of images and masks, one actor, batches of three: each row's map is the
    in-process map of its own mask."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 16, (7, 4, 4, 3)).astype(np.uint8)
    masks = rng.random((7, 2, 2)) < 0.5
    masks[:, 1, 1] = True  # no empty mask
    dataset = ray.data.from_items([{"id": n, "image": images[n], "mask": masks[n]} for n in range(7)])
    target = gradcam_ray.FromColumns(Segmentation, {"mask": "mask"}, category=0)
    rows = sorted(gradcam_ray.explain_images(dataset, model=segmenter, method="hirescam", layer="conv",
                                             targets=target, batch_size=3, concurrency=1).take_all(),
                  key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(7))
    expected = gradcam.HiResCAM(segmenter(), layer="conv").compute(images.astype(np.float32),
                                                                   [Segmentation(0, masks)])
    np.testing.assert_allclose(np.stack([row["heatmap"] for row in rows]), expected.heatmaps, atol=1e-6)
    np.testing.assert_allclose(np.stack([row["score"] for row in rows]), expected.scores, atol=1e-5)
