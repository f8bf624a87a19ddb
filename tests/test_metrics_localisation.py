"""The pointing games against values computed by hand.

The upsampled map used below: ``[[0, 1], [0, 0]]`` at ``(4, 4)``. With half-pixel
centres, output rows sample input rows at ``-0.25, 0.25, 0.75, 1.25`` (clamped to 0 and
1), so row weights of input row 0 are ``[1, 0.75, 0.25, 0]`` and column weights of input
column 1 are ``[0, 0.25, 0.75, 1]``: the map is their outer product, largest (1) at row 0,
column 3; its sum is ``2 * 2 = 4``, and its sum over rows 0-1 and columns 2-3 is
``(1 + 0.75) * (0.75 + 1) = 3.0625``.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradcam.metrics import energy_pointing_game, pointing_game

SMALL = np.array([[[0, 1], [0, 0]]], np.float32)
UPSAMPLED = np.outer([1, 0.75, 0.25, 0], [0, 0.25, 0.75, 1])


def one_peak(row, column, shape=(4, 4)):
    heatmap = np.zeros((1,) + shape, np.float32)
    heatmap[0, row, column] = 1
    return heatmap


@pytest.mark.parametrize(
    "box, tolerance, hit",
    [
        ((2, 1, 3, 2), 0, 1),  # the one pixel (row 1, column 2)
        ((0, 0, 2, 2), 0, 0),  # x1 = 2 is exclusive: column 2 is outside
        ((0, 0, 3, 2), 0, 1),
        ((3, 1, 4, 2), 0, 0),  # one column to the right
        ((3, 1, 4, 2), 1, 1),  # grown by one pixel
        ((0, 3, 4, 4), 1, 0),  # two rows below: one pixel is not enough
        ((0, 3, 4, 4), 2, 1),
    ],
)
def test_pointing_game_box_edges_and_tolerance(box, tolerance, hit):
    result = pointing_game(one_peak(1, 2), [box], (4, 4), tolerance=tolerance)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [hit])


def test_pointing_game_tolerance_grows_the_box_not_a_circle():
    # The peak (0, 0) is 2 rows and 2 columns from the box's corner (2, 2): inside the box
    # grown by 2 px, although its Euclidean distance, sqrt(8), is more than 2.
    np.testing.assert_array_equal(pointing_game(one_peak(0, 0), [(2, 2, 4, 4)], (4, 4), tolerance=2), [1])
    np.testing.assert_array_equal(pointing_game(one_peak(0, 0), [(3, 3, 4, 4)], (4, 4), tolerance=2), [0])


def test_pointing_game_boxes_at_the_image_edges():
    maps = np.concatenate([one_peak(0, 0), one_peak(3, 3), one_peak(0, 3)])
    boxes = [(0, 0, 1, 1), (3, 3, 4, 4), (0, 0, 4, 4)]
    np.testing.assert_array_equal(pointing_game(maps, boxes, (4, 4), tolerance=0), [1, 1, 1])
    # a box grown past the image's edge still holds the pixels inside it
    np.testing.assert_array_equal(pointing_game(maps[:1], [(1, 1, 2, 2)], (4, 4), tolerance=100), [1])


def test_pointing_game_takes_the_first_maximum_in_row_major_order():
    heatmap = np.zeros((1, 4, 4), np.float32)
    heatmap[0, 2, 0] = heatmap[0, 0, 3] = 1  # two equal maxima: (0, 3) comes first
    np.testing.assert_array_equal(pointing_game(heatmap, [(3, 0, 4, 1)], (4, 4), tolerance=0), [1])
    np.testing.assert_array_equal(pointing_game(heatmap, [(0, 2, 1, 3)], (4, 4), tolerance=0), [0])


def test_pointing_game_all_zero_map_is_a_miss():
    maps = np.zeros((1, 4, 4), np.float32)
    np.testing.assert_array_equal(pointing_game(maps, [(0, 0, 4, 4)], (4, 4)), [0])


def test_pointing_game_upsamples_the_map():
    np.testing.assert_array_equal(pointing_game(SMALL, [(3, 0, 4, 1)], (4, 4), tolerance=0), [1])
    np.testing.assert_array_equal(pointing_game(SMALL, [(2, 0, 3, 1)], (4, 4), tolerance=0), [0])


def test_pointing_game_several_boxes_per_image_and_an_array_of_boxes():
    maps = np.concatenate([one_peak(1, 2), one_peak(3, 0)])
    boxes = [[(0, 0, 1, 1), (2, 1, 3, 2)], (0, 0, 1, 1)]
    np.testing.assert_array_equal(pointing_game(maps, boxes, (4, 4), tolerance=0), [1, 0])
    array = np.array([(2, 1, 3, 2), (0, 3, 1, 4)])
    np.testing.assert_array_equal(pointing_game(maps, array, (4, 4), tolerance=0), [1, 1])


def test_energy_pointing_game_hand_computed():
    maps = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    # rows 0-1, columns 0-1: 0 + 1 + 4 + 5 = 10 of 120
    result = energy_pointing_game(maps, [(0, 0, 2, 2)], (4, 4))
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [10 / 120], rtol=1e-6)
    # two overlapping boxes count their union once: + pixel (0, 2) = 2
    np.testing.assert_allclose(energy_pointing_game(maps, [[(0, 0, 2, 2), (1, 0, 3, 1)]], (4, 4)), [0.1], rtol=1e-6)
    np.testing.assert_allclose(energy_pointing_game(maps, [(0, 0, 4, 4)], (4, 4)), [1.0], rtol=1e-6)


def test_energy_pointing_game_upsamples_the_map():
    np.testing.assert_allclose(energy_pointing_game(SMALL, [(2, 0, 4, 2)], (4, 4)), [3.0625 / 4], rtol=1e-6)
    assert UPSAMPLED.sum() == 4 and UPSAMPLED[:2, 2:].sum() == 3.0625


def test_energy_pointing_game_all_zero_map_is_zero():
    np.testing.assert_array_equal(energy_pointing_game(np.zeros((1, 4, 4)), [(0, 0, 4, 4)], (4, 4)), [0])


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([(0, 0, 5, 4)], r"boxes\[0\] has the box \(0.0, 0.0, 5.0, 4.0\); expected .* x1 <= 4"),
        ([(2, 0, 2, 4)], r"0 <= x0 < x1"),
        ([(0, 3, 4, 1)], r"boxes\[0\] has the box \(0.0, 3.0, 4.0, 1.0\)"),
        ([(0, 0, float("nan"), 4)], r"boxes\[0\] has the box"),
        ([(0, 0, 4)], r"boxes\[0\] must be one box \(x0, y0, x1, y1\) or a list of them; got shape \(3,\)"),
        ([(0, 0, 4, 4), (0, 0, 4, 4)], "boxes has 2 entries for 1 maps"),
    ],
)
def test_bad_boxes(boxes, message):
    for metric in (pointing_game, energy_pointing_game):
        with pytest.raises(ValueError, match=message):
            metric(one_peak(0, 0), boxes, (4, 4))


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance must be a non-negative number of pixels; got -1"):
        pointing_game(one_peak(0, 0), [(0, 0, 1, 1)], (4, 4), tolerance=-1)
    with pytest.raises(ValueError, match="image_shape must be .*; got None"):
        pointing_game(one_peak(0, 0), [(0, 0, 1, 1)], None)
    with pytest.raises(ValueError, match=r"image_shape must be .*; got \(4, 0\)"):
        energy_pointing_game(one_peak(0, 0), [(0, 0, 1, 1)], (4, 0))
    with pytest.raises(ValueError, match=r"heatmaps \[0\] have negative values"):
        energy_pointing_game(-one_peak(0, 0), [(0, 0, 1, 1)], (4, 4))
    with pytest.raises(ValueError, match=r"heatmaps of shape \(N, h, w\)"):
        pointing_game(np.zeros((4, 4)), [(0, 0, 1, 1)], (4, 4))
    with pytest.raises(TypeError, match=r"boxes\[0\] must hold numbers"):
        pointing_game(one_peak(0, 0), [("a", 0, 1, 1)], (4, 4))
