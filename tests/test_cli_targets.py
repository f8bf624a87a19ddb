"""``gradcam explain|evaluate --target``'s forms besides a class (segmentation:CATEGORY,
output, output:INDEX, contrast:CLASS, box:X1,Y1,X2,Y2[:CATEGORY] with ``--decode``) and
``--similar-to IMAGE``, on tiny model files: the scores recorded equal the targets'
formulas on the model's own outputs, the summaries and overlays are named after the
targets, bad forms are usage errors before the model loads; and the empty-map warning
speaks of the explained score for such targets."""

import csv
import os
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

import gradcam
from gradcam.cli import stream
from gradcam.cli.arguments import UsageError
from gradcam.cli.model import BoxSpec, parse_target_spec
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
    kernel, bias = softmax.layers[-1].get_weights()
    softmax.layers[-1].set_weights([kernel * 8.0, bias])  # logits far apart: probabilities far from uniform
    inputs, x = _trunk(5)  # boxes (x1, y1, x1 + w, y1 + h) and scores of 64 anchors, one per pixel
    corner = keras.layers.Conv2D(2, 1, name="corner")(x) * 4.0 + 2.0
    size = keras.layers.Activation("softplus")(keras.layers.Conv2D(2, 1, name="size")(x)) * 4.0 + 1.0
    boxes = keras.layers.Reshape((64, 4))(keras.layers.Concatenate()([corner, corner + size]))
    detector = keras.Model(inputs, [boxes, keras.layers.Reshape((64, 2))(keras.layers.Conv2D(2, 1)(x))])
    return {name: _save(model, folder / f"{name}.keras") for name, model in
            (("segmenter", segmenter), ("classifier", classifier), ("embedder", embedder), ("softmax", softmax),
             ("detector", detector))}


@pytest.fixture
def image(tmp_path):
    return photo(tmp_path / "in" / "cat.png", size=(20, 16))


def _outputs(model_file, path):
    model = keras.models.load_model(model_file)
    outputs = model(gradcam.image_from_path(path, SIZE))
    if isinstance(outputs, (list, tuple)):
        return [keras.ops.convert_to_numpy(y)[0] for y in outputs]
    return keras.ops.convert_to_numpy(outputs)[0]


def _iou(boxes, box):
    """The IoU of each ``(x1, y1, x2, y2)`` row of ``boxes`` with ``box``, in numpy."""
    width = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    height = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    inter = width * height
    return inter / (area + (box[2] - box[0]) * (box[3] - box[1]) - inter)


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


@pytest.mark.parametrize("value, box, category", [
    ("box:1,2,5,7", (1.0, 2.0, 5.0, 7.0), 0), ("box: 0.5,1,2.5,3 :face", (0.5, 1.0, 2.5, 3.0), "face"),
    ("Box:-4,-4,4,4:3", (-4.0, -4.0, 4.0, 4.0), 3),
])
def test_box_form_parses_to_its_box_and_category(value, box, category):
    assert parse_target_spec(value) == BoxSpec(box, category, value)


@pytest.mark.parametrize("value, problem", [
    ("output:x", "output:INDEX needs a unit index"), ("output:-1", "output:INDEX needs a unit index"),
    ("segmentation:", "segmentation: needs a class index or name"), ("contrast: ", "contrast: needs a class"),
    ("box:1,2,3", "box: needs four numbers X1,Y1,X2,Y2"), ("box:1,2,x,4", "box: needs four numbers"),
    ("box:1,2,3,nan", "box: needs four numbers"), ("box:", "box: needs four numbers"),
    ("box:3,2,1,4", "box: needs X1 < X2 and Y1 < Y2 (left, top, right, bottom); got 3,2,1,4"),
    ("box:1,2,3,4:", "box: needs a category index or name after the second colon"),
    ("box:1,2,3,4:-1", "box: the category is an index from 0 or a name; got -1"),
])
def test_bad_forms_name_the_value_and_the_accepted_forms(value, problem):
    with pytest.raises(UsageError) as caught:
        parse_target_spec(value)
    message = str(caught.value)
    assert message.startswith(f"--target: {value!r}: {problem}")
    assert "segmentation:CATEGORY, output, output:INDEX, contrast:CLASS, box:X1,Y1,X2,Y2[:CATEGORY]" in message


@pytest.mark.parametrize("argv, expected", [
    (["--target", "output:two"], "--target: 'output:two': output:INDEX needs a unit index"),
    (["--target", "segmentation:"], "--target: 'segmentation:': segmentation: needs a class index or name"),
    (["--similar-to", "missing.png"], "--similar-to 'missing.png': no such image file."),
    (["--target", "box:1,2,3"], "--target: 'box:1,2,3': box: needs four numbers"),
    (["--target", "box:1,2,3,4:face"], "--target: 'box:1,2,3,4:face': the category 'face' is a name: give "
                                       "--class-names FILE"),
    (["--decode", "helpers.target_models:cell_box_decoder"],
     "--decode applies to --target box:X1,Y1,X2,Y2[:CATEGORY], which is not given."),
    (["--target", "box:1,2,3,4", "--decode", "helpers.target_models"],
     "--decode 'helpers.target_models': expected MODULE:FUNCTION, e.g. gradcam.models.face_detector:box_decoder."),
    (["--target", "box:1,2,3,4", "--decode", "no_such_module.sub:decode"],
     "--decode 'no_such_module.sub:decode': no module named 'no_such_module.sub' can be imported."),
    (["--method", "kpcacam", "--kernel", "gaussian"],
     "argument --kernel: expected one of sigmoid, rbf, poly, linear, cosine; got 'gaussian'"),
])
def test_bad_forms_are_usage_errors_before_the_model_loads(tmp_path, capsys, monkeypatch, models, image, argv,
                                                           expected):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(stream, "load_model", no_loading)
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", tmp_path / "out",
                            *argv)
    assert status == 2
    assert stderr.startswith(f"gradcam: error: {expected}") or f"gradcam explain: error: {expected}" in stderr, stderr
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


@pytest.mark.parametrize("score", ["auto", "output"])
def test_similar_to_a_softmax_model_compares_logits_or_with_score_output_probabilities(tmp_path, capsys, models,
                                                                                      image, score):
    other = tmp_path / "in" / "ref.png"  # one colour: its logits are far from the noise photo's
    Image.new("RGB", (12, 12), (250, 20, 90)).save(other)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, other, "--model", models["softmax"], "--out", out,
                            "--similar-to", other, "--score", score, "--no-overlays")
    assert status == 0, stderr
    model = keras.models.load_model(models["softmax"])
    dense = model.layers[-1]
    pooled = keras.Model(model.input, dense.input)

    def vector(path):  # the logits z = pooled W + b, or the probabilities softmax(z)
        z = keras.ops.convert_to_numpy(pooled(gradcam.image_from_path(path, SIZE)))[0].astype(np.float64)
        z = z @ keras.ops.convert_to_numpy(dense.kernel) + keras.ops.convert_to_numpy(dense.bias)
        return z if score == "auto" else np.exp(z) / np.exp(z).sum()

    reference = vector(other)
    by_path = {os.path.basename(item["path"]): item["targets"] for item in summary(out)["images"]}
    for name, path in (("cat.png", image), ("ref.png", other)):
        y = vector(path)
        cosine = y @ reference / np.linalg.norm(y) / np.linalg.norm(reference)
        assert [t["name"] for t in by_path[name]] == ["similarity"]
        assert by_path[name][0]["score"] == pytest.approx(cosine, abs=1e-5)
    assert by_path["ref.png"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    if score == "auto":  # the logits' cosine is not the probabilities'
        probabilities = [np.exp(vector(p)) / np.exp(vector(p)).sum() for p in (image, other)]
        assert by_path["cat.png"][0]["score"] != pytest.approx(
            probabilities[0] @ probabilities[1] / np.linalg.norm(probabilities[0]) / np.linalg.norm(probabilities[1]),
            abs=1e-3)


def test_similar_to_a_per_pixel_output_is_a_usage_error(tmp_path, capsys, models, image):
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", tmp_path / "out",
                            "--layer", "conv", "--similar-to", image)
    assert status == 2
    assert f"--similar-to needs a model with one (batch, D) output; {models['segmenter']!r} returns (1, 8, 8, 3)." \
        in stderr


@pytest.mark.parametrize("target, expected", [
    ("segmentation:1", ("gradcam: error: --target: Segmentation target: model ",
                        "it needs a per-pixel output (batch, height, width, classes).")),
    ("box:0,0,4,4", ("gradcam: error: --target: Box target: the outputs of model ",
                     "decode= a function that returns them.")),
])
def test_bad_target_for_the_model_is_a_usage_error(tmp_path, capsys, models, image, target, expected):
    status, _, stderr = run(capsys, "explain", image, "--model", models["classifier"], "--out", tmp_path / "out",
                            "--target", target)
    assert status == 2
    assert all(part in stderr for part in expected), stderr


# -- box: detectors --------------------------------------------------------------------
def test_box_explains_the_best_overlapping_predicted_box(tmp_path, capsys, models, image):
    boxes, scores = _outputs(models["detector"], image)  # (64, 4), (64, 2)
    query = np.round(boxes[37] + np.float32(0.05), 6)
    ious = _iou(boxes, query)
    anchor = ious.argmax()  # the predicted box that overlaps the query most
    assert ious.max() >= 0.5 and np.sort(ious)[-2] < ious.max() - 1e-3
    spec = ",".join(f"{v:.6f}" for v in query)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["detector"], "--out", out, "--layer", "conv",
                            "--target", f"box:{spec}:1", "--target", f"box:{spec}", "--format", "png")
    assert status == 0, stderr
    shown = tuple(round(float(v), 1) for v in np.asarray(query, np.float64).round(6))
    recorded = _targets(out)
    assert [(name, index) for name, index, _, _ in recorded] == [(f"box {shown}: 1", -1), (f"box {shown}: 0", -1)]
    np.testing.assert_allclose([score for _, _, score, _ in recorded], [scores[anchor, 1], scores[anchor, 0]],
                               rtol=1e-4, atol=1e-5)
    for _, _, _, overlay in recorded:
        assert overlay.startswith("cat.box_") and (out / overlay).is_file()


def test_box_category_names_come_from_class_names_on_a_model_with_several_outputs(tmp_path, capsys, models, image):
    boxes, scores = _outputs(models["detector"], image)
    names = tmp_path / "names.txt"
    names.write_text("background\nface\n")
    spec = ",".join(f"{v:.6f}" for v in boxes[5])
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["detector"], "--out", out, "--layer", "conv",
                            "--class-names", names, "--target", f"box:{spec}:face", "--no-overlays")
    assert status == 0, stderr
    ((name, index, score, _),) = _targets(out)
    assert name.endswith(": 1 (face)") and index == -1
    assert score == pytest.approx(float(scores[_iou(boxes, boxes[5]).argmax(), 1]), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("argv, expected", [
    (["--target", "box:0,0,1,1:2"], "--target: box category 2 is out of range: the detector scores 2 categories (0..1)."),
    (["--target", "box:0,0,1,1", "--class-names", "NAMES"],
     "--class-names: 'NAMES' has 3 names; the detector scores 2 categories: one name per category"),
    (["--target", "box:0,0,1,1:sky", "--class-names", "NAMES"],
     "--target: 'box:0,0,1,1:sky': Unknown class name 'sky'."),
])
def test_box_errors_after_the_model_loads(tmp_path, capsys, models, image, argv, expected):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    argv = [str(names) if a == "NAMES" else a for a in argv]
    status, _, stderr = run(capsys, "explain", image, "--model", models["detector"], "--out", tmp_path / "out",
                            "--layer", "conv", *argv)
    assert status == 2
    assert stderr.strip().splitlines()[-1].startswith(f"gradcam: error: {expected.replace('NAMES', str(names))}"), \
        stderr


def test_decode_turns_the_outputs_into_boxes_and_scores(tmp_path, capsys, models, image):
    y = _outputs(models["segmenter"], image)  # (8, 8, 3): pixel (i, j) is the box (j, i, j + 1, i + 1)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", image, "--model", models["segmenter"], "--out", out, "--layer", "conv",
                            "--target", "box:2.1,3,3.1,4:2", "--decode", "helpers.target_models:cell_box_decoder",
                            "--no-overlays")
    assert status == 0, stderr
    ((name, index, score, _),) = _targets(out)
    assert (name, index) == ("box (2.1, 3.0, 3.1, 4.0): 2", -1)
    assert score == pytest.approx(float(y[3, 2, 2]), rel=1e-4, abs=1e-5)  # IoU 0.9 / 1.1 with pixel (3, 2)


@pytest.mark.parametrize("decode, expected", [
    ("helpers.target_models:no_such_function",
     "--decode 'helpers.target_models:no_such_function': module 'helpers.target_models' has no function "
     "'no_such_function'."),
    ("gradcam.models.face_detector:box_decoder",
     "--decode 'gradcam.models.face_detector:box_decoder': Expected a model built by face_detector.PNet"),
    ("helpers.target_models:decode_grid",  # a decoder itself, not a function of the model that returns one
     "--decode 'helpers.target_models:decode_grid': "),
    ("helpers.target_models:cell_box_decoder",  # on the detector: its decoder fails on a pair of outputs
     "--decode: the function failed on the model's outputs"),
])
def test_decode_errors_after_the_model_loads(tmp_path, capsys, models, image, decode, expected):
    model = models["detector" if decode.endswith("cell_box_decoder") else "segmenter"]
    status, _, stderr = run(capsys, "explain", image, "--model", model, "--out", tmp_path / "out",
                            "--layer", "conv", "--target", "box:0,0,1,1", "--decode", decode)
    assert status == 2
    assert f"gradcam: error: {expected}" in stderr, stderr


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
    text = str(caught[0].message)
    assert "raises the output of their class by this method's measure" in text
    assert "Try another layer (layer=...)." in text  # score='output' would change nothing


@pytest.mark.parametrize("targets, score", [
    ([gradcam.targets.Class(0, score="output"), 0], "the score of their class"),
    ([0], "the logit of their class"),
    ([gradcam.targets.Output()], "the explained score"),
])
def test_empty_map_warning_names_the_score_the_targets_read(targets, score):
    from helpers.tiny import make_flatten

    cam = gradcam.GradCAM(make_flatten())  # ends in a softmax: its maps of the logits are all zero
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cam.compute(X, targets=targets)
    texts = [str(w.message) for w in caught if w.category is EmptyMapWarning]
    assert texts, "no empty map"
    assert f"raises {score} by this method's measure" in texts[0]
    assert "Try score='output' or another layer (layer=...)." in texts[0]


def test_an_earlier_runs_named_overlay_is_not_overwritten(tmp_path, capsys, models, image):
    out = tmp_path / "out"
    argv = ["explain", image, "--model", models["segmenter"], "--out", out, "--layer", "conv", "--target", "output"]
    assert run(capsys, *argv)[0] == 0
    for name in ("heatmaps.npz", "summary.csv", "summary.json"):
        os.unlink(out / name)
    status, _, stderr = run(capsys, *argv)
    assert status == 2
    assert f"'{out / 'cat.output.gradcam.jpg'}' exists" in stderr
