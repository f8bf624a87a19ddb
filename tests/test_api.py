"""explain_prediction / show_prediction: results, messages, errors and the engine cache.

Run once per backend: ``KERAS_BACKEND=jax pytest tests/test_api.py`` (likewise
``torch`` and ``tensorflow``).
"""

import gc
import inspect
import re
import warnings
import weakref

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from helpers.tiny import LOGIT_MAP_0, PROBAS, X, assert_map, for_method, make_functional, make_nested, tracing_count
from gradcam.api import ENGINES


def test_explain_prediction_top_target(tiny):
    expl = gradcam.explain_prediction(tiny, X)
    assert expl.layer == "conv"
    (target,) = expl.targets
    assert (target.target, target.name) == (0, None)
    assert target.proba == pytest.approx(PROBAS[0], abs=1e-6)
    assert_map(target.heatmap, LOGIT_MAP_0)
    assert np.asarray(expl.heatmap).tolist() == [[0, 51], [204, 255]]


def test_explain_prediction_accepts_one_unbatched_image_and_an_image():
    picture = Image.new("RGB", (40, 40), "red")
    with pytest.warns(UserWarning, match="all zero") as record:  # class 1's map is empty
        expl = gradcam.explain_prediction(
            make_functional(name="unbatched"), X[0], targets=[1, 0], image=picture
        )
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert [t.target for t in expl.targets] == [1, 0]
    assert expl.image.size == (40, 40)
    assert format(gradcam.format_as_image(expl).size) == "(40, 40)"


def test_nested_layer_by_path():
    expl = gradcam.explain_prediction(make_nested(), X, layer="base/conv", targets=[0])
    assert expl.layer == "base/conv"
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)


def test_show_prediction_prints_the_top_prediction(capsys):
    tiny = make_functional(name="shown")
    overlay = gradcam.show_prediction(tiny, X, class_names=["cat", "dog"], alpha_limit=255.0)
    assert capsys.readouterr().out == "Taking top prediction: 0 (cat)\n"
    assert overlay.mode == "RGBA" and overlay.size == (4, 4)
    with pytest.warns(UserWarning, match="all zero"):
        gradcam.show_prediction(tiny, X, targets=[1], class_names=["cat", "dog"])
    assert capsys.readouterr().out == ""


def test_engine_is_cached_per_model_method_and_layer():
    tiny = make_functional(name="cached")
    first = ENGINES.get(tiny)
    assert ENGINES.get(tiny) is first
    assert ENGINES.get(tiny, layer="conv") is not first
    gradcam.explain_prediction(tiny, X)
    gradcam.explain_prediction(tiny, X, targets=[0])
    gradcam.explain_prediction(tiny, X, preprocess=lambda x: x)  # one engine for any preprocess
    assert list(first._compiled) == [("forward", False)]  # one computation, compiled once
    if keras.backend.backend() == "tensorflow":
        assert tracing_count(first) == 1
    assert len(ENGINES.engines(tiny)) == 2
    plus = ENGINES.get(tiny, "gradcam++")
    assert isinstance(plus, gradcam.GradCAMPlusPlus) and ENGINES.get(tiny, "gradcam++") is plus
    assert type(first) is gradcam.GradCAM and len(ENGINES.engines(tiny)) == 3
    with pytest.warns(DeprecationWarning, match="engine_for is deprecated"):
        assert gradcam.api.engine_for(tiny, method="gradcam++") is plus


def test_method_argument():
    tiny = make_functional(name="methods")
    for name, cls in gradcam.METHODS.items():
        model = for_method(name, tiny)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gradcam.EmptyMapWarning)
            expl = gradcam.explain_prediction(model, X, targets=[0, 1], method=name)
            expected = cls(model).compute(X, targets=[0, 1])
        for k in range(2):
            np.testing.assert_array_equal(expl.targets[k].heatmap, expected.heatmaps[0, k], err_msg=name)
    overlay = gradcam.show_prediction(tiny, X, targets=[0], method="gradcam++")
    expl = gradcam.explain_prediction(tiny, X, targets=[0], method="gradcam++")
    assert_map(expl.targets[0].heatmap, np.array([[0, 0], [0, 1]], np.float32))  # tests/test_methods.py
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(gradcam.format_as_image(expl)))
    with pytest.raises(ValueError, match=r"Unknown method 'gradcam\+'; the methods are 'gradcam', .*Did you mean"):
        gradcam.explain_prediction(tiny, X, method="gradcam+")
    with pytest.raises(ValueError, match=r"batch of 2 .*Use gradcam.AblationCAM\(model\).explain\(docs\)"):
        gradcam.explain_prediction(tiny, np.concatenate([X, X]), method="ablationcam")


def test_method_options_reach_the_method():
    tiny = make_functional(name="options")
    # The tiny model's conv has two channels; Score-CAM scoring only the one of largest
    # variance gives another map than scoring both.
    one = gradcam.explain_prediction(tiny, X, targets=[0], method="scorecam", method_options={"max_channels": 1})
    both = gradcam.explain_prediction(tiny, X, targets=[0], method="scorecam")
    expected = gradcam.ScoreCAM(tiny, max_channels=1).compute(X, targets=[0]).heatmaps[0, 0]
    np.testing.assert_array_equal(one.targets[0].heatmap, expected)
    assert np.abs(both.targets[0].heatmap - expected).max() > 0.02
    engine = ENGINES.get(tiny, "scorecam", options={"max_channels": 1})
    assert engine.max_channels == 1 and engine.perturbation_batch == 32
    assert ENGINES.get(tiny, "scorecam", options={"max_channels": 1}) is engine
    assert ENGINES.get(tiny, "scorecam") is not engine
    overlay = gradcam.show_prediction(tiny, X, targets=[0], method="scorecam", method_options={"max_channels": 1})
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(gradcam.format_as_image(one)))


def test_smoothing_reaches_the_engine_per_call():
    tiny = make_functional(name="smoothing")
    engine = gradcam.GradCAM(tiny)
    for smoothing in ({"eigen_smooth": True}, {"aug_smooth": True}, {"eigen_smooth": True, "aug_smooth": True}):
        expl = gradcam.explain_prediction(tiny, X, targets=[0], **smoothing)
        expected = engine.compute(X, targets=[0], **smoothing).heatmaps[0, 0]
        np.testing.assert_allclose(expl.targets[0].heatmap, expected, atol=1e-6)
        assert np.abs(expected - engine.compute(X, targets=[0]).heatmaps[0, 0]).max() > 1e-3
        overlay = gradcam.show_prediction(tiny, X, targets=[0], **smoothing)
        np.testing.assert_array_equal(np.asarray(overlay), np.asarray(gradcam.format_as_image(expl)))
    # one cached engine serves every smoothing, as the options are per call
    assert ENGINES.get(tiny, "gradcam") is ENGINES.get(tiny, "gradcam")


@pytest.mark.parametrize("argument, value", [("eigen_smooth", "yes"), ("aug_smooth", 1)])
def test_bad_smoothing_values_name_the_argument(argument, value):
    with pytest.raises(gradcam.checks.ArgumentError) as raised:
        gradcam.explain_prediction(make_functional(name="bad_smoothing"), X, **{argument: value})
    assert raised.value.argument == argument
    assert str(raised.value) == f"{argument} must be True or False; got {value!r}."


@pytest.mark.parametrize("method, options, message", [
    ("scorecam", {"max_channel": 2},
     "method 'scorecam' has no option 'max_channel'; its options are 'perturbation_batch', 'max_channels'."),
    ("gradcam", {"max_channels": 2}, "method 'gradcam' has no option 'max_channels'; it takes none."),
    ("ablationcam", [("perturbation_batch", 2)], "method_options must be a dict or None; got list."),
    ("scorecam", {"max_channels": [2]},
     "method_options' values must be hashable (numbers, strings, None); got {'max_channels': [2]}."),
])
def test_bad_method_options_name_what_the_method_takes(method, options, message):
    with pytest.raises(TypeError) as raised:
        gradcam.explain_prediction(make_functional(name="bad_options"), X, method=method, method_options=options)
    assert str(raised.value) == message


def test_bad_method_option_values_are_the_methods_errors():
    with pytest.raises(ValueError, match="max_channels must be a positive integer; got 0"):
        gradcam.explain_prediction(make_functional(name="zero"), X, method="scorecam", method_options={"max_channels": 0})


def test_cache_does_not_keep_deleted_models_alive():
    model = make_functional(name="short_lived")
    gradcam.explain_prediction(model, X)
    assert ENGINES.engines(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_batch_of_several_images_points_to_gradcam_explain(tiny):
    with pytest.raises(ValueError, match=r"batch of 2 .*Use gradcam.GradCAM\(model\).explain\(docs\)"):
        gradcam.explain_prediction(tiny, np.concatenate([X, X]))


@pytest.mark.parametrize(
    "doc, error, message",
    [
        ("cat.jpg", TypeError, "doc must be an image array"),
        ([[1, 2], [3, 4]], ValueError, "rank 4"),
        (np.zeros((1, 5, 5, 1), np.float32), ValueError, r"expects images of shape \(4, 4, 1\).*\(1, 5, 5, 1\)"),
        (np.full((1, 4, 4, 1), np.nan, np.float32), ValueError, "16 NaN or infinite values"),
    ],
    ids=["not-array", "rank", "shape", "nan"],
)
def test_bad_docs(tiny, doc, error, message):
    with pytest.raises(error, match=message):
        gradcam.explain_prediction(tiny, doc)


def test_bad_targets(tiny):
    with pytest.raises(ValueError, match=r"Target 2 is out of range: the model has 2 classes \(0..1\)"):
        gradcam.explain_prediction(tiny, X, targets=[2])
    with pytest.raises(ValueError, match=r"Unknown class name 'dgo'. Close matches: 'dog'"):
        gradcam.explain_prediction(tiny, X, targets=["dgo"], class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="no class names"):
        gradcam.explain_prediction(tiny, X, targets=["dog"])
    with pytest.raises(TypeError, match="A target must be a class index"):
        gradcam.explain_prediction(tiny, X, targets=[1.0])
    with pytest.raises(ValueError, match="targets is empty"):
        gradcam.explain_prediction(tiny, X, targets=[])


def test_bad_layer_and_score(tiny):
    with pytest.raises(ValueError, match=r"No layer named 'cnv'.*'conv'"):
        gradcam.explain_prediction(tiny, X, layer="cnv")
    with pytest.raises(ValueError, match=r"Layer 'predictions' has output shape \(None, 2\)"):
        gradcam.explain_prediction(tiny, X, layer="predictions")
    with pytest.raises(ValueError, match="score must be one of 'auto', 'logit', 'output'; got 'proba'"):
        gradcam.explain_prediction(tiny, X, score="proba")


def test_imagenet_names_for_1000_class_models():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 2, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x), name="imagenet_like")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights: the maps may be empty
        expl = gradcam.explain_prediction(model, X, targets=["tiger cat", 243])
    assert [(t.target, t.name) for t in expl.targets] == [(282, "tiger cat"), (243, "bull mastiff")]
    with pytest.raises(ValueError, match=r"Unknown ImageNet class name 'tigre cat'. Close matches: 'tiger cat'"):
        gradcam.explain_prediction(model, X, targets=["tigre cat"])


def caffe_model():
    """A 3-class model of 16x16 RGB images with fixed weights, for caffe-style inputs."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="caffe")
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_preprocess_draws_on_the_raw_image_in_true_colours():
    from keras.applications import resnet50  # caffe style: BGR, mean-subtracted, in place

    raw = gradcam.image_from_path(gradcam.samples.path("chelsea"), image_shape=(16, 16))
    untouched = raw.copy()
    model = caffe_model()
    expl = gradcam.explain_prediction(model, raw, targets=[0, 2], preprocess=resnet50.preprocess_input)
    assert raw.tobytes() == untouched.tobytes() and raw.dtype == np.float32  # bit for bit
    np.testing.assert_array_equal(np.asarray(expl.image), raw[0].astype(np.uint8))
    preprocessed = gradcam.explain_prediction(model, resnet50.preprocess_input(raw.copy()), targets=[0, 2])
    for ours, theirs in zip(expl.targets, preprocessed.targets):
        np.testing.assert_array_equal(ours.heatmap, theirs.heatmap)
        assert (ours.target, ours.score, ours.proba) == (theirs.target, theirs.score, theirs.proba)
    # without preprocess=, the picture is rebuilt from the preprocessed array: not the photo
    assert not np.array_equal(np.asarray(preprocessed.image), raw[0].astype(np.uint8))

    overlay = gradcam.show_prediction(model, raw, targets=[0, 2], preprocess=resnet50.preprocess_input)
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(gradcam.format_as_image(expl)))
    assert raw.tobytes() == untouched.tobytes()


def test_engine_preprocess_on_a_batch():
    from keras.applications import resnet50

    raw = np.stack([
        gradcam.image_from_path(gradcam.samples.path(name), image_shape=(16, 16))[0]
        for name in ("chelsea", "coffee")
    ])
    untouched = raw.copy()
    model = caffe_model()
    cam = gradcam.GradCAM(model, preprocess=resnet50.preprocess_input)
    explanations = cam.explain(raw, targets=[1])
    assert raw.tobytes() == untouched.tobytes()
    for n, expl in enumerate(explanations):
        np.testing.assert_array_equal(np.asarray(expl.image), raw[n].astype(np.uint8))
    expected = gradcam.GradCAM(model).compute(resnet50.preprocess_input(raw.copy()), targets=[1])
    np.testing.assert_array_equal(cam.compute(raw, targets=[1]).heatmaps, expected.heatmaps)
    assert raw.tobytes() == untouched.tobytes()


def test_bad_preprocess(tiny):
    with pytest.raises(TypeError, match="preprocess must be a function or None; got 'caffe'"):
        gradcam.explain_prediction(tiny, X, preprocess="caffe")
    with pytest.raises(TypeError, match="preprocess must be a function or None; got 3"):
        gradcam.GradCAM(tiny, preprocess=3)
    with pytest.raises(ValueError, match=r"preprocess returned 2 images for 1; it must keep the batch"):
        gradcam.explain_prediction(tiny, X, preprocess=lambda x: np.concatenate([x, x]))
    made = r"expects images of shape \(4, 4, 1\).*preprocess made a batch of shape \(1, 2, 2, 1\)"
    with pytest.raises(ValueError, match=made):
        gradcam.explain_prediction(tiny, X, preprocess=lambda x: x[:, :2, :2])
    with pytest.raises(TypeError, match="the output of preprocess must be an array of numbers"):
        gradcam.explain_prediction(tiny, X, preprocess=lambda x: np.array([["a"]]))


def public_callables():
    """Every public function, class and public method of the package's namespace."""
    for name in gradcam.__all__:
        value = getattr(gradcam, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            yield name, value
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                documented = inspect.isfunction(attribute) or isinstance(attribute, (staticmethod, property))
                if documented and not member.startswith("_"):
                    yield f"{name}.{member}", getattr(value, member)
        if inspect.ismodule(value):
            for member in getattr(value, "__all__", [n for n in vars(value) if not n.startswith("_")]):
                attribute = getattr(value, member)
                if inspect.isfunction(attribute) and attribute.__module__ == value.__name__:
                    yield f"{name}.{member}", attribute


def test_raises_and_warns_sections_list_exceptions():
    """Napoleon renders a "Raises:" entry that does not start with a name and a colon as
    a literal field (":raises As explain_prediction() and format_as_image().:")."""
    bad = []
    for name, value in public_callables():
        doc = inspect.getdoc(value) or ""
        for section in re.finditer(r"^(Raises|Warns):\n((?:[ ]+.*\n?|\n)+)", doc, re.MULTILINE):
            entries = [line for line in section.group(2).splitlines() if line.strip()]
            indent = min(len(line) - len(line.lstrip()) for line in entries)
            for line in entries:
                entry = len(line) - len(line.lstrip()) == indent
                if entry and not re.match(r"^\s+[A-Z]\w*(Error|Exception|Warning|Interrupt)\b.*:", line):
                    bad.append(f"{name}: {line.strip()}")
        if re.search(r"^\w+ and \w+: as for", doc, re.MULTILINE):
            bad.append(f"{name}: a shared 'Args and Raises: as for' section")
    assert bad == []
