"""eigen_smooth and aug_smooth, every method's smoothing options, against maps computed
by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.tiny import LOGITS, X, assert_map
from helpers.method_models import make_pointwise

from gradcam.methods import METHODS, EigenCAM, EigenGradCAM, GradCAM, HiResCAM, KPCACAM
from gradcam.methods.smoothing import augment

# The pointwise model (activations = the input, pooling, W): G_k = W[k, c] / 4 over the
# map, so Grad-CAM's weighted activations w_k A_k equal G_k A_k: eigen_smooth gives
# Eigen-Grad-CAM's maps (worked out in test_method_eigengradcam.py).
A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 1], [2, -1]], np.float32)
MAP_0 = np.array([[1, 0], [0, 0]], np.float32)
MAP_1 = np.array([[1, 0], [3 / 7, 0]], np.float32)


@pytest.mark.parametrize("method", [GradCAM, HiResCAM])
def test_eigen_smooth_is_the_first_component_of_the_weighted_activations(method):
    maps = method(make_pointwise(W), layer="conv").heatmaps(A, targets=[0, 1], eigen_smooth=True)
    assert_map(maps[0, 0], MAP_0)
    assert_map(maps[0, 1], MAP_1)
    plain = EigenGradCAM(make_pointwise(W), layer="conv").heatmaps(A, targets=[0, 1])
    np.testing.assert_allclose(maps, plain, atol=1e-6)


@pytest.mark.parametrize("method", [EigenCAM, EigenGradCAM, KPCACAM])
def test_eigen_smooth_leaves_principal_components_as_they_are(method):
    cam = method(make_pointwise(W), layer="conv")
    np.testing.assert_allclose(cam.heatmaps(A, eigen_smooth=True), cam.heatmaps(A), atol=1e-6)


def test_eigen_smooth_needs_two_channels():
    cam = GradCAM(make_pointwise(np.array([[1, -1]], np.float32)), layer="conv")
    with pytest.raises(ValueError, match=r"eigen_smooth needs a layer with 2 channels or more; layer 'conv' has 1"):
        cam.heatmaps(A[..., :1], eigen_smooth=True)


@pytest.mark.parametrize("option", ["eigen_smooth", "aug_smooth"])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_smoothing_options_are_booleans(tiny, option, value):
    with pytest.raises(ValueError, match=rf"{option} must be True or False; got {value!r}"):
        GradCAM(tiny).heatmaps(X, **{option: value})


def test_aug_smooth_hand_computed(tiny):
    # Class 0: w = [0.025, 0.05] whatever the input (the tiny model is linear), and every
    # map scales with the factor, so only the flip matters. As it is: A0 = [[10, 18],
    # [42, 50]], A1 = -5: L = [[0, 0.2], [0.8, 1]]. Flipped: the blocks flip, A0 = [[18, 10],
    # [50, 42]], and filter 1 gives 1 - 4 = -3: L = 0.025 A0 - 0.15 = [[0.3, 0.1], [1.1, 0.9]],
    # / 1.1, flipped back: [[1, 3], [9, 11]] / 11. The average of three of each:
    result = GradCAM(tiny).compute(X, targets=0, aug_smooth=True)
    expected = (np.array([[0, 0.2], [0.8, 1]]) + np.array([[1, 3], [9, 11]]) / 11) / 2
    assert_map(result.heatmaps[0, 0], expected.astype(np.float32))
    # the scores are those of the image as it is
    np.testing.assert_allclose(result.scores, LOGITS[None, :1], atol=1e-5)


@pytest.mark.parametrize("name", ["gradcam", "scorecam", "eigencam", "shapleycam"])
def test_aug_smooth_averages_the_augmented_images_maps(name):
    images = np.concatenate([A, A[:, ::-1] * 0.5 + 1])
    cam = METHODS[name](make_pointwise(W), layer="conv")
    cam.warn_empty = False
    smoothed = cam.heatmaps(images, targets=[1, 0], aug_smooth=True, batch_size=1)
    for n in range(2):
        maps = [cam.heatmaps(images[n] * factor, targets=[1, 0])[0] for factor in (0.9, 1.0, 1.1)]
        maps += [cam.heatmaps(images[n, :, ::-1] * factor, targets=[1, 0])[0, :, :, ::-1] for factor in (0.9, 1.0, 1.1)]
        np.testing.assert_allclose(smoothed[n], np.mean(maps, axis=0), atol=1e-5)




def make_integer_pointwise(dtype):
    """An input ``(2, 2, 1)`` of an integer dtype, cast to float32 (a Rescaling by 1), a
    1x1 identity convolution ``conv`` (its activations are the image), global average
    pooling and Dense(2, softmax) with the kernel ``[[1, -1]]``: class 0's logit is the
    image's mean, and every method's map of class 0 is the image over its maximum."""
    inputs = keras.Input((2, 2, 1), dtype=dtype)
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    features = conv(keras.layers.Rescaling(1.0, name="cast")(inputs))
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(features)), name="integer_input")
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    dense.set_weights([np.array([[1, -1]], np.float32)])
    return model


# The image [[1, 3], [9, 250]], scaled by 0.9 and 1.1 in float32, rounded and clipped:
# 0.9 gives [0.9, 2.7, 8.1, 225] -> [1, 3, 8, 225]; 1.1 gives [1.1, 3.3, 9.9, 275] ->
# [1, 3, 10, 275], clipped to [1, 3, 10, 255] in uint8. Each map is its image over its
# maximum (the model is pointwise, so the flip changes nothing), averaged.
INTEGER_IMAGE = np.array([[1, 3], [9, 250]], np.float32)[None, :, :, None]
SCALED = {0.9: [[1, 3], [8, 225]], 1.0: [[1, 3], [9, 250]], "uint8": [[1, 3], [10, 255]], "int32": [[1, 3], [10, 275]]}


@pytest.mark.parametrize("dtype", ["uint8", "int32"])
@pytest.mark.parametrize("name", ["gradcam", "scorecam", "ablationcam"])  # gradients; perturbations
def test_aug_smooth_scales_integer_images_in_their_dtype(name, dtype):
    cam = METHODS[name](make_integer_pointwise(dtype), layer="conv")
    result = cam.compute(INTEGER_IMAGE, targets=0, aug_smooth=True)
    expected = np.mean([np.array(SCALED[key], np.float32) / np.max(SCALED[key]) for key in (0.9, 1.0, dtype)], 0)
    assert_map(result.heatmaps[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(result.scores, [[(1 + 3 + 9 + 250) / 4]], rtol=1e-6)  # the image as it is


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_aug_smooth_scales_float_images_by_the_factor_in_their_dtype(dtype):
    image = np.array([10, 2.5], dtype)  # one row of two pixels, one channel
    copies = keras.ops.convert_to_numpy(augment(image[None, None, :, None]))
    assert copies.dtype == np.dtype(dtype)
    factors = np.array([0.9, 1.0, 1.1], dtype)[:, None]
    np.testing.assert_array_equal(copies[:, 0, :, 0], np.concatenate([image * factors, image[::-1] * factors]))
