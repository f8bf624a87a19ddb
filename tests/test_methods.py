"""The method template and the methods on it, against maps computed by hand.

Run once per backend: ``KERAS_BACKEND=jax pytest tests/test_methods.py`` (likewise
``torch`` and ``tensorflow``).
"""

from __future__ import annotations

import inspect
import keras
import numpy as np
import pytest
from keras import ops

from helpers.tiny import (
    CONV_KERNEL,
    DENSE_KERNEL,
    LOGIT_MAP_0,
    LOGIT_MAP_1,
    LOGITS,
    OUTPUT_MAP_0,
    PROBAS,
    X,
    assert_map,
    make_functional,
    make_nested,
    make_separate_softmax,
    make_sequential,
)

from gradcam.methods import METHODS, AblationCAM, GradCAM, GradCAMPlusPlus, Method, PerturbationMethod, method_class, registry

A0 = np.array([[10, 18], [42, 50]], np.float32)  # the tiny model's conv output, channel 0


def make_flat():
    """The tiny model's conv, then Flatten and Dense: gradients that vary over the map.

    Kernel rows follow Flatten's (i, j, channel) order. Class 0's gradient is
    ``G0 = [[0.1, 0], [-0.1, 0.2]]`` on channel 0 and ``G1 = [[0, 0], [0, 0.05]]`` on
    channel 1; class 1's is -0.01 everywhere. Logits: ``z0 = 1 - 4.2 + 10 - 0.25 = 6.55``,
    ``z1 = -0.01 (120 - 20) = -1``.
    """
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))), name="flat")
    conv.set_weights([CONV_KERNEL])
    g0 = np.array([[0.1, 0], [-0.1, 0.2]], np.float32)
    g1 = np.array([[0, 0], [0, 0.05]], np.float32)
    class_0 = np.stack([g0, g1], axis=-1).reshape(8)
    dense.set_weights([np.stack([class_0, np.full(8, -0.01, np.float32)], axis=-1)])
    return model


def make_residual():
    """image -> conv (A) -> conv2 (1x1, identity) -> add(conv2, conv) = 2A -> pool -> dense.

    The explained layer is conv2, and conv's output reaches past it. Logits:
    ``z = [0.1 * 60 + 0.2 * -10, -0.1 * 60 + 0.3 * -10] = [4, -9]``.
    """
    inputs = keras.Input((4, 4, 1))
    a = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")(inputs)
    b = keras.layers.Conv2D(2, 1, use_bias=False, name="conv2")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([b, a]))
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(x), name="residual")
    model.get_layer("conv").set_weights([CONV_KERNEL])
    model.get_layer("conv2").set_weights([np.eye(2, dtype=np.float32)[None, None]])
    dense.set_weights([DENSE_KERNEL])
    return model


# -- the registry ------------------------------------------------------------------------
def test_methods_registry():
    names = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam", "ablationcam",
             "eigengradcam", "gradcamelementwise", "kpcacam", "fem", "randomcam", "shapleycam", "guidedgradcam",
             "fullgrad"]
    assert list(METHODS) == names
    assert METHODS["gradcam++"] is GradCAMPlusPlus and METHODS["ablationcam"] is AblationCAM
    assert all(issubclass(cls, Method) and cls.name == name for name, cls in METHODS.items())
    assert method_class("gradcam++") is GradCAMPlusPlus
    # the names and options the command line and gradcam.ray check before Keras loads
    assert registry.METHOD_NAMES == tuple(names)
    shared = inspect.signature(Method.__init__).parameters
    own = {name: tuple(p for p in inspect.signature(cls.__init__).parameters if p not in shared)
           for name, cls in METHODS.items()}
    assert {name: options for name, options in own.items() if options} == registry.METHOD_OPTIONS


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown method 'gradcm'.*'gradcam', 'gradcam\+\+'.*Did you mean 'gradcam'"):
        method_class("gradcm")
    with pytest.raises(ValueError, match=r"^Unknown method 3; the methods are 'gradcam', .*'ablationcam', .*'shapleycam', 'guidedgradcam', 'fullgrad'\.$"):
        method_class(3)


# -- Grad-CAM ------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [make_functional, make_sequential, make_nested, make_separate_softmax])
def test_gradcam_hand_computed(make):
    result = GradCAM(make()).compute(X, targets=[0, 1])
    assert result.heatmaps.shape == (1, 2, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], LOGIT_MAP_1)
    np.testing.assert_allclose(result.scores, LOGITS[None], atol=1e-5)
    np.testing.assert_allclose(result.probas, PROBAS[None], atol=1e-6)
    np.testing.assert_array_equal(result.targets, [[0, 1]])


def test_gradcam_top_prediction_and_output_score(tiny):
    result = GradCAM(tiny, score="output").compute(X)
    np.testing.assert_array_equal(result.targets, [[0]])
    assert_map(result.heatmaps[0, 0], OUTPUT_MAP_0)
    np.testing.assert_allclose(result.scores, PROBAS[None, :1], atol=1e-6)


def test_gradcam_without_softmax_explains_the_output():
    model = make_functional(activation=None)
    result = GradCAM(model).compute(X, targets=0)
    assert result.probas is None
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    np.testing.assert_allclose(result.outputs, LOGITS[None], atol=1e-5)


def test_gradcam_spatial_gradients():
    # w = mean G = [0.05, 0.0125]; L = 0.05 A0 - 0.0625 = [[0.4375, 0.8375], [2.0375, 2.4375]].
    maps = GradCAM(make_flat()).heatmaps(X)
    assert_map(maps[0, 0], np.array([[0.4375, 0.8375], [2.0375, 2.4375]], np.float32) / 2.4375)


def test_several_targets_and_images_equal_single_runs(tiny):
    images = np.concatenate([X, X[:, ::-1], X * 0.5])
    cam = GradCAM(tiny)
    targets = np.array([[0, 1, 0], [1, 0, 1], [0, 0, 1]])
    together = cam.compute(images, targets=targets, batch_size=2)
    for n in range(3):
        for k in range(3):
            alone = cam.compute(images[n], targets=int(targets[n, k]))
            np.testing.assert_allclose(together.heatmaps[n, k], alone.heatmaps[0, 0], atol=1e-6)
            np.testing.assert_allclose(together.scores[n, k], alone.scores[0, 0], atol=1e-6)


# -- Grad-CAM++ ----------------------------------------------------------------------------
def test_gradcam_plus_plus_hand_computed():
    # a = G^2 / (2 G^2 + S G^3 + 1e-6) with S = sum A_k = 120 (channel 0), -20 (channel 1):
    #   G = 0.1: a = 0.01 / 0.140001,  ReLU(G) a = 0.0071428
    #   G = 0.2: a = 0.04 / 1.040001,  ReLU(G) a = 0.0076923  -> w0 = 0.0148351
    #   G = 0.05 (channel 1): a = 0.0025 / 0.002501, ReLU(G) a = 0.0499800 = w1
    #   G = 0 and G < 0 add nothing.
    # L = w0 A0 - 5 w1 = [[-0.101549, 0.017132], [0.373174, 0.491855]] -> ReLU, / max.
    maps = GradCAMPlusPlus(make_flat()).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[0, 0.0348311], [0.7587078, 1]], np.float32))
    # Class 1: G = -0.01 everywhere, ReLU(G) = 0, every weight is 0: the map stays zero.
    assert_map(maps[0, 1], np.zeros((2, 2), np.float32))


def test_gradcam_plus_plus_on_constant_gradients(tiny):
    # Class 0 of the tiny model: G = 0.025 (S = 120), G = 0.05 (S = -20) over the map:
    # w0 = 4 * 0.025 * 0.000625 / 0.003126 = 0.0199936, w1 = 4 * 0.05 * 0.0025 / 0.002501
    # = 0.1999200; L = w0 A0 - 5 w1 is negative but at (1, 1): 0.9996802 - 0.9996002.
    maps = GradCAMPlusPlus(tiny).heatmaps(X, targets=0)
    assert_map(maps[0, 0], np.array([[0, 0], [0, 1]], np.float32))


# -- Ablation-CAM --------------------------------------------------------------------------
@pytest.mark.parametrize("perturbation_batch", [1, 2, 3, 32])
def test_ablation_cam_hand_computed(tiny, perturbation_batch):
    # Class 0: y = 2; channel 0 off: s0 = 0.2 * -5 = -1, w0 = 1.5; channel 1 off: s1 = 3,
    # w1 = -0.5. L = 1.5 A0 + 2.5 = [[17.5, 29.5], [65.5, 77.5]].
    # Class 1: y = -4.5; s0 = 0.3 * -5 = -1.5, w0 = 2/3; s1 = -3, w1 = 1/3.
    # L = (2/3) A0 - 5/3 = [[5, 10.3333], [26.3333, 31.6667]].
    cam = AblationCAM(tiny, perturbation_batch=perturbation_batch)
    result = cam.compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[17.5, 29.5], [65.5, 77.5]], np.float32) / 77.5)
    assert_map(result.heatmaps[0, 1], np.array([[5, 31 / 3], [79 / 3, 95 / 3]], np.float32) / (95 / 3))
    np.testing.assert_allclose(result.scores, LOGITS[None], atol=1e-5)


def test_ablation_cam_around_a_skip_connection():
    # Class 0: y = 4; conv2's channel 0 off: means [30, -10], s0 = 1, w0 = 0.75; channel 1
    # off: [60, -5], s1 = 5, w1 = -0.25. On conv2's output (= A): L = 0.75 A0 + 1.25.
    result = AblationCAM(make_residual(), layer="conv2").compute(X, targets=0)
    np.testing.assert_allclose(result.scores, [[4]], atol=1e-5)
    assert_map(result.heatmaps[0, 0], np.array([[8.75, 14.75], [32.75, 38.75]], np.float32) / 38.75)


def test_ablation_cam_max_channels(tiny):
    # Variances over the map: A0 272, A1 (constant -5) 0. max_channels=1 ablates channel 0
    # alone: w0 = 1.5 (class 0), 2/3 (class 1) as above, w1 = 0: L = w0 A0, / max.
    cam = AblationCAM(tiny, max_channels=1)
    assert cam.perturbation_count((1, 2, 2, 2)) == 1
    maps = cam.heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[10, 18], [42, 50]], np.float32) / 50)
    assert_map(maps[0, 1], np.array([[10, 18], [42, 50]], np.float32) / 50)
    # At least as many channels as the layer has: every channel, as without it.
    every = AblationCAM(tiny).heatmaps(X, targets=[0, 1])
    np.testing.assert_allclose(AblationCAM(tiny, max_channels=2).heatmaps(X, targets=[0, 1]), every, atol=1e-6)


@pytest.mark.parametrize("max_channels", [0, -3, 1.5, True])
def test_ablation_cam_bad_max_channels(tiny, max_channels):
    with pytest.raises(ValueError, match=rf"max_channels must be a positive integer or None; got {max_channels!r}"):
        AblationCAM(tiny, max_channels=max_channels)


def test_ablation_cam_zero_score_gives_an_empty_map():
    # Dense column 0 = [0.1, 0.6]: y0 = 0.1 * 30 + 0.6 * -5 = 0, and (y - s) / y is 0/0.
    model = make_functional()
    model.get_layer("predictions").set_weights([np.array([[0.1, -0.1], [0.6, 0.3]], np.float32)])
    maps = AblationCAM(model).heatmaps(X, targets=0)
    assert_map(maps[0, 0], np.zeros((2, 2), np.float32))


def test_ablation_cam_several_images_equal_single_runs(tiny):
    images = np.concatenate([X, X[:, :, ::-1] * 0.5 - 3])
    cam = AblationCAM(tiny, perturbation_batch=3)
    together = cam.heatmaps(images, targets=[1, 0])
    for n in range(2):
        np.testing.assert_allclose(together[n], cam.heatmaps(images[n], targets=[1, 0])[0], atol=1e-6)


def test_gradient_free_methods_run_no_backward_pass(tiny, no_backward_pass):
    maps = AblationCAM(tiny).heatmaps(X, targets=0)
    assert_map(maps[0, 0], np.array([[17.5, 29.5], [65.5, 77.5]], np.float32) / 77.5)
    with pytest.raises(AssertionError, match="a backward pass was run"):
        GradCAM(tiny).heatmaps(X)


class ScaledInputs(PerturbationMethod):
    """A method that scores perturbed inputs: perturbation ``p`` is the image times
    ``p + 1``, and channel ``k`` is weighed by the score of perturbation ``k``."""

    name = "scaled-inputs"
    perturbs = "inputs"

    def perturbation_count(self, activations_shape):
        return activations_shape[-1]

    def perturb(self, image, activations, index):
        return image * ops.cast(index + 1, image.dtype)[:, None, None, None]

    def channel_weights(self, capture):
        return ops.transpose(capture.perturbation_scores, (1, 0, 2))


@pytest.mark.parametrize("perturbation_batch", [1, 32])
def test_the_template_scores_perturbed_inputs(tiny, perturbation_batch):
    # The tiny model is linear up to its softmax: the logits of 1x and 2x the image are
    # z and 2z. Class 0: w = [2, 4], L = 2 A0 - 20 = [[0, 16], [64, 80]], LOGIT_MAP_0.
    # Class 1: w = [-4.5, -9], L = -4.5 A0 + 45 <= 0: an empty map.
    cam = ScaledInputs(tiny)
    cam.perturbation_batch = perturbation_batch
    maps = cam.heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], LOGIT_MAP_0)
    assert_map(maps[0, 1], LOGIT_MAP_1)


# -- the template's checks -------------------------------------------------------------------
def test_bad_arguments(tiny):
    with pytest.raises(TypeError, match="model must be a keras.Model; got str"):
        GradCAM("model")
    with pytest.raises(ValueError, match="score must be one of 'auto', 'logit', 'output'; got 'proba'"):
        GradCAM(tiny, score="proba")
    with pytest.raises(ValueError, match="score='logit' needs a model that ends in a softmax"):
        GradCAM(make_functional(activation=None), score="logit")
    with pytest.raises(ValueError, match="perturbation_batch must be a positive integer; got 0"):
        AblationCAM(tiny, perturbation_batch=0)
    with pytest.raises(ValueError, match=r"expects images of shape \(4, 4, 1\).*got a batch of shape \(1, 5, 4, 1\)"):
        GradCAM(tiny).heatmaps(np.zeros((1, 5, 4, 1), np.float32))
    with pytest.raises(ValueError, match="batch_size must be a positive integer; got 0"):
        GradCAM(tiny).heatmaps(X, batch_size=0)
    with pytest.raises(ValueError, match="Target 2 is out of range"):
        GradCAM(tiny).heatmaps(X, targets=2)


def test_a_layer_that_runs_twice_is_refused():
    inputs = keras.Input((4, 4, 1))
    shared = keras.layers.Conv2D(1, 1, name="shared")
    x = keras.layers.GlobalAveragePooling2D()(shared(shared(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(ValueError, match="Layer 'shared' ran 2 times in one forward pass"):
        GradCAM(model, layer="shared").heatmaps(X)


def test_maps_are_normalised_without_nan(tiny):
    # Class 1's Grad-CAM map is all zero before normalisation: it stays zero, no NaN.
    maps = GradCAM(tiny).heatmaps(np.concatenate([X, X]), targets=[1, 0])
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert_map(maps[1, 0], LOGIT_MAP_1)
    assert maps[1, 1].max() == 1
