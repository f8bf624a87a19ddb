"""gradcam.ray.evaluate_images and gradcam.ray.report: the Evaluator's values equal the
gradcam.metrics functions' on the same images and maps; on a local Ray instance of two
CPUs, the rows and the report equal the in-process gradcam.report's.

The model is the tiny RGB classifier (tests/helpers/ray.py); the images are 4x4 PNGs of
small random values (the model's size, so files and arrays give the same pixels).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
import gradcam.ray as gradcam_ray
from gradcam.methods import build_engine
from gradcam.metrics import average_drop, deletion, increase_in_confidence, insertion
from helpers.ray import local_ray as start_local_ray
from helpers.ray import save_tiny

IMAGES = np.random.default_rng(3).integers(0, 16, (6, 4, 4, 3)).astype(np.uint8)
METHODS = ["gradcam", "gradcam++"]
STUDY = dict(steps=4, randomisation_steps=2, smooth_samples=3, noise=0.1, seed=1)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for n, image in enumerate(IMAGES):
        paths.append(str(folder / f"image{n}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


def _metric_functions(model, images, method, targets):
    heat = build_engine(model, method).heatmaps(images, targets[:, None])[:, 0]  # one class per image
    return {
        "deletion": deletion(model, images, heat, targets, steps=4),
        "insertion": insertion(model, images, heat, targets, steps=4),
        "average_drop": average_drop(model, images, heat, targets),
        "increase_in_confidence": increase_in_confidence(model, images, heat, targets),
    }


# -- the Evaluator, in this process --------------------------------------------------------


def test_evaluator_rows_equal_the_metric_functions(tiny_file):
    evaluator = gradcam_ray.Evaluator(model=tiny_file, methods=METHODS, **STUDY)
    paths = np.array([f"image{n}.png" for n in range(len(IMAGES))])
    out = evaluator({"image": IMAGES, "path": paths, "label": np.arange(6)})
    assert sorted(out) == sorted(["path", "label", *gradcam_ray.ROW_COLUMNS])
    metrics = gradcam_ray.DEFAULT_EVALUATE_METRICS
    assert len(out["value"]) == 6 * len(METHODS) * len(metrics)
    assert out["path"][:8].tolist() == ["image0.png"] * 8 and out["label"][8] == 1
    assert out["method"][:8].tolist() == ["gradcam"] * 4 + ["gradcam++"] * 4
    assert out["metric"][:4].tolist() == list(metrics)
    model = keras.models.load_model(tiny_file)
    docs = IMAGES.astype(np.float32)
    targets = np.argmax(model.predict(docs, verbose=0), axis=1)
    np.testing.assert_array_equal(out["target"][::8], targets)
    assert set(out["target_name"]) == {""} and set(out["error"]) == {""}
    for method in METHODS:
        for metric, expected in _metric_functions(model, docs, method, targets).items():
            chosen = (out["method"] == method) & (out["metric"] == metric)
            np.testing.assert_allclose(out["value"][chosen], expected, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{method} {metric}")


def test_evaluator_reads_each_images_class_from_a_column(tiny_file):
    evaluator = gradcam_ray.Evaluator(model=tiny_file, methods=["gradcam"], metrics=["deletion"],
                                      target_column="label", **STUDY)
    labels = np.array([1, 0, 1, 1, 0, 0])
    out = evaluator({"image": IMAGES, "label": labels})
    np.testing.assert_array_equal(out["target"], labels)
    expected = _metric_functions(keras.models.load_model(tiny_file), IMAGES.astype(np.float32), "gradcam", labels)
    np.testing.assert_allclose(out["value"], expected["deletion"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="target_column 'class' is not a column"):
        gradcam_ray.Evaluator(model=tiny_file, metrics=["deletion"], target_column="class")({"image": IMAGES})


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ["gradcam", "nocam"]}, "Unknown method 'nocam'"),
    ({"metrics": ["deletion", "speed"]}, "Unknown metric 'speed'"),
    ({"controls": ["noise"]}, "Unknown control 'noise'"),
    ({"steps": 0}, "steps"),
    ({"targets": 0, "target_column": "label"}, "targets or target_column, not both"),
])
def test_evaluate_images_checks_its_arguments_first(files, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcam_ray.evaluate_images(files, model="efficientnet_lite0", **kwargs)


# -- on a local Ray instance -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """Ray on two CPUs: the actors and the reading tasks must fit."""
    with start_local_ray():
        yield


@pytest.fixture(scope="module")
def in_process(tiny_file, files, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    model = keras.models.load_model(tiny_file)
    data = gradcam.report(model, files, methods=METHODS, out=out, resamples=300, **STUDY)
    return data, out


def test_evaluate_images_rows_equal_the_in_process_reports_values(local_ray, files, tiny_file, in_process):
    """Two actors, batches of two images: every value is the in-process report's."""
    data, _ = in_process
    rows = gradcam_ray.evaluate_images(files, model=tiny_file, methods=METHODS, controls=["gaussian"],
                                       batch_size=2, concurrency=2, **STUDY).take_all()
    assert sorted(rows[0]) == sorted(["path", *gradcam_ray.ROW_COLUMNS])
    assert len(rows) == len(files) * 3 * 4
    for row in rows:
        n = files.index(row["path"])
        assert row["target"] == data["images"][n]["target"]
        assert row["value"] == pytest.approx(data["values"][row["method"]][row["metric"]][n], rel=1e-5, abs=1e-6)


def _without_passes(data):
    """The report less its forward-pass counts (per batch, the shared scores of every batch)."""
    return {key: value for key, value in json.loads(json.dumps(data)).items() if key != "forward_passes"}


def _close(got, expected, path=""):
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), path
        for key in expected:
            _close(got[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for n, (a, b) in enumerate(zip(got, expected)):
            _close(a, b, f"{path}/{n}")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), path
    else:
        assert got == expected, path


def test_report_equals_the_in_process_report(local_ray, files, tiny_file, in_process, tmp_path):
    """One batch: every number of report.json is the in-process report's (the sentences
    too), and the page and metrics.csv are written."""
    data, out = in_process
    numbers = gradcam_ray.report(files, model=tiny_file, methods=METHODS, out=tmp_path, resamples=300,
                                 batch_size=len(files), concurrency=1, **STUDY)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written == json.loads(json.dumps(numbers))
    _close(_without_passes(written), _without_passes(data))
    assert written["forward_passes"] == data["forward_passes"]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "path,method,metric,target,target_name,value,error"
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == len((out / "metrics.csv").read_text().splitlines())
    assert (tmp_path / "report.html").read_text().count("<img") == (out / "report.html").read_text().count("<img")


def test_report_over_several_batches_keeps_the_files_order(local_ray, files, tiny_file):
    """Batches of two images on two actors: every number (Smooth MPRT's, drawn per batch,
    and the forward passes too) is the in-process report's over batches of two, the images
    in the files' order."""
    numbers = gradcam_ray.report(files, model=tiny_file, methods=METHODS, resamples=300, batch_size=2,
                                 concurrency=2, **STUDY)
    expected = gradcam.report(keras.models.load_model(tiny_file), files, methods=METHODS, resamples=300,
                              batch_size=2, **STUDY)
    assert [image["name"] for image in numbers["images"]] == [f"image{n}.png" for n in range(6)]
    _close(json.loads(json.dumps(numbers)), json.loads(json.dumps(expected)))
