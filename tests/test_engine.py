"""The engine (the method template, with Grad-CAM): maps of the tiny hand-weighted models
against hand computations, and what every engine does (targets, batches, compiling,
preprocess, explain, empty maps, subclassed models).

Run once per backend: ``KERAS_BACKEND=jax pytest tests/test_engine.py`` (likewise
``torch`` and ``tensorflow``).
"""

import logging
import warnings

import keras
import numpy as np
import pytest

from helpers.tiny import (
    FLATTEN_OUTPUT_MAP_0, LOGIT_MAP_0, LOGIT_MAP_1, LOGITS, OUTPUT_MAP_0, PROBAS, X, assert_map,
    make_flatten, make_functional, make_nested, make_separate_softmax, make_sequential,
    make_subclassed, tracing_count,
)
import gradcam
from gradcam import GradCAM, backend
from gradcam.capture import capture, find_softmax
from gradcam.methods.base import Capture, EmptyMapWarning
from helpers.method_models import make_residual

EMPTY_WARNING = "maps at layer .* are all zero"
BACKEND = keras.backend.backend()
COUNTS_TRACES = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="counts tf.function traces: JAX compiles once per input shape, PyTorch runs eagerly",
)


@pytest.mark.parametrize(
    "make", [make_functional, make_sequential, make_nested, make_separate_softmax],
    ids=["functional", "sequential", "nested", "softmax-layer"],
)
def test_logit_maps_match_hand_computation(make):
    with pytest.warns(UserWarning, match=EMPTY_WARNING):  # class 1's map is empty
        result = GradCAM(make()).compute(X, targets=[0, 1])
    assert result.heatmaps.shape == (1, 2, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)
    np.testing.assert_allclose(result.scores[0], LOGITS, atol=1e-5)
    np.testing.assert_allclose(result.probas[0], PROBAS, atol=1e-6)
    assert result.targets.tolist() == [[0, 1]]
    assert result.empty.tolist() == [[False, True]]


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
    with pytest.warns(UserWarning, match=EMPTY_WARNING):
        maps = GradCAM(tiny).heatmaps(X, targets=[1])
    assert np.isfinite(maps).all() and not maps.any()


def test_empty_map_warning_and_marks():
    model = make_flatten()
    cam = GradCAM(model, class_names=["cat", "dog"])
    with pytest.warns(EmptyMapWarning) as record:
        result = cam.compute(np.concatenate([X, X]))
    assert [str(w.message) for w in record] == [
        "Some gradcam maps at layer 'conv' are all zero: no part of that layer's output raises "
        "the logit of their class by this method's measure (after Flatten and Dense, for "
        "example, the gradients average out over the map). Try score='output' or another "
        "layer (layer=...). Result.empty and TargetExplanation.empty mark the empty maps."
    ]
    assert issubclass(EmptyMapWarning, UserWarning)
    assert not result.heatmaps.any() and result.targets.tolist() == [[0], [0]]
    assert result.empty.dtype == np.bool_ and result.empty.tolist() == [[True], [True]]
    with pytest.warns(EmptyMapWarning):
        (expl,) = cam.explain(X)
    assert expl.targets[0].empty is True
    # the way out the warning names: the probability's map is not empty (hand-computed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = GradCAM(model, score="output").compute(X)
    assert_map(result.heatmaps[0, 0], FLATTEN_OUTPUT_MAP_0)
    assert result.empty.tolist() == [[False]]


def test_warn_empty_false_silences_one_engine_only():
    quiet, loud = GradCAM(make_flatten()), GradCAM(make_flatten())
    quiet.warn_empty = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would raise
        result = quiet.compute(X)
    assert result.empty.tolist() == [[True]]  # still marked
    with pytest.warns(EmptyMapWarning):
        loud.compute(X)


def test_empty_map_warning_is_shown_once_per_line_of_the_caller():
    cam = GradCAM(make_flatten())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("default")  # Python's own default for UserWarning
        for _ in range(3):
            cam.compute(X)  # one line: shown once
        cam.compute(X)  # another line: shown again
    assert [(w.category, w.filename, w.lineno) for w in record] == [
        (EmptyMapWarning, __file__, record[0].lineno),
        (EmptyMapWarning, __file__, record[0].lineno + 1),
    ]


def test_a_call_under_ignore_does_not_use_the_warning_up():
    # The command line compiles on a blank image with warnings ignored first: the
    # engine's next empty map must still be reported.
    cam = GradCAM(make_flatten())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam.compute(X)
    with pytest.warns(EmptyMapWarning):
        cam.compute(X)


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


@COUNTS_TRACES
def test_compiled_once_for_repeated_calls(two_conv):
    cam = GradCAM(two_conv)
    x = np.random.default_rng(4).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    for batch in (x, x[:1], x[:2], x):
        cam.heatmaps(batch)
        cam.heatmaps(batch, targets=[1])
    assert tracing_count(cam) == 1
    cam.heatmaps(x, targets=[0, 1])
    cam.heatmaps(x[:1], targets=[0, 1, 2])
    assert tracing_count(cam) == 2  # one graph for one target, one for several


def test_unknown_spatial_size_model_takes_several_sizes():
    model = make_functional(input_shape=(None, None, 1), name="any_size")
    cam = GradCAM(model)
    assert_map(cam.heatmaps(X, targets=[0])[0, 0], LOGIT_MAP_0)
    big = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    assert cam.heatmaps(big).shape == (1, 1, 3, 3)
    if BACKEND == "tensorflow":  # one trace for any size (the others compile per shape)
        assert tracing_count(cam) == 1


def test_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = make_functional(name="tiny_fp16")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv").compute_dtype == "float16"
    with pytest.warns(UserWarning, match=EMPTY_WARNING):
        result = GradCAM(model).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0, atol=2e-3)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)


def test_engine_does_not_modify_the_model(tiny):
    weights = [w.copy() for w in tiny.get_weights()]
    GradCAM(tiny).compute(X, targets=[0])
    for before, after in zip(weights, tiny.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_channel_weights_are_mean_gradients():
    gradients = np.arange(2 * 1 * 2 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 2, 3)
    capture = Capture(None, None, keras.ops.convert_to_tensor(gradients), None, None)
    weights = backend.current().to_numpy(GradCAM.channel_weights(None, capture))
    np.testing.assert_allclose(weights, gradients.mean(axis=(2, 3)))


def test_explain_builds_explanations(tiny):
    with pytest.warns(UserWarning, match=EMPTY_WARNING):  # the dog's map is empty
        (expl,) = GradCAM(tiny, class_names=["cat", "dog"]).explain(X, targets=["dog", 0])
    assert [t.empty for t in expl.targets] == [True, False]
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
    assert cam._compiled == {}  # nothing compiled, nothing run


def test_subclassed_model_matches_hand_computation():
    model = make_subclassed()
    layers_before = {layer.name: set(vars(layer)) for layer in model.layers}
    cam = GradCAM(model)
    assert cam.layer == "conv"  # the last 4-D layer in call order, not in attribute order
    with pytest.warns(UserWarning, match=EMPTY_WARNING):
        result = cam.compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)
    np.testing.assert_allclose(result.scores[0], LOGITS, atol=1e-5)  # the softmax was found
    np.testing.assert_allclose(result.probas[0], PROBAS, atol=1e-6)
    assert_map(GradCAM(model, score="output").compute(X, targets=[0]).heatmaps[0, 0], OUTPUT_MAP_0)
    assert GradCAM(model, layer="early").compute(X).heatmaps.shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"Layer 'pool' has output shape \(None, 2\).*\(early, conv\)"):
        GradCAM(model, layer="pool")
    with pytest.raises(ValueError, match=r"expects images of shape \(4, 4, 1\)"):
        cam.compute(np.zeros((1, 6, 6, 1), np.float32))
    assert {layer.name: set(vars(layer)) for layer in model.layers} == layers_before
    np.testing.assert_allclose(model.predict(X, verbose=0)[0], PROBAS, atol=1e-6)


def test_subclassed_model_never_called():
    with pytest.raises(
        ValueError,
        match=r"^Model 'tiny_subclassed' is a subclassed keras.Model \(TinySubclassed\) that has "
        r"not been called yet, .* Call it once on a batch of images \(model\(images\)\) before",
    ):
        GradCAM(make_subclassed(call=False))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a warning of TensorFlow's tf.function")
def test_many_layers_of_one_model_do_not_trigger_the_retracing_warning(monkeypatch):
    import tensorflow as tf
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    # TensorFlow prints this warning at most twice per traced function and process: start
    # from fresh statistics, so that earlier tests cannot have used them up.
    monkeypatch.setattr(polymorphic_function, "_frequent_tracing_detector_manager",
                        type(polymorphic_function._frequent_tracing_detector_manager)())
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i in range(7):
        x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="seven_convs")
    doc = np.random.default_rng(3).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyMapWarning)  # random weights: maps may be empty
            for i in range(7):
                for targets in (None, [0, 1]):
                    gradcam.explain_prediction(model, doc, layer=f"conv{i}", targets=targets)
    finally:
        logger.removeHandler(handler)
    assert [m for m in messages if "retracing" in m] == []



# -- the automatic layer: what the head's pooling receives ---------------------------------
# The "residual" classifier, same input x = arange(16): the tiny conv (A0 = [[10, 18], [42,
# 50]], A1 = -5), then a 1x1 conv "block" that keeps channel 0 only (B = [A0, 0]), then an
# operation, not a layer, adds them: R = conv + block = [2 A0, A1]; pooling [60, -5], Dense
# W (softmax). Logits z = [6 - 1, -6 - 1.5] = [5, -7.5]; top class 0.
# The automatic layer is R, the pooling's input: alpha = W[:, 0] / 4 = [0.025, 0.05],
# L = ReLU(0.05 A0 - 0.25) = [[0.25, 0.65], [1.85, 2.25]], / 2.25. Explaining the last
# layer instead ("block", B): L = ReLU(0.025 A0) = A0 / 50, another map.
RESIDUAL_MAP = np.array([[0.25, 0.65], [1.85, 2.25]], np.float32) / 2.25
BLOCK_MAP = np.array([[10, 18], [42, 50]], np.float32) / 50


def test_automatic_layer_is_the_pooling_input_made_by_an_operation():
    model, residual = make_residual()
    cam = GradCAM(model)
    assert cam.layer == "input of pool"
    # the captured tensor is the residual sum, as a sub-model ending there computes it
    expected = keras.Model(model.inputs[0], residual)(X)
    np.testing.assert_allclose(numpy(_captured(cam)), numpy(expected), atol=1e-5)
    result = cam.compute(X)
    assert result.targets.tolist() == [[0]]
    np.testing.assert_allclose(result.scores[0, 0], 5.0, atol=1e-5)
    assert_map(result.heatmaps[0, 0], RESIDUAL_MAP)


def numpy(tensor):
    return backend.current().to_numpy(tensor)


def _captured(cam):
    """The tensor ``cam`` reads, from one capture of its model on ``X``."""
    model, layer, _ = cam._alive()
    with capture(layer, of_input=cam._of_input) as recording:
        model(X, training=False)
    return recording.activations[0]


def test_explicit_layers_still_read_outputs_and_input_of_reads_inputs():
    model, _ = make_residual()
    assert_map(GradCAM(model, layer="block").heatmaps(X)[0, 0], BLOCK_MAP)
    assert_map(GradCAM(model, layer="input of pool").heatmaps(X)[0, 0], RESIDUAL_MAP)
    with pytest.raises(ValueError, match=r"Layer 'pool' has output shape \(None, 2\)"):
        GradCAM(model, layer="pool")


@pytest.mark.parametrize("method", ["gradcam++", "xgradcam", "hirescam", "layercam", "eigencam",
                                    "scorecam", "ablationcam"])
def test_every_method_reads_the_pooling_input(method):
    # Each method on the pooling's input equals the method on a model whose last layer
    # makes the same tensor (an Add layer in place of the operation).
    model, _ = make_residual()
    parts, _ = make_residual()  # other layers with the same weights
    inputs = keras.Input((4, 4, 1))
    features = parts.get_layer("conv")(inputs)
    summed = keras.layers.Add(name="sum")([features, parts.get_layer("block")(features)])
    twin = keras.Model(inputs, parts.get_layer("predictions")(parts.get_layer("pool")(summed)))
    cls = gradcam.methods.method_class(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        ours = cls(model).heatmaps(X, targets=[0, 1])
        theirs = cls(twin, layer="sum").heatmaps(X, targets=[0, 1])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
