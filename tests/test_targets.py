"""Targets against maps computed by hand, on tiny models with hand-set weights (see
:mod:`helpers.tiny` and :mod:`helpers.target_models`). Run once per KERAS_BACKEND."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from helpers.target_models import (
    ACTIVATIONS,
    GRID_BOXES,
    LOGITS_5,
    SEGMENT_0,
    W5,
    decode_grid,
    grad_cam_map,
    make_detector,
    make_five_classes,
    make_segmenter,
)
from helpers.tiny import LOGIT_MAP_0, LOGITS, OUTPUT_MAP_0, PROBAS, X, assert_map, for_method, make_functional
from keras import ops
from PIL import Image

from gradcam import format_as_image
from gradcam.methods import METHODS, GradCAM, HiResCAM
from gradcam.methods.base import EmptyMapWarning
from gradcam.metrics.confidence import average_drop
from gradcam.metrics.perturbation import deletion
from gradcam.render import BOX_COLOR, draw_outline, mask_outline
from gradcam.targets import (
    Box,
    Class,
    Contrast,
    Function,
    NoBoxWarning,
    Output,
    Segmentation,
    Similarity,
)

BACKEND = keras.backend.backend()
HIGH_MASK = np.array([[1, 1], [1, 0]], bool)


def quiet(engine, docs, targets):
    """``engine.compute`` with empty maps allowed (they are asserted where they matter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        return engine.compute(docs, targets)


# -- Class ---------------------------------------------------------------------------------
def test_class_objects_mean_what_ints_and_names_mean():
    """``Class(0)`` is class 0's logit (LOGIT_MAP_0); ``Class(0, score="output")`` its
    probability (OUTPUT_MAP_0), whatever the engine's own score; names resolve."""
    model = make_functional()
    engine = GradCAM(model, class_names=["cat", "dog"])
    plain = engine.compute(X, [0])
    objects = engine.compute(X, [Class("cat"), Class(0, score="output"), Output(0)])
    assert_map(plain.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(objects.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(objects.heatmaps[0, 1], OUTPUT_MAP_0)
    assert_map(objects.heatmaps[0, 2], LOGIT_MAP_0)  # Output reads the logits, as classes do
    np.testing.assert_allclose(objects.scores[0], [LOGITS[0], PROBAS[0], LOGITS[0]], atol=1e-5)
    assert objects.targets.tolist() == [[0, 0, -1]]
    np.testing.assert_allclose(objects.probas[0, :2], [PROBAS[0], PROBAS[0]], atol=1e-6)
    assert np.isnan(objects.probas[0, 2])
    explanation = engine.explain(X, [Class("cat"), Output(0)])[0]
    assert [t.label for t in explanation.targets] == ["0 (cat)", "output 0"]
    assert explanation.targets[0].description == "the logit of class 0 (cat)"
    assert explanation.targets[1].description == "unit 0 of the output"


def test_class_target_on_a_model_that_is_not_a_classifier_is_refused():
    engine = GradCAM(make_segmenter(), layer="conv")
    with pytest.raises(ValueError, match=r"has outputs \(None, 2, 2, 2\); class target 0 needs a classifier"):
        engine.compute(X, 0)
    with pytest.raises(ValueError, match=r"the top prediction needs a classifier output"):
        engine.compute(X)
    with pytest.raises(ValueError, match=r"Class target 1: model 'segmenter' has output shape \(None, 2, 2, 2\)"):
        engine.compute(X, [Class(1, score="output")])


# -- Segmentation --------------------------------------------------------------------------
def test_segmentation_sums_the_category_over_the_mask():
    """Class 0's score ``S = sum M y0``, ``y0 = 0.1 A0 + 0.2 A1`` per pixel. HiResCAM's map
    is ``ReLU(sum_k dS/dA_k * A_k) = M * ReLU(y0) = M * [[0, 0.8], [3.2, 4.0]]``: with ``M``
    = HIGH_MASK, ``[[0, 0.8], [3.2, 0]] / 3.2``; ``S = 0 + 0.8 + 3.2 = 4``. Grad-CAM pools
    the gradient, ``alpha = mean(M) (0.1, 0.2)``, so its map is the class map
    ``[[0, 0.2], [0.8, 1]]`` for any nonzero mask. ``mask=None``: every pixel's top class is
    0, ``S = 8``; class 1 is no pixel's top class: ``S = 0``, an empty map."""
    model = make_segmenter()
    hires = HiResCAM(model, layer="conv").compute(X, [Segmentation(0, HIGH_MASK), Segmentation(0)])
    assert_map(hires.heatmaps[0, 0], [[0, 0.25], [1, 0]])
    assert_map(hires.heatmaps[0, 1], SEGMENT_0 / 4)
    np.testing.assert_allclose(hires.scores[0], [4.0, 8.0], atol=1e-5)
    assert_map(GradCAM(model, layer="conv").heatmaps(X, [Segmentation(0, HIGH_MASK.astype(np.float32))])[0, 0], LOGIT_MAP_0)
    with pytest.warns(EmptyMapWarning):
        empty = GradCAM(model, layer="conv").compute(X, [Segmentation(1)])
    assert empty.scores[0, 0] == 0 and empty.empty.tolist() == [[True]]


def test_segmentation_masks_per_image_and_weights():
    """One mask per image: image 0 keeps the top-right cell (``0.8``), image 1 the bottom
    row (``[3.2, 4.0]``). A float mask weighs pixels: ``0.5 y0[1, 1]`` and ``y0[1, 0]``."""
    masks = np.array([[[0, 1], [0, 0]], [[0, 0], [1, 1]]], bool)
    docs = np.concatenate([X, X])
    result = HiResCAM(make_segmenter(), layer="conv").compute(docs, [Segmentation(0, masks)])
    assert_map(result.heatmaps[0, 0], [[0, 1], [0, 0]])
    assert_map(result.heatmaps[1, 0], [[0, 0], [0.8, 1]])
    np.testing.assert_allclose(result.scores[:, 0], [0.8, 7.2], atol=1e-5)
    weighted = HiResCAM(make_segmenter(), layer="conv").compute(X, [Segmentation(0, [[0, 0], [1, 0.5]])])
    assert_map(weighted.heatmaps[0, 0], [[0, 0], [1, 2 / 3.2]])
    np.testing.assert_allclose(weighted.scores[0, 0], 5.2, atol=1e-5)


def test_segmentation_mask_of_another_shape_is_refused():
    engine = GradCAM(make_segmenter(), layer="conv")
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\); the output of model 'segmenter' is \(None, 2, 2, 2\), "
                                         r"so the mask must be \(2, 2\)"):
        engine.compute(X, [Segmentation(0, np.ones((3, 3)))])
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2, 2\); expected one for the batch .* for 1 images"):
        engine.compute(X, [Segmentation(0, np.ones((3, 2, 2)))])
    with pytest.raises(ValueError, match=r"Segmentation target: model 'tiny' has output shape \(None, 2\)"):
        GradCAM(make_functional()).compute(X, [Segmentation(0)])


# -- Similarity ----------------------------------------------------------------------------
def test_similarity_is_the_cosine_with_the_reference():
    """Output ``z = [2, -4.5]`` (no softmax), ``|z|^2 = 24.25``. The gradient of
    ``cos(z, e)`` is ``(e |z|^2 - (e.z) z) / (|z|^3 |e|)``, orthogonal to ``z``: for
    ``e = (1, 0)``, ``(24.25 - 4, 9) = (20.25, 9) ∝ (9, 4)``; back through the Dense
    (``W g``) and the pooling (``/4``), ``alpha ∝ (0.1*9 - 0.1*4, 0.2*9 + 0.3*4) = (0.5, 3)
    ∝ (1, 6)``: ``L = ReLU(A0 - 30) = [[0, 0], [12, 20]]``, i.e. ``[[0, 0], [0.6, 1]]``.
    ``e = (-1, 0)`` flips the gradient: ``ReLU(30 - A0) = [[20, 12], [0, 0]]`` / 20."""
    model = make_functional(activation=None)
    docs = np.concatenate([X, X])
    result = GradCAM(model).compute(docs, [Similarity([[1, 0], [-1, 0]])])
    assert_map(result.heatmaps[0, 0], [[0, 0], [0.6, 1]])
    assert_map(result.heatmaps[1, 0], [[1, 0.6], [0, 0]])
    cosine = 2 / np.sqrt(24.25)
    np.testing.assert_allclose(result.scores[:, 0], [cosine, -cosine], atol=1e-6)
    one = GradCAM(model).compute(X, [Similarity([3.0, 0.0])])  # the reference's length does not matter
    assert_map(one.heatmaps[0, 0], [[0, 0], [0.6, 1]])


def test_similarity_embedding_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"embedding has length 3 \(shape \(3,\)\); the output of model 'tiny'.*\(None, 2\).*D = 2"):
        GradCAM(make_functional(activation=None)).compute(X, [Similarity([1.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match=r"embedding has shape \(2, 2\); expected one for the batch .* for 1 images"):
        GradCAM(make_functional(activation=None)).compute(X, [Similarity(np.ones((2, 2)))])


# -- Output --------------------------------------------------------------------------------
def test_output_reads_one_unit_or_the_sum():
    """On the segmenter: unit ``(1, 1, 0)`` (flat 6) is ``y0[1, 1] = 4.0``; its gradient
    lives in that cell alone: HiResCAM ``[[0, 0], [0, 1]]``. The sum of all units has
    gradient ``W0 + W1 = (0, 0.5)`` everywhere, and ``0.5 A1 = -2.5 < 0``: an empty map;
    the sum is ``sum y0 + sum y1 = 8 - 18 = -10``."""
    engine = HiResCAM(make_segmenter(), layer="conv")
    result = quiet(engine, X, [Output((1, 1, 0)), Output(6), Output()])
    assert_map(result.heatmaps[0, 0], [[0, 0], [0, 1]])
    assert_map(result.heatmaps[0, 1], [[0, 0], [0, 1]])
    assert result.empty.tolist() == [[False, False, True]]
    np.testing.assert_allclose(result.scores[0], [4.0, 4.0, -10.0], atol=1e-5)
    with pytest.raises(ValueError, match=r"Output index 8 is out of range: .* has 8 units per image \(0..7\)"):
        engine.compute(X, [Output(8)])


# -- Box -----------------------------------------------------------------------------------
def test_box_explains_the_predicted_box_that_overlaps_most():
    """The query ``(2, 2, 4, 4)`` is cell ``(1, 1)``'s box (IoU 1): class 0's score there,
    ``y0[1, 1] = 4``, with HiResCAM's map in that cell alone. The query ``(2, 0, 4, 2)`` per
    image picks cell ``(0, 1)``, ``0.8``. With ``decode``, the segmenter gives the same."""
    docs = np.concatenate([X, X])
    queries = np.array([[2, 2, 4, 4], [2, 0, 4, 2]], np.float32)
    result = HiResCAM(make_detector(), layer="conv").compute(docs, [Box(queries, 0)])
    assert_map(result.heatmaps[0, 0], [[0, 0], [0, 1]])
    assert_map(result.heatmaps[1, 0], [[0, 1], [0, 0]])
    np.testing.assert_allclose(result.scores[:, 0], [4.0, 0.8], atol=1e-5)
    decoded = HiResCAM(make_segmenter(), layer="conv").compute(docs, [Box(queries, 0, decode=decode_grid)])
    np.testing.assert_allclose(decoded.heatmaps, result.heatmaps, atol=1e-6)
    np.testing.assert_allclose(decoded.scores, result.scores, atol=1e-6)
    assert_map(GradCAM(make_detector(), layer="conv").heatmaps(X, [Box([2, 2, 4, 4], 0)])[0, 0], LOGIT_MAP_0)


def test_box_that_overlaps_no_predicted_box_gives_an_empty_map_and_names_the_best_iou():
    """``(0, 0, 3, 3)`` overlaps cell ``(0, 0)`` by ``4 / 9 = 0.444`` at best (< 0.5)."""
    engine = HiResCAM(make_detector(), layer="conv")
    with pytest.warns(NoBoxWarning, match=r"best IoU found: 0\.444") as record:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyMapWarning)
            result = engine.compute(X, [Box([0, 0, 3, 3], 0)])
    assert record[0].filename == __file__  # the caller's line
    assert result.empty.tolist() == [[True]] and result.scores[0, 0] == 0
    with pytest.warns(NoBoxWarning, match=r"best IoU found: 0\.000"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyMapWarning)
            engine.compute(X, [Box([10, 10, 12, 12], 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoBoxWarning)
        warnings.simplefilter("ignore", EmptyMapWarning)
        low = engine.compute(X, [Box([0, 0, 3, 3], 0, iou=0.4)])  # 0.444 is enough: cell (0, 0), y0 = 0
    assert low.scores[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_box_on_a_model_whose_outputs_are_not_boxes_and_scores_is_refused():
    with pytest.raises(ValueError, match=r"Box target: the outputs of model 'tiny' are \(None, 2\); a Box needs a detector"):
        GradCAM(make_functional()).compute(X, [Box([0, 0, 2, 2], 0)])
    with pytest.raises(ValueError, match=r"Box target: the outputs of model 'segmenter' are \(None, 2, 2, 2\)"):
        GradCAM(make_segmenter(), layer="conv").compute(X, [Box([0, 0, 2, 2], 0)])
    with pytest.raises(ValueError, match=r"decode returned tensors of shapes \((None|1), 2, 2, 2\) and .* a Box needs"):
        GradCAM(make_segmenter(), layer="conv").compute(X, [Box([0, 0, 2, 2], 0, decode=lambda y: (y, y))])


def test_format_as_image_draws_the_query_box():
    """The query ``(2, 2, 4, 4)`` in the 4x4 input is the bottom-right quarter of a 16x16
    image, pixels 8..15: its outline (2 pixels wide, inside) is drawn in BOX_COLOR; the
    rest is the overlay."""
    explanation = HiResCAM(make_detector(), layer="conv").explain(X, [Box([2, 2, 4, 4], 0)], images=[Image.new("RGB", (16, 16))])[0]
    assert explanation.targets[0].label == "box (2.0, 2.0, 4.0, 4.0): 0"
    assert explanation.input_size == (4, 4)
    pixels = np.asarray(format_as_image(explanation))
    boxed = np.all(pixels == BOX_COLOR, axis=-1)
    expected = np.zeros((16, 16), bool)
    expected[8:16, 8:16] = True
    expected[10:14, 10:14] = False  # the box's inside, 2 pixels in from its edges
    np.testing.assert_array_equal(boxed, expected)


def test_mask_outline_and_drawing():
    mask = np.zeros((4, 4), bool)
    mask[1:4, 0:3] = True
    outline = mask_outline(mask)
    expected = mask.copy()
    expected[2, 1] = False  # the one pixel whose four neighbours are inside
    np.testing.assert_array_equal(outline, expected)
    drawn = np.asarray(draw_outline(Image.new("RGB", (8, 8)), [[0, 0], [1, 1]], color=(9, 8, 7)))
    painted = np.all(drawn == (9, 8, 7), axis=-1)
    expected = np.zeros((8, 8), bool)  # the bottom half's edge: its first and last rows and columns
    expected[4:, :] = True
    expected[5:7, 1:7] = False
    np.testing.assert_array_equal(painted, expected)


# -- Contrast ------------------------------------------------------------------------------
def test_contrast_with_one_class_is_the_logit_difference():
    """``against=[1]``: ``S = p1 (z0 - alpha z1) / p1 = z0 - alpha z1``. ``alpha = 1``:
    gradient ``W0 - W1 = (0.2, -0.1)``, the probability's map OUTPUT_MAP_0, ``S = 6.5``;
    ``alpha = 0.5``: ``(0.15, 0.05)``, ``ReLU(0.15 A0 - 0.25) = [[1.25, 2.45], [6.05, 7.25]]``
    / 7.25, ``S = 2 + 2.25 = 4.25``."""
    result = GradCAM(make_functional()).compute(X, [Contrast(0, [1]), Contrast(0, 1, alpha=0.5)])
    assert_map(result.heatmaps[0, 0], OUTPUT_MAP_0)
    assert_map(result.heatmaps[0, 1], np.array([[1.25, 2.45], [6.05, 7.25]]) / 7.25)
    np.testing.assert_allclose(result.scores[0], [6.5, 4.25], atol=1e-5)


def test_contrast_finds_the_three_closest_classes():
    """Logits ``z = [2, -4.5, 1, -2, -10]``: the classes closest to ``z0 = 2`` are 2, 3 and 1
    (distances 1, 4, 6.5; class 4 is 12 away). With ``q = softmax`` over them,
    ``S = z0 - m``, ``m = sum_j q_j z_j``; ``dS/dz0 = 1``, ``dS/dz_j = -q_j (1 + z_j - m)``,
    and Grad-CAM's weights are ``W5 g / 4``."""
    compared = [1, 2, 3]
    q = np.exp(LOGITS_5[compared].astype(np.float64))
    q /= q.sum()
    m = float(q @ LOGITS_5[compared])
    g = np.zeros(5)
    g[0] = 1
    g[compared] = -q * (1 + LOGITS_5[compared] - m)
    result = GradCAM(make_five_classes()).compute(X, [Contrast(0), Contrast(0, [3, 2, 1])])
    expected = grad_cam_map(W5 @ g / 4, ACTIVATIONS)
    assert_map(result.heatmaps[0, 0], expected)
    assert_map(result.heatmaps[0, 1], expected)
    np.testing.assert_allclose(result.scores[0], [2 - m, 2 - m], atol=1e-5)
    with pytest.raises(ValueError, match=r"Contrast needs 4 classes or more .* model 'tiny' has 2"):
        GradCAM(make_functional()).compute(X, [Contrast(0)])


# -- functions of the outputs ---------------------------------------------------------------
def logit_difference(outputs):
    """The logit of class 0 minus that of class 1."""
    return outputs[:, 0] - outputs[:, 1]


def test_a_function_is_a_target():
    """``z0 - z1``: gradient ``W0 - W1``, OUTPUT_MAP_0 (as ``Contrast(0, [1])``)."""
    engine = GradCAM(make_functional())
    result = engine.compute(X, [logit_difference, Function(lambda y: ops.sum(y, axis=1) * 0 + y[:, 0], "first")])
    assert_map(result.heatmaps[0, 0], OUTPUT_MAP_0)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_0)
    np.testing.assert_allclose(result.scores[0], [6.5, 2.0], atol=1e-5)
    explanation = engine.explain(X, logit_difference)[0]
    assert explanation.targets[0].label == "logit_difference"
    assert explanation.targets[0].description == "The logit of class 0 minus that of class 1."


def test_several_outputs_reach_a_function_as_the_model_returns_them():
    """The detector's ``[boxes, scores]``: ``scores[:, 3, 0]`` is ``y0[1, 1] = 4``, as
    ``Output((3, 0), output=1)``."""
    engine = HiResCAM(make_detector(), layer="conv")
    result = engine.compute(X, [lambda outputs: outputs[1][:, 3, 0], Output((3, 0), output=1)])
    assert_map(result.heatmaps[0, 0], [[0, 0], [0, 1]])
    assert_map(result.heatmaps[0, 1], [[0, 0], [0, 1]])
    assert isinstance(result.outputs, list) and len(result.outputs) == 2
    np.testing.assert_allclose(result.outputs[0][0], GRID_BOXES)
    with pytest.raises(ValueError, match=r"several outputs .*say which one to read with output="):
        engine.compute(X, [Output(0)])


def test_a_function_of_the_wrong_shape_is_refused():
    engine = GradCAM(make_functional())
    with pytest.raises(ValueError, match=r"Target '<lambda>' returned shape \((None|1), 2\); expected"):
        engine.compute(X, [lambda y: y])
    with pytest.raises(ValueError, match=r"Target 'total' returned shape \(\); expected"):
        engine.compute(X, [Function(lambda y: ops.sum(y), "total")])


def test_a_function_that_is_not_backend_neutral_is_refused():
    engine = GradCAM(make_functional())
    with pytest.raises(TypeError, match=r"(?s)Target 'numpy_first' failed while traced .* must be backend-neutral"):
        engine.compute(X, [Function(lambda y: np.asarray(y)[:, 0], "numpy_first")])
    with pytest.raises(TypeError, match=r"returned numpy.ndarray, not a \w+ tensor: a target must be backend-neutral"):
        engine.compute(X, [Function(lambda y: np.zeros(1, np.float32), "constant")])


def test_a_function_calling_tensorflow_works_on_tensorflow_alone():
    import tensorflow as tf

    engine = GradCAM(make_functional())
    target = Function(lambda y: tf.gather(y, 0, axis=1), "tf_first")
    if BACKEND == "tensorflow":
        assert_map(engine.heatmaps(X, [target])[0, 0], LOGIT_MAP_0)
    else:
        with pytest.raises(TypeError, match=r"(?s)Target 'tf_first' failed while traced .* must be backend-neutral"):
            engine.compute(X, [target])


# -- every method, one compiled computation, several targets --------------------------------
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_takes_every_target(method):
    """Each target's map equals the map of an equivalent plain class target or function:
    the methods never know which target they explain."""
    engine = METHODS[method](for_method(method, make_functional(activation=None)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        plain = engine.compute(X, [0, 1])
        objects = engine.compute(X, [Output(0), Class(1), Contrast(0, [1], alpha=0.0)])
        function = engine.compute(X, [lambda y: y[:, 1]])
    np.testing.assert_allclose(objects.heatmaps[:, :2], plain.heatmaps, atol=1e-5)
    np.testing.assert_allclose(objects.heatmaps[:, 2], plain.heatmaps[:, 0], atol=1e-5)
    np.testing.assert_allclose(function.heatmaps[:, 0], plain.heatmaps[:, 1], atol=1e-5)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_takes_targets_on_per_pixel_outputs(method):
    """On the segmenter, ``Segmentation(0, M)`` and ``Box`` (cell ``(1, 1)``, through
    ``decode``) give the maps of the functions that compute the same scores, for
    every method, the perturbing ones included."""
    engine = METHODS[method](for_method(method, make_segmenter()), layer="conv")
    mask = HIGH_MASK.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        objects = engine.compute(X, [Segmentation(0, HIGH_MASK), Box([2, 2, 4, 4], 0, decode=decode_grid)])
        functions = engine.compute(
            X, [lambda y: ops.sum(y[..., 0] * ops.convert_to_tensor(mask), axis=(1, 2)), lambda y: y[:, 1, 1, 0]]
        )
    np.testing.assert_allclose(objects.heatmaps, functions.heatmaps, atol=1e-5)
    np.testing.assert_allclose(objects.scores, functions.scores, atol=1e-5)
    np.testing.assert_allclose(objects.scores[0], [4.0, 4.0], atol=1e-5)


def test_smoothing_takes_target_objects():
    """``aug_smooth`` and ``eigen_smooth`` with a Segmentation target give the maps of the
    function that computes the same score (the arrays follow the augmented copies)."""
    engine = GradCAM(make_segmenter(), layer="conv")
    mask = ops.convert_to_tensor(HIGH_MASK.astype(np.float32))
    for options in ({"aug_smooth": True}, {"eigen_smooth": True}):
        objects = engine.compute(X, [Segmentation(0, HIGH_MASK)], **options)
        function = engine.compute(X, [lambda y: ops.sum(y[..., 0] * mask, axis=(1, 2))], **options)
        np.testing.assert_allclose(objects.heatmaps, function.heatmaps, atol=1e-5)


def test_differentiable_maps_take_target_objects():
    """The segmentation map of HIGH_MASK, ``[[0, 0.25], [1, 0]]``, as a backend tensor."""
    engine = HiResCAM(make_segmenter(), layer="conv")
    maps = engine.differentiable_maps(X, [Segmentation(0, HIGH_MASK)])
    assert_map(ops.convert_to_numpy(maps)[0, 0], [[0, 0.25], [1, 0]])


def test_equal_kinds_of_target_reuse_the_compiled_computation():
    engine = HiResCAM(make_segmenter(), layer="conv")
    first = engine.heatmaps(X, [Segmentation(0, HIGH_MASK)])
    count = len(engine._compiled)
    second = engine.heatmaps(X, [Segmentation(0, ~HIGH_MASK)])
    assert len(engine._compiled) == count
    assert_map(first[0, 0], [[0, 0.25], [1, 0]])
    assert_map(second[0, 0], [[0, 0], [0, 1]])
    if BACKEND == "tensorflow":
        traces = sum(f.experimental_get_tracing_count() for f in engine._compiled.values())
        assert traces == 1


# -- metrics -------------------------------------------------------------------------------
def test_metrics_score_target_objects():
    """Average drop on the segmenter with ``Segmentation(0, all pixels)``: ``Y = sum y0 = 8``.
    A map that keeps the image's bottom half (rows 2 and 3) blacks out the top cells:
    ``A0 = [[0, 0], [42, 50]]``, ``A1 = [[0, 0], [-5, -5]]``, so ``y0 = [[0, 0], [3.2, 4]]``,
    ``O = 7.2``: a drop of ``0.8 / 8 = 0.1``. A zero map gives a black image, ``O = 0``: a
    drop of 1. Deletion of ``Output(0)`` on a model without softmax is deletion of class 0
    (its output)."""
    target = Segmentation(0, np.ones((2, 2), bool))
    docs = np.concatenate([X, X])
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 2:] = 1
    np.testing.assert_allclose(average_drop(make_segmenter(), docs, maps, target), [0.1, 1.0], atol=1e-6)
    model = make_functional(activation=None)
    heat = np.array([[[0, 0.2], [0.8, 1]]], np.float32)
    by_class = deletion(model, X, heat, 0, steps=4)
    by_target = deletion(model, X, heat, Output(0), steps=4)
    np.testing.assert_allclose(by_target, by_class, atol=1e-6)
    with pytest.raises(ValueError, match=r"class target 0 needs a classifier output"):
        average_drop(make_segmenter(), X, maps[:1], 0)
