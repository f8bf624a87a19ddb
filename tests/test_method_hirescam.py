"""HiResCAM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, LOGIT_MAP_1, X, assert_map
from helpers.method_models import make_flat

from gradcam.methods import HiResCAM
from gradcam.methods.base import EmptyMapWarning


def test_hirescam_hand_computed():
    # On make_flat (FLAT_GRADIENTS): L = G0 A0 + G1 A1
    #   = [[1, 0], [-4.2, 10]] + [[0.5, 0], [0, -0.25]] = [[1.5, 0], [-4.2, 9.75]]
    # -> ReLU, / 9.75. (Grad-CAM's weights would give a map positive everywhere.)
    with pytest.warns(EmptyMapWarning):
        result = HiResCAM(make_flat()).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[1.5, 0], [0, 9.75]], np.float32) / 9.75)
    # Class 1: L = -0.01 (A0 + A1) = -0.01 [[5, 13], [37, 45]] < 0: all zero.
    assert_map(result.heatmaps[0, 1], np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[False, True]])
    np.testing.assert_allclose(result.scores, [[7.05, -1]], atol=1e-5)


def test_hirescam_on_constant_gradients_is_gradcam(tiny):
    # The tiny model pools globally: G_k = g_k everywhere, so sum_k G_k A_k = sum_k g_k A_k,
    # Grad-CAM's map (see helpers/tiny.py).
    with pytest.warns(EmptyMapWarning):
        maps = HiResCAM(tiny).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], LOGIT_MAP_0)
    assert_map(maps[0, 1], LOGIT_MAP_1)
