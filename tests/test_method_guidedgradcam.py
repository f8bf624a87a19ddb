"""Guided Grad-CAM against maps computed by hand. Run once per KERAS_BACKEND.

The "guided" model, for a 4x4 one-channel input ``x`` (:data:`GX`):

* ``split``: a 1x1 Conv2D with the fused activation ``relu``, kernel ``[1, -1]``, no bias:
  ``a = relu(x)``, ``b = relu(-x)``;
* 2x2 average pooling: ``a' = [[0.5, 1.5], [0, 1.25]]``, ``b' = [[0.5, 0], [0.75, 0.25]]``;
* ``mix``: a 1x1 Conv2D, ``u0 = a' - b'``, ``u1 = -a' + 2 b'``, no bias:
  ``u0 = [[0, 1.5], [-0.75, 1]]``, ``u1 = [[0.5, -1.5], [1.5, -0.75]]``;
* ``relu``: a ReLU layer (the explained layer, ``A = relu(u)``), then global average
  pooling and ``predictions``, Dense with kernel ``W = [[1, -1], [-0.5, 1]]`` (channel x
  class), no bias, no softmax: ``y = [0.375, -0.125]``.

Class 0: ``dy/dA = W[:, 0] / 4 = [0.25, -0.125]``; Grad-CAM ``L = ReLU(0.25 A0 - 0.125
A1) = [[0, 0.375], [0, 0.25]]``, ``/ max = [[0, 1], [0, 2/3]]``. Plain backpropagation
passes ``-0.125`` back through ``relu`` where ``u1 > 0``; guided backpropagation does not
(a negative gradient), nor the negative gradients reaching ``split``'s ReLU for ``b``.
Plain and guided gradients of ``y0`` with respect to ``x``, times 16::

    plain  [[0.5, 1, 1, 1], [0.5, 0, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]]
    guided [[0,   0, 1, 1], [0,   0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0]]

Class 1: ``dy/dA = [-0.25, 0.25]``; ``L = [[0.125, 0], [0.375, 0]]``, ``/ max = [[1/3,
0], [1, 0]]``; the guided gradient times 8 is -1 at ``(0, 1)``, ``(2, 1)`` and ``(3, 0)``
and 0 elsewhere (the plain one is nonzero at 13 pixels).

Bilinear resizing (half-pixel centres) from 2 to 4 samples at source positions ``[0,
0.25, 0.75, 1]`` (clamped at the edges): ``[v0, 0.75 v0 + 0.25 v1, 0.25 v0 + 0.75 v1,
v1]`` along each axis. Both resized maps have a zero (their minimum is 0).
"""

from __future__ import annotations

import threading
import warnings

import keras
import numpy as np
import pytest
from helpers.tiny import assert_map, make_functional
from PIL import Image

import gradcam
from gradcam.checks import ArgumentError
from gradcam.methods import GradCAM, GuidedGradCAM
from gradcam.methods.base import EmptyMapWarning
from gradcam.methods.smoothing import AUGMENTATIONS
from gradcam.render import pixels_to_image
from gradcam.targets import Contrast, Output

GX = np.array([[1, -2, 2, 2], [1, 0, 1, 1], [0, -1, 3, 1], [-2, 0, 1, -1]], np.float32).reshape(1, 4, 4, 1)
W = np.array([[1, -1], [-0.5, 1]], np.float32)
# bilinear resizing from 2 to 4 (see the module's docstring): R @ map @ R.T
RESIZE = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], np.float32)
# Grad-CAM's maps resized to 4x4
UP_0 = np.array([[0, 1 / 4, 3 / 4, 1], [0, 11 / 48, 11 / 16, 11 / 12], [0, 3 / 16, 9 / 16, 3 / 4],
                 [0, 1 / 6, 1 / 2, 2 / 3]], np.float32)
UP_1 = np.array([[1 / 3, 1 / 4, 1 / 12, 0], [1 / 2, 3 / 8, 1 / 8, 0], [5 / 6, 5 / 8, 5 / 24, 0],
                 [1, 3 / 4, 1 / 4, 0]], np.float32)
GUIDED_0 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0]], np.float32) / 16
PLAIN_0 = np.array([[0.5, 1, 1, 1], [0.5, 0, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]], np.float32) / 16
GUIDED_1 = np.zeros((4, 4), np.float32)
GUIDED_1[0, 1] = GUIDED_1[2, 1] = GUIDED_1[3, 0] = -1 / 8
# pixels: guided gradient times the resized map, / max |.|
PIXELS_0 = np.array([[0, 0, 3 / 4, 1], [0, 0, 11 / 16, 11 / 12], [0, 0, 9 / 16, 3 / 4], [0, 0, 1 / 2, 0]],
                    np.float32)
PIXELS_1 = np.zeros((4, 4), np.float32)
PIXELS_1[0, 1], PIXELS_1[2, 1], PIXELS_1[3, 0] = -1 / 4, -5 / 8, -1

#: The explained layer's kinds of ReLU, all guided (the values stay below 6).
RELUS = {
    "ReLU": lambda: keras.layers.ReLU(name="relu"),
    "Activation": lambda: keras.layers.Activation("relu", name="relu"),
    "ReLU6": lambda: keras.layers.ReLU(max_value=6.0, name="relu"),
    "Activation relu6": lambda: keras.layers.Activation("relu6", name="relu"),
}


def make_guided(relu=RELUS["ReLU"], name="guided"):
    inputs = keras.Input((4, 4, 1))
    split = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", name="split")
    mix = keras.layers.Conv2D(2, 1, use_bias=False, name="mix")
    dense = keras.layers.Dense(2, use_bias=False, name="predictions")
    x = relu()(mix(keras.layers.AveragePooling2D(2)(split(inputs))))
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)), name=name)
    split.set_weights([np.array([1, -1], np.float32).reshape(1, 1, 1, 2)])
    mix.set_weights([np.array([[1, -1], [-1, 2]], np.float32).reshape(1, 1, 2, 2)])
    dense.set_weights([W])
    return model


@pytest.mark.parametrize("relu", sorted(RELUS))
def test_guidedgradcam_hand_computed(relu):
    model = make_guided(RELUS[relu])
    result = GuidedGradCAM(model, layer="relu").compute(GX, targets=[0, 1])
    assert result.pixels.shape == (1, 2, 4, 4, 1) and result.pixels.dtype == np.float32
    assert_map(result.pixels[0, 0, ..., 0], PIXELS_0)
    assert_map(result.pixels[0, 1, ..., 0], PIXELS_1)
    # one channel: the heatmap is |pixels| / max
    assert_map(result.heatmaps[0, 0], PIXELS_0)
    assert_map(result.heatmaps[0, 1], np.abs(PIXELS_1))
    np.testing.assert_allclose(result.scores, [[0.375, -0.125]], atol=1e-6)
    assert result.probas is None and not result.empty.any()


def test_the_pixels_are_the_guided_gradients_times_the_resized_gradcam_map():
    """The product of the parts computed by hand; with plain gradients it would differ
    where Grad-CAM's map is not zero ((0, 1): plain 1/16, guided 0)."""
    model = make_guided()
    maps = GradCAM(model, layer="relu").heatmaps(GX, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[0, 1], [0, 2 / 3]], np.float32))
    assert_map(maps[0, 1], np.array([[1 / 3, 0], [1, 0]], np.float32))
    pixels = GuidedGradCAM(model, layer="relu").compute(GX, targets=[0, 1]).pixels[0, ..., 0]
    for k, (guided, up) in enumerate([(GUIDED_0, UP_0), (GUIDED_1, UP_1)]):
        product = guided * up
        assert_map(pixels[k], product / np.abs(product).max())
    assert_map(RESIZE @ maps[0, 0] @ RESIZE.T, UP_0)
    assert_map(RESIZE @ maps[0, 1] @ RESIZE.T, UP_1)
    plain = PLAIN_0 * UP_0
    assert np.abs(pixels[0] - plain / np.abs(plain).max()).max() > 0.2


def test_the_resized_map_less_its_minimum():
    """A positive input in 2x2 blocks ``[[1, 2], [3, 4]]``: ``b = 0``, ``u1 = -a' < 0``, so
    ``A1 = 0`` and Grad-CAM's map for class 0 is ``a' / 4``, ``/ max = [[1, 2], [3, 4]] /
    4``, positive everywhere; the guided gradient is 1/16 at every pixel. The resized
    map's minimum (its corner, 1/4) is subtracted: ``P = (U - 1/4) / (3/4)``."""
    x = np.kron(np.array([[1, 2], [3, 4]], np.float32), np.ones((2, 2), np.float32)).reshape(1, 4, 4, 1)
    result = GuidedGradCAM(make_guided(), layer="relu").compute(x, targets=[0])
    resized = RESIZE @ (np.array([[1, 2], [3, 4]], np.float32) / 4) @ RESIZE.T
    assert resized.min() == 0.25
    assert_map(result.pixels[0, 0, ..., 0], (resized - 0.25) / 0.75)


def test_heatmap_sums_the_magnitude_over_channels():
    """Three input channels: ``M = sum_c |P_c|``, / max, at the input's resolution."""
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ReLU(name="r2")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)), name="rgb")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in model.get_weights()])
    images = rng.normal(0, 1, (2, 6, 6, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        result = GuidedGradCAM(model, layer="r2").compute(images, targets=[0, 2])
    assert result.pixels.shape == (2, 2, 6, 6, 3) and result.heatmaps.shape == (2, 2, 6, 6)
    magnitude = np.abs(result.pixels).sum(axis=-1)
    peaks = magnitude.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(result.heatmaps, magnitude / np.where(peaks > 0, peaks, 1), atol=1e-6)
    peaks = np.abs(result.pixels).max(axis=(2, 3, 4))
    np.testing.assert_allclose(peaks[peaks > 0], 1, atol=1e-6)
    assert (peaks > 0).all()  # no empty map: the check above is not vacuous


def test_a_model_with_no_relu_is_refused():
    with pytest.raises(ArgumentError, match=r"^Model 'tiny' has no ReLU to guide; guided Grad-CAM needs ReLUs") as error:
        GuidedGradCAM(make_functional())
    assert error.value.argument == "model"
    leaky = make_guided(lambda: keras.layers.LeakyReLU(negative_slope=0.1, name="relu"), name="leaky")
    leaky.get_layer("split").activation = keras.activations.linear  # no ReLU left
    with pytest.raises(ValueError, match=r"Model 'leaky' has no ReLU .*leaky ReLUs.* are not guided"):
        GuidedGradCAM(leaky, layer="relu")


def test_targets_of_other_kinds():
    """Output objects, functions and contrasts give the maps of the class targets they
    compute, in one call with several targets."""
    cam = GuidedGradCAM(make_guided(), layer="relu")
    plain = cam.compute(GX, targets=[0, 1])
    objects = cam.compute(GX, targets=[Output(1), Contrast(0, [1], alpha=0.0), lambda y: y[:, 0]])
    for got, k in zip(range(3), (1, 0, 0)):
        np.testing.assert_allclose(objects.pixels[:, got], plain.pixels[:, k], atol=1e-6)
        np.testing.assert_allclose(objects.heatmaps[:, got], plain.heatmaps[:, k], atol=1e-6)
    one = cam.compute(GX, targets=[1])
    np.testing.assert_allclose(one.pixels[:, 0], plain.pixels[:, 1], atol=1e-6)


def test_explanations_carry_the_pixels_and_format_as_image_draws_them():
    model = make_guided()
    expl = gradcam.explain_prediction(model, GX, targets=[0], layer="relu", method="guidedgradcam")
    target = expl.targets[0]
    assert_map(target.pixels[..., 0], PIXELS_0)
    assert_map(target.heatmap, PIXELS_0)
    overlay = gradcam.format_as_image(expl, resampling_filter=Image.NEAREST)
    assert overlay.mode == "RGBA" and overlay.size == expl.image.size
    expected = pixels_to_image(target.pixels).resize(expl.image.size, Image.NEAREST).convert("RGBA")
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(expected))
    # other methods have no pixels
    assert gradcam.explain_prediction(model, GX, targets=[0], layer="relu").targets[0].pixels is None


def test_pixels_to_image_is_deprocess_image():
    pixels = np.array([[[1.0, -1.0, 0.0], [2.0, 0.5, -0.5]]])
    standard = (pixels - pixels.mean()) / (pixels.std() + 1e-5)
    expected = (np.clip(standard * 0.1 + 0.5, 0, 1) * 255).astype(np.uint8)
    image = pixels_to_image(pixels)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert pixels_to_image(np.zeros((2, 2, 1))).mode == "L"
    with pytest.raises(ValueError, match=r"pixels must have shape \(h, w, 3\) or \(h, w, 1\); got shape \(2, 2\)"):
        pixels_to_image(np.zeros((2, 2)))


def test_eigen_smooth_applies_to_the_gradcam_map():
    """The pixels are the guided gradients times Grad-CAM's eigen-smoothed map, resized."""
    model = make_guided()
    maps = GradCAM(model, layer="relu").heatmaps(GX, targets=[0], eigen_smooth=True)
    pixels = GuidedGradCAM(model, layer="relu").compute(GX, targets=[0], eigen_smooth=True).pixels
    resized = RESIZE @ maps[0, 0] @ RESIZE.T
    product = GUIDED_0 * (resized - resized.min())
    assert_map(pixels[0, 0, ..., 0], product / np.abs(product).max())


def test_aug_smooth_averages_the_copies_pixels_and_heatmaps():
    cam = GuidedGradCAM(make_guided(), layer="relu")
    smoothed = cam.compute(GX, targets=[0, 1], aug_smooth=True)
    copies = [cam.compute((GX[:, :, ::-1] if flip else GX) * factor, targets=[0, 1])
              for flip, factor in AUGMENTATIONS]
    for field, width_axis in (("pixels", 3), ("heatmaps", 3)):
        parts = [np.flip(getattr(c, field), width_axis) if flip else getattr(c, field)
                 for c, (flip, _) in zip(copies, AUGMENTATIONS)]
        np.testing.assert_allclose(getattr(smoothed, field), np.mean(parts, axis=0), atol=1e-6)
    np.testing.assert_allclose(smoothed.scores, [[0.375, -0.125]], atol=1e-6)


def test_the_model_is_unchanged_and_serves_another_thread_meanwhile():
    model = make_guided()
    outputs = keras.ops.convert_to_numpy(model(GX))
    before = {layer.name: dict(vars(layer)) for layer in model.layers}
    seen = []

    def other_thread_reads(y):
        # traced inside the guided pass too: another thread calls the model meanwhile
        thread = threading.Thread(target=lambda: seen.append(keras.ops.convert_to_numpy(model(GX))))
        thread.start()
        thread.join()
        return y[:, 0]

    cam = GuidedGradCAM(model, layer="relu")
    result = cam.compute(GX, targets=[other_thread_reads])
    assert_map(result.pixels[0, 0, ..., 0], PIXELS_0)
    assert seen and all(np.allclose(s, outputs) for s in seen)
    after = {layer.name: dict(vars(layer)) for layer in model.layers}
    assert after.keys() == before.keys()
    for name in before:
        assert after[name].keys() == before[name].keys(), name
        assert all(after[name][key] is before[name][key] for key in before[name]), name
    assert model.get_layer("split").activation is keras.activations.relu
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(GX)), outputs)


def test_registered():
    assert gradcam.METHODS["guidedgradcam"] is GuidedGradCAM and gradcam.GuidedGradCAM is GuidedGradCAM


def test_differentiable_maps_are_the_heatmaps():
    cam = GuidedGradCAM(make_guided(), layer="relu")
    maps = cam.differentiable_maps(keras.ops.convert_to_tensor(GX), targets=[0, 1])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(maps)[0], [PIXELS_0, np.abs(PIXELS_1)], atol=1e-6)


def test_the_command_line_runs_it_beside_methods_of_the_layers_resolution(tmp_path, capsys):
    """Its maps are at the input's 32x32, Grad-CAM's at conv2's 16x16: the run resizes
    Grad-CAM's to 32x32 (bilinear) and writes both."""
    from helpers.cli import photo, run, save_model

    from gradcam.metrics.maps import upsample

    model_file = save_model(tmp_path / "tiny.keras")
    path = photo(tmp_path / "in" / "a.png", seed=1)
    status, _, stderr = run(capsys, "explain", path, "--model", model_file, "--out", tmp_path / "out",
                            "--method", "guidedgradcam", "--method", "gradcam", "--target", "0")
    assert status == 0, stderr
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        maps = npz["heatmaps"]
    model = keras.models.load_model(model_file)
    doc = gradcam.image_from_path(path, (32, 32))
    guided = GuidedGradCAM(model).heatmaps(doc, targets=[0])
    plain = GradCAM(model).heatmaps(doc, targets=[0])
    assert guided.shape == (1, 1, 32, 32) and plain.shape == (1, 1, 16, 16)
    np.testing.assert_allclose(maps.reshape(1, 2, 32, 32)[:, 0], guided[:, 0], atol=1e-5)
    np.testing.assert_allclose(maps.reshape(1, 2, 32, 32)[:, 1], upsample(plain[:, 0], (32, 32)), atol=1e-5)


def test_a_model_of_any_input_size():
    """JAX and PyTorch explain an input of any size; TensorFlow's traced resize needs the
    size, so there such a model is refused with a clear error."""
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(2, 2, strides=2, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)), name="any_size")
    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ArgumentError, match=r"Model 'any_size' takes images of any size \(None, None, 1\)"):
            GuidedGradCAM(model)
        return
    images = np.random.default_rng(0).normal(size=(1, 4, 6, 1)).astype(np.float32)
    result = GuidedGradCAM(model).compute(images, targets=[0])
    assert result.pixels.shape == (1, 1, 4, 6, 1) and result.heatmaps.shape == (1, 1, 4, 6)


@pytest.mark.parametrize("layer, passes", [("relu", 1), ("mix", 2), ("split", 2)])
def test_one_pass_unless_a_relu_runs_after_the_layer(layer, passes):
    """At ``relu`` nothing after the layer is guided: one pass gives both gradients. At
    ``mix`` (and ``split``) the explained ReLU runs after the layer, so Grad-CAM's gradient
    there is the plain one (through ``relu``), computed by a second pass: the pixels are
    the same guided gradients times the resized Grad-CAM map of that layer."""
    model = make_guided()
    cam = GuidedGradCAM(model, layer=layer)
    assert cam.backward_passes == passes
    maps = GradCAM(model, layer=layer).heatmaps(GX, targets=[0, 1])[0]
    pixels = cam.compute(GX, targets=[0, 1]).pixels[0, ..., 0]
    for k, guided in enumerate([GUIDED_0, GUIDED_1]):
        up = maps[k] if maps.shape[-1] == 4 else RESIZE @ maps[k] @ RESIZE.T
        product = guided * (up - up.min())
        peak = np.abs(product).max()
        assert_map(pixels[k], product / peak if peak else product)


def test_the_one_pass_equals_the_two_passes():
    """The same engine made to run two passes (as where a ReLU follows the layer) gives
    the one pass's maps and pixels, for two targets and with eigen_smooth."""
    x = np.random.default_rng(3).normal(size=(3, 4, 4, 1)).astype(np.float32)
    one, two = GuidedGradCAM(make_guided(), layer="relu"), GuidedGradCAM(make_guided(), layer="relu")
    two._sizes = None
    assert (one.backward_passes, two.backward_passes) == (1, 2)
    for eigen_smooth in (False, True):
        a = one.compute(x, targets=[0, 1], eigen_smooth=eigen_smooth)
        b = two.compute(x, targets=[0, 1], eigen_smooth=eigen_smooth)
        np.testing.assert_allclose(a.pixels, b.pixels, atol=1e-6)
        np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-6)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_a_layer_the_explained_output_does_not_depend_on():
    """Two outputs: ``conv_b`` (after ``conv_a``'s ReLU, no ReLU after it) feeds only the
    second. Explaining the first at ``conv_b`` is refused as Grad-CAM refuses it
    (TensorFlow and PyTorch see that no gradient reaches the layer; JAX's gradients are
    zeros, so both give empty maps there): the single guided pass, whose probe also covers
    the input, could not see it, so a model of several outputs takes two passes."""
    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv_a")(inputs)
    b = keras.layers.Conv2D(2, 3, padding="same", name="conv_b")(a)
    first = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(a))
    second = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(b))
    model = keras.Model(inputs, [first, second], name="two_heads")
    cam = GuidedGradCAM(model, layer="conv_b")
    assert cam.backward_passes == 2
    images = np.random.default_rng(0).random((1, 6, 6, 1), np.float32)
    for engine in (GradCAM(model, layer="conv_b"), cam):
        if keras.backend.backend() == "jax":
            with pytest.warns(EmptyMapWarning):
                assert engine.compute(images, targets=[Output(output=0)]).empty.all()
        else:
            with pytest.raises(ArgumentError, match="model 'two_heads' does not depend on layer 'conv_b'"):
                engine.compute(images, targets=[Output(output=0)])
    # one output: every layer reaches it, and no ReLU runs after conv_b
    assert GuidedGradCAM(keras.Model(inputs, second), layer="conv_b").backward_passes == 1
