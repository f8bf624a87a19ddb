"""LayerCAM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, X, assert_map
from helpers.method_models import make_flat

from gradcam.methods import LayerCAM
from gradcam.methods.base import EmptyMapWarning


def test_layercam_hand_computed():
    # On make_flat (FLAT_GRADIENTS): L = ReLU(G0) A0 + ReLU(G1) A1
    #   = [[1, 0], [0, 10]] + [[0, 0], [0, -0.25]] = [[1, 0], [0, 9.75]] -> / 9.75.
    # (HiResCAM has 1.5 at (0, 0): there G1 = -0.1 and A1 = -5.)
    with pytest.warns(EmptyMapWarning):
        result = LayerCAM(make_flat()).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[1, 0], [0, 9.75]], np.float32) / 9.75)
    # Class 1: G = -0.01 everywhere, ReLU(G) = 0: all zero.
    assert_map(result.heatmaps[0, 1], np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[False, True]])
    np.testing.assert_allclose(result.scores, [[7.05, -1]], atol=1e-5)


def test_layercam_on_constant_gradients(tiny):
    # The tiny model pools globally: G = [0.025, 0.05] (class 0), all positive, so the map
    # is Grad-CAM's, LOGIT_MAP_0. Class 1: G = [-0.025, 0.075], ReLU(G) = [0, 0.075],
    # L = 0.075 A1 = -0.375 everywhere: all zero.
    with pytest.warns(EmptyMapWarning):
        maps = LayerCAM(tiny).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], LOGIT_MAP_0)
    assert_map(maps[0, 1], np.zeros((2, 2), np.float32))
