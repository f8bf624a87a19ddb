"""The model-free controls, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gradcam.reporting.controls import CONTROLS, RANDOM_METHOD, gaussian_map, sobel_map


def test_gaussian_map_by_hand():
    # 2 x 2: every pixel is (0.25, 0.25) from the centre, so all equal 1 after scaling.
    np.testing.assert_array_equal(gaussian_map(np.zeros((3, 2, 2, 3))), np.ones((3, 2, 2)))
    # 1 x 3 with sigma 0.5: offsets v = -1/3, 0, 1/3; exp(-(1/9) / 0.5) at the sides.
    side = np.exp(-(1 / 9 + 0) / (2 * 0.25))
    np.testing.assert_allclose(gaussian_map(np.zeros((1, 3, 1)), sigma=0.5), [[[side, 1.0, side]]], rtol=1e-6)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        gaussian_map(np.zeros((1, 3, 1)), sigma=0)


def test_sobel_map_by_hand():
    # Rows [0, 0, 1] (reflect-padded: 0 | 0 0 1 | 0): gx = 4 (I[x-1] - I[x+1]) = 0, -4, 0.
    image = np.tile(np.array([0.0, 0.0, 1.0]), (3, 1))[None, :, :, None]
    np.testing.assert_allclose(sobel_map(image), np.tile([0.0, 1.0, 0.0], (3, 1))[None])
    # Channels are averaged; a flat image has no edges.
    np.testing.assert_array_equal(sobel_map(np.full((1, 4, 4, 3), 7.0)), np.zeros((1, 4, 4)))
    np.testing.assert_allclose(sobel_map(np.repeat(image, 3, axis=3)), sobel_map(image))


def test_controls_and_the_random_method():
    assert set(CONTROLS) == {"gaussian", "sobel"}
    from gradcam.methods.registry import METHOD_NAMES

    assert RANDOM_METHOD == "randomcam" and RANDOM_METHOD in METHOD_NAMES
