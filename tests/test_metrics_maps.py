"""gradcam.metrics.maps: upsampling (as keras.ops.image.resize), ranking, checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradcam import backend
from gradcam.metrics.maps import check_maps, rank_pixels, upsample


def keras_resize(maps, size):
    resized = keras.ops.image.resize(
        maps[..., None].astype(np.float32), size, interpolation="bilinear", antialias=False
    )
    return backend.current().to_numpy(resized)[..., 0]


def test_upsample_by_hand():
    # 1x2 -> 1x4: samples at x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    out = upsample(np.array([[[0.0, 1.0]]]), (1, 4))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[0.0, 0.25, 0.75, 1.0]]])
    # 2x2 -> 3x3: samples at -1/6 (clamped to 0), 0.5 and 7/6 (clamped to 1) on each axis.
    out = upsample(np.array([[[0.0, 4.0], [8.0, 12.0]]]), (3, 3))
    np.testing.assert_array_equal(out[0], [[0, 2, 4], [4, 6, 8], [8, 10, 12]])


@pytest.mark.parametrize(
    "shape, size",
    [((2, 3), (3, 4)), ((2, 2), (224, 224)), ((7, 7), (224, 224)), ((5, 3), (3, 4)), ((4, 6), (2, 3)),
     ((1, 1), (3, 4)), ((3, 4), (3, 4)), ((14, 14), (240, 260)), ((9, 4), (4, 9))],
)
def test_upsample_matches_keras_resize(shape, size):
    maps = np.random.default_rng(0).random((2,) + shape).astype(np.float32)
    np.testing.assert_allclose(upsample(maps, size), keras_resize(maps, size), atol=2e-6, rtol=0)


def test_upsample_same_size_is_a_float32_copy():
    maps = np.arange(12, dtype=np.float64).reshape(1, 3, 4)
    out = upsample(maps, (3, 4))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, maps)
    out[...] = -1
    np.testing.assert_array_equal(maps, np.arange(12).reshape(1, 3, 4))


def test_upsample_leaves_the_maps_alone():
    maps = np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32)
    before = maps.copy()
    upsample(maps, (4, 4))
    np.testing.assert_array_equal(maps, before)


def test_rank_pixels_descending_ties_by_row_major_index():
    maps = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.2, 0.5], [0.5, 0.9]]])
    np.testing.assert_array_equal(rank_pixels(maps), [[0, 2, 1, 3], [0, 1, 2, 3], [3, 1, 2, 0]])


def test_rank_pixels_integer_and_boolean_maps():
    np.testing.assert_array_equal(rank_pixels(np.array([[[0, 3, 255]]], np.uint8)), [[2, 1, 0]])
    np.testing.assert_array_equal(rank_pixels(np.array([[[False, True, True]]])), [[1, 2, 0]])


def test_rank_pixels_of_a_3x4_map():
    maps = np.array([[[0.1, 0.7, 0.7, 0.0], [0.3, 0.3, 0.9, 0.0], [0.7, 0.2, 0.0, 0.3]]])
    np.testing.assert_array_equal(rank_pixels(maps), [[6, 1, 2, 8, 4, 5, 11, 9, 0, 3, 7, 10]])


def test_check_maps_upsamples_to_the_images():
    docs = np.zeros((2, 3, 4, 3), np.uint8)
    images, maps = check_maps(docs, np.ones((2, 1, 2)))
    assert images.shape == (2, 3, 4, 3)
    assert maps.shape == (2, 3, 4) and maps.dtype == np.float32
    np.testing.assert_array_equal(maps, np.ones((2, 3, 4)))


def test_check_maps_one_image_as_rank_3():
    images, maps = check_maps(np.zeros((3, 4, 1)), np.zeros((1, 3, 4)))
    assert images.shape == (1, 3, 4, 1) and maps.shape == (1, 3, 4)


@pytest.mark.parametrize(
    "heatmaps, message",
    [
        (np.zeros((2, 3, 4)), r"one map per image: docs has 1 images of shape \(3, 4, 1\), heatmaps has 2"),
        (np.zeros((3, 4)), r"Expected heatmaps of shape \(N, h, w\), one map per image; got shape \(3, 4\)\."),
        (np.zeros((1, 1, 3, 4)), r"got shape \(1, 1, 3, 4\) \(the engines' heatmaps are \(N, K, h, w\): pass heatmaps\[:, k\]\)"),
        (np.zeros((1, 0, 4)), r"got shape \(1, 0, 4\)"),
    ],
)
def test_check_maps_refuses_shapes(heatmaps, message):
    with pytest.raises(ValueError, match=message):
        check_maps(np.zeros((1, 3, 4, 1)), heatmaps)


def test_nan_maps_are_refused_naming_the_maps():
    maps = np.zeros((3, 2, 2))
    maps[1, 0, 1] = np.nan
    maps[2, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"heatmaps \[1, 2\] contain NaN or infinite values"):
        check_maps(np.zeros((3, 4, 4, 3)), maps)
    with pytest.raises(ValueError, match=r"heatmaps \[1, 2\] contain NaN"):
        rank_pixels(maps)


def test_bad_docs_and_types():
    with pytest.raises(ValueError, match="docs contains 4 NaN"):
        check_maps(np.full((1, 2, 2, 1), np.nan), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="Expected docs to have rank 4"):
        check_maps(np.zeros((2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="heatmaps must be an array of numbers; got dtype <U1"):
        check_maps(np.zeros((1, 2, 2, 1)), np.full((1, 2, 2), "a"))


@pytest.mark.parametrize("size", [(0, 4), (3,), (3, 4, 5), (2.0, 3), (True, 3), "ab", 5])
def test_upsample_refuses_bad_sizes(size):
    with pytest.raises(ValueError, match=r"size must be \(height, width\), two positive integers; got"):
        upsample(np.zeros((1, 2, 2)), size)
