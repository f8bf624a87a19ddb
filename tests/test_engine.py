"""Grad-CAM maps of the tiny hand-weighted models against hand computations."""

import keras
import numpy as np
import pytest

from conftest import (
    LOGIT_MAP_0, LOGIT_MAP_1, LOGITS, OUTPUT_MAP_0, PROBAS, X, assert_map, make_functional,
    make_nested, make_separate_softmax, make_sequential,
)
from gradcam import GradCAM
from gradcam.engine import find_softmax


@pytest.mark.parametrize(
    "make", [make_functional, make_sequential, make_nested, make_separate_softmax],
    ids=["functional", "sequential", "nested", "softmax-layer"],
)
def test_logit_maps_match_hand_computation(make):
    result = GradCAM(make()).compute(X, targets=[0, 1])
    assert result.heatmaps.shape == (1, 2, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)
    np.testing.assert_allclose(result.scores[0], LOGITS, atol=1e-5)
    np.testing.assert_allclose(result.probas[0], PROBAS, atol=1e-6)
    assert result.targets.tolist() == [[0, 1]]


def test_default_target_is_top_prediction(tiny):
    result = GradCAM(tiny).compute(X)
    assert result.targets.tolist() == [[0]]
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)


def test_output_score_differentiates_the_probability(tiny):
    result = GradCAM(tiny, score="output").compute(X, targets=[0])
    assert_map(result.heatmaps[0, 0], OUTPUT_MAP_0)
    np.testing.assert_allclose(result.scores[0, 0], PROBAS[0], atol=1e-6)


def test_model_without_softmax_explains_its_output_and_has_no_proba():
    model = make_functional(activation=None)
    assert find_softmax(model) is None
    result = GradCAM(model).compute(X, targets=[0])
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    np.testing.assert_allclose(result.scores[0, 0], LOGITS[0], atol=1e-5)
    assert result.probas is None
    with pytest.raises(ValueError, match="score='logit' needs a model that ends in a softmax"):
        GradCAM(model, score="logit")


def test_softmax_is_found_without_changing_the_model(tiny):
    layer, where = find_softmax(tiny)
    assert (layer.name, where) == ("predictions", "activation")
    before = tiny.get_layer("predictions").activation
    GradCAM(tiny).compute(X)
    assert tiny.get_layer("predictions").activation is before
    assert "call" not in vars(tiny.get_layer("conv"))
    np.testing.assert_allclose(tiny.predict(X, verbose=0)[0], PROBAS, atol=1e-6)


def test_frozen_nested_base_still_gets_gradients():
    result = GradCAM(make_nested(trainable=False)).compute(X, targets=[0])
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)


def test_all_zero_map_stays_zero_not_nan(tiny):
    maps = GradCAM(tiny).heatmaps(X, targets=[1])
    assert np.isfinite(maps).all() and not maps.any()


def test_several_targets_equal_single_targets(two_conv):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    cam = GradCAM(two_conv, layer="conv1")
    together = cam.heatmaps(x, targets=[2, 0, 1])
    for k, target in enumerate([2, 0, 1]):
        np.testing.assert_allclose(together[0, k], cam.heatmaps(x, targets=[target])[0, 0], atol=1e-6)


def test_batch_equals_one_at_a_time_and_any_batch_size(two_conv):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (5, 8, 8, 3)).astype(np.float32)
    cam = GradCAM(two_conv)
    batched = cam.compute(x, targets=[0, 2], batch_size=2)
    assert batched.heatmaps.shape == (5, 2, 8, 8)
    for n in range(5):
        single = cam.compute(x[n], targets=[0, 2])
        np.testing.assert_allclose(batched.heatmaps[n], single.heatmaps[0], atol=1e-6)
        np.testing.assert_allclose(batched.scores[n], single.scores[0], atol=1e-6)
    top = cam.compute(x)
    np.testing.assert_array_equal(top.targets[:, 0], top.outputs.argmax(axis=1))


def test_per_image_targets(two_conv):
    x = np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    cam = GradCAM(two_conv)
    result = cam.compute(x, targets=np.array([[0], [2]]))
    assert result.targets.tolist() == [[0], [2]]
    np.testing.assert_allclose(result.heatmaps[1, 0], cam.heatmaps(x[1:], targets=[2])[0, 0], atol=1e-6)


def test_compiled_once_for_repeated_calls(two_conv):
    cam = GradCAM(two_conv)
    x = np.zeros((3, 8, 8, 3), np.float32)
    for batch in (x, x[:1], x[:2], x):
        cam.heatmaps(batch)
        cam.heatmaps(batch, targets=[1])
    assert cam.trace_count == 1
    cam.heatmaps(x, targets=[0, 1])
    cam.heatmaps(x[:1], targets=[0, 1, 2])
    assert cam.trace_count == 2  # one graph for one target, one for several


def test_unknown_spatial_size_model_takes_several_sizes():
    model = make_functional(input_shape=(None, None, 1), name="any_size")
    cam = GradCAM(model)
    assert_map(cam.heatmaps(X, targets=[0])[0, 0], LOGIT_MAP_0)
    big = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    assert cam.heatmaps(big).shape == (1, 1, 3, 3)
    assert cam.trace_count == 1


def test_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = make_functional(name="tiny_fp16")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv").compute_dtype == "float16"
    result = GradCAM(model).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0, atol=2e-3)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)


def test_engine_does_not_modify_the_model(tiny):
    weights = [w.copy() for w in tiny.get_weights()]
    GradCAM(tiny).compute(X, targets=[0, 1])
    for before, after in zip(weights, tiny.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_channel_weights_are_mean_gradients():
    gradients = np.arange(2 * 1 * 2 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 2, 3)
    weights = GradCAM.channel_weights(None, gradients).numpy()
    np.testing.assert_allclose(weights, gradients.mean(axis=(2, 3)))


def test_explain_builds_explanations(tiny):
    (expl,) = GradCAM(tiny, class_names=["cat", "dog"]).explain(X, targets=["dog", 0])
    assert expl.layer == "conv"
    assert [(t.target, t.name) for t in expl.targets] == [(1, "dog"), (0, "cat")]
    assert expl.targets[1].label == "0 (cat)"
    assert_map(expl.targets[1].heatmap, LOGIT_MAP_0)
    assert expl.image.mode == "RGB" and expl.image.size == (4, 4)
    # the image is rebuilt from the doc: values already in 0..255 are kept
    assert expl.image.getpixel((3, 3)) == (15, 15, 15) and expl.image.getpixel((1, 0)) == (1, 1, 1)


def test_explain_checks_images_before_running_the_model(tiny):
    from PIL import Image

    cam = GradCAM(tiny)
    with pytest.raises(ValueError, match="images has 2 entries for 1 images"):
        cam.explain(X, images=[Image.new("RGB", (4, 4))] * 2)
    assert cam.trace_count == 0
