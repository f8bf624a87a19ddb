"""Grad-CAM element-wise against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
from helpers.tiny import X, assert_map
from helpers.method_models import make_flat

from gradcam.methods import GradCAMElementWise, HiResCAM


def test_gradcamelementwise_hand_computed():
    # On make_flat (FLAT_GRADIENTS), class 0: G0 A0 = [[1, 0], [-4.2, 10]] and
    # G1 A1 = -5 G1 = [[0.5, 0], [0, -0.25]]; ReLU, then the sum over channels:
    # [[1.5, 0], [0, 10]], / max.
    # Class 1: G = -0.01 everywhere: G0 A0 < 0 drops out, G1 A1 = 0.05 everywhere.
    result = GradCAMElementWise(make_flat()).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[0.15, 0], [0, 1]], np.float32))
    assert_map(result.heatmaps[0, 1], np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[False, False]])
    np.testing.assert_allclose(result.scores, [[7.05, -1]], atol=1e-5)


def test_gradcamelementwise_keeps_what_hirescam_cancels():
    # HiResCAM sums before the ReLU: class 1, -0.01 A0 + 0.05 < 0 everywhere, an empty map.
    hires = HiResCAM(make_flat())
    hires.warn_empty = False
    assert not hires.heatmaps(X, targets=1).any()
    assert GradCAMElementWise(make_flat()).heatmaps(X, targets=1).all()
