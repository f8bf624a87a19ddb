"""explain_prediction / show_prediction: results, messages, errors and the engine cache."""

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

import gradcam
from conftest import LOGIT_MAP_0, PROBAS, X, assert_map, make_functional, make_nested
from gradcam.api import _ENGINES, engine_for


def test_explain_prediction_top_target(tiny):
    expl = gradcam.explain_prediction(tiny, X)
    assert expl.layer == "conv"
    (target,) = expl.targets
    assert (target.target, target.name) == (0, None)
    assert target.proba == pytest.approx(PROBAS[0], abs=1e-6)
    assert_map(target.heatmap, LOGIT_MAP_0)
    assert np.asarray(expl.heatmap).tolist() == [[0, 51], [204, 255]]


def test_explain_prediction_accepts_one_unbatched_image_and_an_image(tiny):
    picture = Image.new("RGB", (40, 40), "red")
    expl = gradcam.explain_prediction(tiny, X[0], targets=[1, 0], image=picture)
    assert [t.target for t in expl.targets] == [1, 0]
    assert expl.image.size == (40, 40)
    assert format(gradcam.format_as_image(expl).size) == "(40, 40)"


def test_nested_layer_by_path():
    expl = gradcam.explain_prediction(make_nested(), X, layer="base/conv", targets=[0])
    assert expl.layer == "base/conv"
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)


def test_show_prediction_prints_the_top_prediction(tiny, capsys):
    overlay = gradcam.show_prediction(tiny, X, class_names=["cat", "dog"], alpha_limit=255.0)
    assert capsys.readouterr().out == "Taking top prediction: 0 (cat)\n"
    assert overlay.mode == "RGBA" and overlay.size == (4, 4)
    gradcam.show_prediction(tiny, X, targets=[1], class_names=["cat", "dog"])
    assert capsys.readouterr().out == ""


def test_engine_is_cached_per_model_and_layer():
    tiny = make_functional(name="cached")
    first = engine_for(tiny)
    assert engine_for(tiny) is first
    assert engine_for(tiny, layer="conv") is not first
    gradcam.explain_prediction(tiny, X)
    gradcam.explain_prediction(tiny, X, targets=[1])
    assert engine_for(tiny).trace_count == 1


def test_cache_does_not_keep_deleted_models_alive():
    model = make_functional(name="short_lived")
    gradcam.explain_prediction(model, X)
    assert model in _ENGINES
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
    import keras

    inputs = keras.Input((4, 4, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 2, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x), name="imagenet_like")
    expl = gradcam.explain_prediction(model, X, targets=["tiger cat", 243])
    assert [(t.target, t.name) for t in expl.targets] == [(282, "tiger cat"), (243, "bull mastiff")]
    with pytest.raises(ValueError, match=r"Unknown ImageNet class name 'tigre cat'. Close matches: 'tiger cat'"):
        gradcam.explain_prediction(model, X, targets=["tigre cat"])
