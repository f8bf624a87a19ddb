"""Eigen-Grad-CAM against maps computed by hand, and its sign rule. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
from helpers.tiny import assert_map
from helpers.method_models import make_pointwise, negate_svd

from gradcam.methods import EigenGradCAM

# The pointwise model: activations = the input; pooling then W (channel x class), so
# G_k = W[k, c] / 4 over the map. A0 = [[7, 1], [7, 5]], A1 = [[8, 4], [4, 4]]; positions
# in the order (0, 0), (0, 1), (1, 0), (1, 1); A - mean A: c0 = [2, -4, 2, 0],
# c1 = [3, -1, -1, -1].
A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 1], [2, -1]], np.float32)
# Class 0: G A = [A0, 2 A1] / 4, centred 4 X = [c0, 2 c1]: rows (2, 6), (-4, -2), (2, -2),
# (0, -2); (4X)^T (4X) = [[24, 16], [16, 48]], eigenvalues 56 and 16, v = [1, 2] / sqrt(5);
# 4 X v = [14, -8, -2, -4] / sqrt(5). The mean over channels of G A, [2.875, 1.125,
# 1.875, 1.625], has a positive dot product (21) with it: that sign. ReLU, / max.
MAP_0 = np.array([[1, 0], [0, 0]], np.float32)
# Class 1: G A = [A0, -A1] / 4, 4 X = [c0, -c1]: rows (2, -3), (-4, 1), (2, 1), (0, 1);
# (4X)^T (4X) = [[24, -8], [-8, 12]], eigenvalues 28 and 8, v = [2, -1] / sqrt(5);
# 4 X v = [7, -9, 3, -1] / sqrt(5); the mean over channels, (A0 - A1) / 8 = [-1, -3, 3, 1] / 8,
# has the dot product 28 / 8 > 0 with it. ReLU, / max: [[1, 0], [3/7, 0]].
MAP_1 = np.array([[1, 0], [3 / 7, 0]], np.float32)


def test_eigengradcam_hand_computed():
    maps = EigenGradCAM(make_pointwise(W), layer="conv").heatmaps(A, targets=[0, 1])
    assert_map(maps[0, 0], MAP_0)
    assert_map(maps[0, 1], MAP_1)


def test_eigengradcam_does_not_depend_on_the_sign_of_the_singular_vector(monkeypatch):
    negate_svd(monkeypatch)
    maps = EigenGradCAM(make_pointwise(W), layer="conv").heatmaps(A, targets=[0, 1])
    assert_map(maps[0, 0], MAP_0)
    assert_map(maps[0, 1], MAP_1)


def test_eigengradcam_sign_follows_the_mean_of_gradients_times_activations():
    # Negated weights negate G A: the same singular vectors, the mean over channels
    # negated, so the projection is negated: class 1, [-7, 9, -3, 1]: [[0, 1], [0, 1/9]].
    maps = EigenGradCAM(make_pointwise(-W), layer="conv").heatmaps(A, targets=1)
    assert_map(maps[0, 0], np.array([[0, 1], [0, 1 / 9]], np.float32))


def test_eigengradcam_several_images_equal_single_runs():
    images = np.concatenate([A, A[:, ::-1] * 2 + 1, -A])
    cam = EigenGradCAM(make_pointwise(W), layer="conv")
    together = cam.heatmaps(images, targets=[1, 0], batch_size=2)
    for n in range(3):
        np.testing.assert_allclose(together[n], cam.heatmaps(images[n], targets=[1, 0])[0], atol=1e-6)
