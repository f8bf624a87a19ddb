"""gradcam.report on the tiny classifier (tests/helpers/tiny.py): the means are those of
the gradcam.metrics functions, the shared forward passes are made once, the files are
complete and self-contained, bad input gets clear errors. Run once per KERAS_BACKEND."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from helpers.report import check_page
from helpers.tiny import make_functional
from PIL import Image

import gradcam
from gradcam.methods import build_engine
from gradcam.metrics import average_drop, deletion, efficient_mprt, increase_in_confidence, insertion
from gradcam.metrics import randomisation, smooth_mprt
from gradcam.reporting.controls import gaussian_map, sobel_map
from gradcam.reporting.study import PassCounter

IMAGES = (np.random.default_rng(0).random((5, 4, 4, 1)) * 10).astype(np.float32)
OPTIONS = dict(steps=4, resamples=200, randomisation_steps=2, smooth_samples=3, noise=0.1, seed=1)
METHODS = ["gradcam", "gradcam++"]


def test_csv_has_one_row_per_image_map_and_metric(study):
    _, data, out = study
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["path", "method", "metric", "target", "target_name", "value", "error"]
    assert len(rows) == 5 * 5 * 7  # images x rows (2 methods, randomcam, 2 controls) x metrics
    first = rows[0]
    assert (first["path"], first["method"], first["metric"]) == ("image 0", "gradcam", "deletion")
    assert float(first["value"]) == data["values"]["gradcam"]["deletion"][0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    model = make_functional()
    data = gradcam.report(model, IMAGES, methods=METHODS, out=out, **OPTIONS)
    return model, data, out


def test_means_are_the_means_of_the_metric_functions(study):
    model, data, _ = study
    targets = np.array([image["target"] for image in data["images"]])
    maps = {name: build_engine(model, name).heatmaps(IMAGES, targets)[:, 0] for name in [*METHODS, "randomcam"]}
    maps.update(gaussian=gaussian_map(IMAGES), sobel=sobel_map(IMAGES))
    assert [row["name"] for row in data["rows"]] == [*METHODS, "randomcam", "gaussian", "sobel"]
    for name, heat in maps.items():
        expected = {
            "deletion": deletion(model, IMAGES, heat, targets, steps=4),
            "insertion": insertion(model, IMAGES, heat, targets, steps=4),
            "average_drop": average_drop(model, IMAGES, heat, targets),
            "increase_in_confidence": increase_in_confidence(model, IMAGES, heat, targets),
        }
        if name in (*METHODS, "randomcam"):
            common = dict(method=name, seed=1)
            expected["randomisation"] = randomisation(model, IMAGES, targets, max_steps=2, **common).correlations[:, -1]
            expected["smooth_mprt"] = smooth_mprt(
                model, IMAGES, targets, samples=3, noise=0.1, every_step=False, **common).correlations[:, -1]
            expected["efficient_mprt"] = efficient_mprt(model, IMAGES, targets, **common).rise
        for metric, values in expected.items():
            reported = np.array([np.nan if v is None else v for v in data["values"][name][metric]])
            np.testing.assert_allclose(reported, values, rtol=1e-5, atol=1e-6, err_msg=f"{name} {metric}")
            summary = data["summary"][name][metric]
            np.testing.assert_allclose(summary["mean"], np.nanmean(values), rtol=1e-5, atol=1e-7)
            assert summary["n"] == np.isfinite(values).sum()
            assert summary["low"] <= summary["mean"] <= summary["high"]


def test_controls_do_not_change_with_the_model(study):
    _, data, _ = study
    for control in ("gaussian", "sobel"):
        assert data["values"][control]["randomisation"] == [1.0] * 5
        assert data["values"][control]["efficient_mprt"] == [0.0] * 5
        assert "randomisation" in data["sanity_failures"][control]


def test_shared_forward_passes_are_made_once(study):
    model, data, _ = study
    passes = data["forward_passes"]
    n, rows, steps = 5, 5, 4
    assert passes["maps"] == (len(METHODS) + 1) * n  # one pass per image and method (randomcam too)
    assert passes["shared"] == 3 * n  # the image, the all-baseline image, the blurred image
    # Per map: deletion's and insertion's inner points, and one masked image.
    assert passes["metrics"] == rows * n * (2 * (steps - 1) + 1)
    alone = PassCounter()
    targets = np.array([image["target"] for image in data["images"]])
    heat = gaussian_map(IMAGES)
    for _ in range(rows):
        deletion(model, IMAGES, heat, targets, steps=steps, preprocess=alone)
        insertion(model, IMAGES, heat, targets, steps=steps, preprocess=alone)
        average_drop(model, IMAGES, heat, targets, preprocess=alone)
        increase_in_confidence(model, IMAGES, heat, targets, preprocess=alone)
    assert alone.count == rows * n * 2 * (steps + 3)
    assert passes["shared"] + passes["metrics"] < alone.count
    counted = PassCounter()
    again = gradcam.report(model, IMAGES, methods=METHODS, preprocess=counted, **OPTIONS)
    assert counted.count == passes["total"] == again["forward_passes"]["total"]
    assert again["summary"] == data["summary"]  # seeded: the same numbers


def test_json_holds_every_number_of_the_page(study):
    _, data, out = study
    written = json.loads((out / "report.json").read_text())
    assert written == json.loads(json.dumps(data))
    assert written["schema"] == "gradcam.report/1"
    assert set(written["curves"]) == {"deletion", "insertion"}
    band = written["curves"]["deletion"]["gradcam"]
    assert len(band["mean"]) == 5 and all(lo <= m <= hi for lo, m, hi in zip(band["low"], band["mean"], band["high"]))
    assert written["comparisons"]["deletion"]["test"] == "Wilcoxon signed-rank test"
    assert any("Wilcoxon signed-rank test" in sentence for sentence in written["verdict"])


def test_page_is_self_contained_and_complete(study):
    _, data, out = study
    text = (out / "report.html").read_text()
    check_page(text, images=5 * 6 + 3)  # photo and 5 maps per image; 3 plots
    for sentence in data["verdict"][:3]:
        assert sentence.replace("'", "&#x27;") in text
    assert "gaussian" in text and "sobel" in text and "95% bootstrap confidence interval" in text


def test_unreadable_files_are_listed_and_skipped(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray((IMAGES[0, :, :, 0] * 20).astype(np.uint8)).convert("RGB").save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 2, strides=2, name="conv", kernel_initializer=keras.initializers.Constant(0.1))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x), name="rgb")
    data = gradcam.report(model, [str(good), str(bad)], methods=["gradcam"], metrics=["deletion"], controls=[],
                          steps=2, resamples=50)
    assert [image["name"] for image in data["images"]] == ["good.png"]
    assert data["skipped"][0]["path"] == str(bad)
    assert any(sentence.startswith(f"Skipped {bad}") for sentence in data["verdict"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metrics": ["deletion", "faithfulness"]}, "Unknown metric 'faithfulness'; expected some of 'deletion'"),
        ({"methods": ["gradkam"]}, "Unknown method 'gradkam'"),
        ({"methods": []}, "report needs at least one method"),
        ({"controls": ["noise"]}, "Unknown control 'noise'"),
        ({"test": "t"}, "test must be one of 'wilcoxon', 'bootstrap'; got 't'"),
        ({"steps": 0}, "steps must be a positive integer; got 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        gradcam.report(make_functional(), IMAGES, **kwargs)
    assert message in str(error.value)


def test_no_images_and_no_softmax(tmp_path):
    with pytest.raises(ValueError, match="report needs at least one readable image; .*missing.png"):
        gradcam.report(make_functional(), [str(tmp_path / "missing.png")])
    with pytest.raises(ValueError, match=r"images is an empty batch \(shape \(0, 4, 4, 1\)\)"):
        gradcam.report(make_functional(), np.zeros((0, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="average_drop needs a model that ends in a softmax.*model 'tiny' does not"):
        gradcam.report(make_functional(activation=None), IMAGES)


def test_images_studied_in_batches_give_the_same_numbers(study):
    """Each image's numbers come from its own batch: batches of 2 give the values of one
    batch of 5, except Smooth MPRT, whose noise is drawn per batch; the forward passes are
    the same."""
    model, data, _ = study
    batched = gradcam.report(model, IMAGES, methods=METHODS, batch_size=2, **OPTIONS)
    for name in data["values"]:
        for metric, values in data["values"][name].items():
            if metric != "smooth_mprt":
                np.testing.assert_allclose(np.array(batched["values"][name][metric], float),
                                           np.array(values, float), rtol=1e-5, atol=1e-6, err_msg=f"{name} {metric}")
    assert batched["values"]["gradcam"]["smooth_mprt"] != data["values"]["gradcam"]["smooth_mprt"]
    assert batched["forward_passes"] == data["forward_passes"]
    assert batched["images"] == data["images"]
