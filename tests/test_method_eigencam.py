"""Eigen-CAM against maps computed by hand, and its sign rule. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import X, assert_map
from helpers.method_models import make_pointwise, negate_svd

from gradcam.methods import EigenCAM
from gradcam.methods.base import EmptyMapWarning

# Activations (the pointwise model's input) with two channels that are not proportional.
# Centred, as rows (position, channel) in the order (0, 0), (0, 1), (1, 0), (1, 1):
# c0 = A0 - 5 = [2, -4, 2, 0], c1 = A1 - 5 = [3, -1, -1, -1];
# X^T X = [[24, 8], [8, 12]]: eigenvalues 28 and 8; the first right singular vector is
# v = [2, 1] / sqrt(5), and X v = (2 c0 + c1) / sqrt(5) = [7, -9, 3, -1] / sqrt(5) up to
# the sign. The mean activation over channels, [7.5, 2.5, 5.5, 4.5], has the dot product
# 52.5 - 22.5 + 16.5 - 4.5 = 42 > 0 with [7, -9, 3, -1]: that sign.
# ReLU, / max: [[1, 0], [3/7, 0]].
A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
MAP = np.array([[1, 0], [3 / 7, 0]], np.float32)
# With -A, the same singular vectors, but the mean activation is negated: the sign flips,
# L = [-7, 9, -3, 1] / sqrt(5), ReLU, / max: [[0, 1], [0, 1/9]].
NEGATED_MAP = np.array([[0, 1], [0, 1 / 9]], np.float32)
KERNEL = np.array([[1, 0], [0, 1]], np.float32)


def test_eigencam_hand_computed():
    maps = EigenCAM(make_pointwise(KERNEL), layer="conv").heatmaps(A, targets=[0, 1])
    # Every target gets the image's one map.
    assert_map(maps[0, 0], MAP)
    assert_map(maps[0, 1], MAP)


def test_eigencam_sign_follows_the_mean_activation():
    maps = EigenCAM(make_pointwise(KERNEL), layer="conv").heatmaps(np.concatenate([A, -A]), targets=0)
    assert_map(maps[0, 0], MAP)
    assert_map(maps[1, 0], NEGATED_MAP)


def test_eigencam_does_not_depend_on_the_sign_of_the_singular_vector(monkeypatch):
    # The SVD's sign is arbitrary: negating its singular vectors leaves the maps as they are.
    negate_svd(monkeypatch)
    maps = EigenCAM(make_pointwise(KERNEL), layer="conv").heatmaps(np.concatenate([A, -A]), targets=0)
    assert_map(maps[0, 0], MAP)
    assert_map(maps[1, 0], NEGATED_MAP)


def test_eigencam_on_the_tiny_model(tiny):
    # A1 = -5 everywhere: centred to zero. c0 = A0 - 30 = [-20, -12, 12, 20], v = [1, 0]:
    # L = [-20, -12, 12, 20], which correlates positively with the mean (A0 + A1) / 2.
    # ReLU, / max: [[0, 0], [12/20, 1]].
    maps = EigenCAM(tiny).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[0, 0], [0.6, 1]], np.float32))
    assert_map(maps[0, 1], np.array([[0, 0], [0.6, 1]], np.float32))


def test_eigencam_constant_activations_give_an_empty_map():
    # Centred activations all zero: the projection is zero, the map stays zero (no NaN).
    with pytest.warns(EmptyMapWarning):
        result = EigenCAM(make_pointwise(KERNEL), layer="conv").compute(np.full((1, 2, 2, 2), 3, np.float32))
    assert_map(result.heatmaps[0, 0], np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[True]])


def test_eigencam_runs_no_backward_pass(tiny, no_backward_pass):
    assert_map(EigenCAM(tiny).heatmaps(X)[0, 0], np.array([[0, 0], [0.6, 1]], np.float32))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_eigencam_several_images_equal_single_runs(batch_size):
    images = np.concatenate([A, -A, A[:, ::-1] * 2 + 1])
    cam = EigenCAM(make_pointwise(KERNEL), layer="conv")
    together = cam.heatmaps(images, batch_size=batch_size)
    for n in range(3):
        np.testing.assert_allclose(together[n], cam.heatmaps(images[n])[0], atol=1e-6)
