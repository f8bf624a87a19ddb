"""XGrad-CAM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, LOGIT_MAP_1, X, assert_map
from helpers.method_models import make_flat

from gradcam.methods import XGradCAM
from gradcam.methods.base import EmptyMapWarning


def test_xgradcam_hand_computed():
    # On make_flat (FLAT_GRADIENTS), sum A0 = 120 and sum A1 = -20:
    #   w0 = sum G0 A0 / 120 = (0.1 * 10 - 0.1 * 42 + 0.2 * 50) / 120 = 6.8 / 120
    #   w1 = sum G1 A1 / -20 = (-0.1 * -5 + 0.05 * -5) / -20 = -0.0125
    # L = w0 A0 - 5 w1 = (6.8 A0 + 7.5) / 120 = [[75.5, 129.9], [293.1, 347.5]] / 120.
    with pytest.warns(EmptyMapWarning):
        result = XGradCAM(make_flat()).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[75.5, 129.9], [293.1, 347.5]], np.float32) / 347.5)
    # Class 1: G = -0.01 everywhere, w = [-0.01, -0.01], L = -0.01 A0 + 0.05 < 0: all zero.
    assert_map(result.heatmaps[0, 1], np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[False, True]])
    np.testing.assert_allclose(result.scores, [[7.05, -1]], atol=1e-5)


def test_xgradcam_on_constant_gradients_is_gradcam(tiny):
    # The tiny model pools globally: G_k is a constant g_k over the map, so
    # w_k = g_k sum A_k / sum A_k = g_k, Grad-CAM's weight (see helpers/tiny.py).
    with pytest.warns(EmptyMapWarning):
        maps = XGradCAM(tiny).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], LOGIT_MAP_0)
    assert_map(maps[0, 1], LOGIT_MAP_1)
