"""``gradcam explain|evaluate --target``'s forms besides a class (segmentation:CATEGORY,
output, output:INDEX, contrast:CLASS) and ``--similar-to IMAGE``, on tiny model files: the
scores recorded equal the targets' formulas on the model's own outputs, the summaries
and overlays are named after the targets, bad forms are usage errors before the model
loads; and the empty-map warning speaks of the explained score for such targets."""

import csv
import os
import warnings

import keras
import numpy as np
import pytest
from keras import ops

import gradcam
from gradcam.cli import stream
from gradcam.cli.arguments import UsageError
from gradcam.cli.model import parse_target_spec
from gradcam.methods.base import EmptyMapWarning
from gradcam.targets import Contrast, Output, Segmentation
from helpers.cli import photo, run, summary
from helpers.tiny import X, make_functional

SIZE = (8, 8)


def _save(model, path):
    with warnings.catch_warnings():  # Keras's saving code trips a NumPy 2 deprecation
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        model.save(path)
    return str(path)


def _trunk(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    return inputs, x


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny model files: a segmenter (N, 8, 8, 3), a 5-class classifier without softmax,
    an embedding model (N, 6) and a softmax classifier."""
    folder = tmp_path_factory.mktemp("models")
    inputs, x = _trunk(1)
    segmenter = keras.Model(inputs, keras.layers.Conv2D(3, 1, name="classifier")(x))
    inputs, x = _trunk(2)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.Model(inputs, keras.layers.Dense(5, name="logits")(pooled))
    inputs, x = _trunk(3)
    embedder = keras.Model(inputs, keras.layers.Dense(6, name="embedding")(keras.layers.GlobalAveragePooling2D()(x)))
    inputs, x = _trunk(4)
    softmax = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    return {name: _save(model, folder / f"{name}.keras") for name, model in
            (("segmenter", segmenter), ("classifier", classifier), ("embedder", embedder), ("softmax", softmax))}


@pytest.fixture
def image(tmp_path):
    return photo(tmp_path / "in" / "cat.png", size=(20, 16))


def _outputs(model_file, path):
    model = keras.models.load_model(model_file)
    return keras.ops.convert_to_numpy(model(gradcam.image_from_path(path, SIZE)))[0]


def _targets(out):
    return [(t["name"], t["index"], t["score"], t["overlay"]) for t in summary(out)["images"][0]["targets"]]


# -- the forms, without a model ------------------------------------------------------------
@pytest.mark.parametrize("value, kind, argument", [
    ("segmentation:12", Segmentation, 12), ("segmentation:tiger cat", Segmentation, "tiger cat"),
    ("output", Output, None), ("output:3", Output, 3), ("contrast:281", Contrast, 281),
    ("Contrast: tabby", Contrast, "tabby"),
])
def test_forms_parse_to_target_objects(value, kind, argument):
    target = parse_target_spec(value)
    assert type(target) is kind
    assert {Segmentation: "category", Output: "unit", Contrast: "target"}[kind] and \
        getattr(target, {Segmentation: "category", Output: "unit", Contrast: "target"}[kind]) == argument


@pytest.mark.parametrize("value, expected", [("281", 281), ("-1", -1), ("tiger cat", "tiger cat"),
                                             ("outputs", "outputs"), ("segmentation", "segmentation")])
def test_classes_stay_indices_and_names(value, expected):
    assert parse_target_spec(value) == expected


@pytest.mark.parametrize("value", ["output:x", "output:-1", "segmentation:", "contrast: "])
def test_bad_forms_name_the_value_and_the_accepted_forms(value):
    with pytest.raises(UsageError) as caught:
        parse_target_spec(value)
    message = str(caught.value)
    assert message.startswith(f"--target: {value!r}: ")
    assert "segmentation:CATEGORY, output, output:INDEX, contrast:CLASS" in message


@pytest.mark.parametrize("argv, expected", [
    (["--target", "output:two"], "--target: 'output:two': output:INDEX needs a unit index"),
    (["--target", "segmentation:"], "--target: 'segmentation:': segmentation: needs a class index or name"),
    (["--similar-to", "missing.png"], "--similar-to 'missing.png': no such image file."),
])
def test_bad_forms_are_usage_errors_before_the_model_loads(tmp_path, capsys, monkeypatch, models, image, argv,
                                                           expected):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(stream, "load_model", no_loading)
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", tmp_path / "out",
                            *argv)
    assert status == 2
    assert stderr.startswith(f"gradcam: error: {expected}"), stderr
    assert not (tmp_path / "out").exists()


def test_segmentation_category_checked_against_the_class_names_file(tmp_path, capsys, models, image):
    names = tmp_path / "names.txt"
    names.write_text("sky\nroad\ncar\n")
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", tmp_path / "out",
                            "--class-names", names, "--target", "segmentation:tree")
    assert status == 2
    assert stderr.startswith("gradcam: error: --target: 'segmentation:tree': Unknown class name 'tree'."), stderr


# -- explain -------------------------------------------------------------------------------
def test_segmentation_and_output_scores_names_and_overlays(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", out, "--layer", "conv",
                            "--target", "segmentation:1", "--target", "output", "--target", "output:5",
                            "--format", "png")
    assert status == 0, stderr
    y = _outputs(models["segmenter"], image)  # (8, 8, 3)
    top = y.argmax(-1)
    expected = [("segmentation of 1", float(y[..., 1][top == 1].sum()), "cat.segmentation_of_1.gradcam.png"),
                ("output", float(y.sum()), "cat.output.gradcam.png"),
                ("output 5", float(y.reshape(-1)[5]), "cat.output_5.gradcam.png")]
    recorded = _targets(out)
    assert [(name, index, overlay) for name, index, _, overlay in recorded] == [
        (name, -1, overlay) for name, _, overlay in expected]
    np.testing.assert_allclose([score for _, _, score, _ in recorded], [score for _, score, _ in expected],
                               rtol=1e-4, atol=1e-4)
    for _, _, overlay in expected:
        assert (out / overlay).is_file()
    assert summary(out)["targets"] == ["segmentation of 1", "output", "output 5"]
    with open(out / "summary.csv", newline="", encoding="utf-8") as file:
        text = file.read()
    assert "segmentation of 1" in text and "output 5" in text


def test_contrast_score_is_finer_cam_against_the_three_closest(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["classifier"], "--out", out,
                            "--target", "contrast:2", "--target", "2", "--format", "png")
    assert status == 0, stderr
    y = _outputs(models["classifier"], image).astype(np.float64)
    others = [j for j in np.argsort(np.abs(y - y[2]), kind="stable") if j != 2][:3]
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    contrast = sum(p[j] * (y[2] - y[j]) for j in others) / sum(p[j] for j in others)
    (c_name, c_index, c_score, c_overlay), (name, index, score, overlay) = _targets(out)
    assert (c_name, c_index, c_overlay) == ("2 vs closest", 2, "cat.contrast_2_vs_closest.gradcam.png")
    assert (name, index, overlay) == (None, 2, "cat.2.gradcam.png")  # a class keeps its file name
    np.testing.assert_allclose([c_score, score], [contrast, y[2]], rtol=1e-4, atol=1e-5)


def test_duplicates_are_merged_with_a_warning(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", out, "--layer", "conv",
                            "--target", "output", "--target", "segmentation:2", "--target", "output",
                            "--target", "segmentation:2", "--no-overlays")
    assert status == 0, stderr
    assert "--target 'output' is the same target, given already as 'output': it is explained once." in stderr
    assert "--target 'segmentation:2' is the same target" in stderr
    assert [t[0] for t in _targets(out)] == ["output", "segmentation of 2"]


def test_classes_and_their_duplicates_stay_as_they_were(tmp_path, capsys, models, image):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\nd\ne\n")
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["classifier"], "--out", out,
                            "--class-names", names, "--target", "3", "--target", "d", "--no-overlays")
    assert status == 0, stderr
    assert "--target 'd' is class 3, given already as '3': it is explained once." in stderr
    assert [(t[0], t[1]) for t in _targets(out)] == [("d", 3)]
    assert summary(out)["targets"] == [3]


def test_similar_to_scores_the_cosine_with_the_reference_output(tmp_path, capsys, models, image):
    other = photo(tmp_path / "in" / "ref.png", size=(12, 12), seed=7)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, other, "--model", models["embedder"], "--out", out,
                            "--similar-to", other, "--target", "output:1", "--format", "png")
    assert status == 0, stderr
    reference = _outputs(models["embedder"], other)
    by_path = {os.path.basename(item["path"]): item["targets"] for item in summary(out)["images"]}
    for name, path in (("cat.png", image), ("ref.png", other)):
        y = _outputs(models["embedder"], path)
        cosine = float(y @ reference / np.linalg.norm(y) / np.linalg.norm(reference))
        assert [(t["name"], t["overlay"]) for t in by_path[name]] == [
            ("output 1", f"{name[:-4]}.output_1.gradcam.png"), ("similarity", f"{name[:-4]}.similarity.gradcam.png")]
        np.testing.assert_allclose([t["score"] for t in by_path[name]], [y[1], cosine], rtol=1e-4, atol=1e-5)
    assert by_path["ref.png"][1]["score"] == pytest.approx(1.0, abs=1e-5)


def test_similar_to_a_softmax_model_asks_for_score_output(tmp_path, capsys, models, image):
    status, _, stderr = run(capsys, "explain", image, "--model", models["softmax"], "--out", tmp_path / "out",
                            "--similar-to", image)
    assert status == 2
    assert "--similar-to compares the model's outputs, and the model ends in a softmax: give --score output" in stderr


def test_similar_to_a_per_pixel_output_is_a_usage_error(tmp_path, capsys, models, image):
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", tmp_path / "out",
                            "--layer", "conv", "--similar-to", image)
    assert status == 2
    assert f"--similar-to needs a model with one (batch, D) output; {models['segmenter']!r} returns (1, 8, 8, 3)." \
        in stderr


def test_bad_target_for_the_model_is_a_usage_error(tmp_path, capsys, models, image):
    status, _, stderr = run(capsys, "explain", image, "--model", models["classifier"], "--out", tmp_path / "out",
                            "--target", "segmentation:1")
    assert status == 2
    assert "gradcam: error: --target: Segmentation target: model " in stderr
    assert "it needs a per-pixel output (batch, height, width, classes)." in stderr


# -- evaluate ------------------------------------------------------------------------------
def test_evaluate_scores_and_names_the_targets(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "evaluate", image, "--model", models["segmenter"], "--out", out, "--layer", "conv",
                            "--target", "output:5", "--metric", "average_drop")
    assert status == 0, stderr
    with open(out / "metrics.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    model = keras.models.load_model(models["segmenter"])
    doc = gradcam.image_from_path(image, SIZE)
    result = gradcam.GradCAM(model).compute(doc, targets=Output(5))
    expected = gradcam.metrics.average_drop(model, doc, result.heatmaps[:, 0], Output(5))
    assert [(r["target"], r["target_name"], r["metric"]) for r in rows] == [("-1", "output 5", "average_drop")]
    assert float(rows[0]["value"]) == pytest.approx(float(expected[0]), abs=1e-5)


# -- the empty-map warning -----------------------------------------------------------------
def _flat_score(y):
    return ops.sum(y * 0.0, axis=-1)


def test_empty_map_warning_speaks_of_the_explained_score_for_other_targets():
    cam = gradcam.GradCAM(make_functional(), layer="conv")
    with pytest.warns(EmptyMapWarning) as caught:
        cam.compute(X, targets=_flat_score)
    text = str(caught[0].message)
    assert "raises the explained score by this method's measure" in text
    assert "of their class" not in text


def test_empty_map_warning_speaks_of_the_class_for_class_targets():
    cam = gradcam.GradCAM(make_functional(activation=None), layer="conv", score="output")
    with pytest.warns(EmptyMapWarning) as caught:
        cam.compute(np.zeros_like(X) - 100.0, targets=0)
    assert "raises the output of their class by this method's measure" in str(caught[0].message)


def test_an_earlier_runs_named_overlay_is_not_overwritten(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    argv = ["explain", image, "--model", models["segmenter"], "--out", out, "--layer", "conv", "--target", "output"]
    assert run(capsys, *argv)[0] == 0
    for name in ("heatmaps.npz", "summary.csv", "summary.json"):
        os.unlink(out / name)
    status, _, stderr = run(capsys, *argv)
    assert status == 2
    assert f"'{out / 'cat.output.gradcam.jpg'}' exists" in stderr
