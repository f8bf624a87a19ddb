"""Shapley-CAM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, X, assert_map

from gradcam.methods import GradCAM, ShapleyCAM
from gradcam.methods.base import EmptyMapWarning

# Activations A0 = [[7, 1], [7, 5]] (mean 5), A1 = [[2, 0], [0, 2]] (mean 1).
A = np.stack([[[7, 1], [7, 5]], [[2, 0], [0, 2]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 0.5], [-2, 1]], np.float32)  # channel x class


def make_quadratic():
    """Input (2, 2, 2) -> identity 1x1 ``conv`` -> ``A + A * A`` -> pooling -> Dense W,
    softmax: the logit ``y_c = sum_k W[k, c] mean_ij (A_k + A_k^2)``, so
    ``G_k = W[k, c] (1 + 2 A_k) / 4`` and ``H A_k = W[k, c] 2 A_k / 4`` (H is diagonal,
    ``2 W[k, c] / 4``); ``G - H A / 2 = W[k, c] (1 + A_k) / 4``."""
    inputs = keras.Input((2, 2, 2))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    a = conv(inputs)
    x = keras.layers.Add()([a, keras.layers.Multiply()([a, a])])
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)), name="quadratic")
    conv.set_weights([np.eye(2, dtype=np.float32)[None, None]])
    dense.set_weights([W])
    return model


def test_shapleycam_hand_computed():
    # w_k = mean_ij W[k, c] (1 + A_k) / 4 = W[k, c] (1 + mean A_k) / 4 = W[k, c] [6, 2] / 4.
    # Class 0: w = [1.5, -1], L = 1.5 A0 - A1 = [[8.5, 1.5], [10.5, 5.5]], / max.
    # Class 1: w = [0.75, 0.5], L = 0.75 A0 + 0.5 A1 = [[6.25, 0.75], [5.25, 4.75]], / max.
    # Logits: mean(A0 + A0^2) = 5 + 31 = 36, mean(A1 + A1^2) = 1 + 2 = 3: y = [30, 21].
    result = ShapleyCAM(make_quadratic(), layer="conv").compute(A, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], np.array([[8.5, 1.5], [10.5, 5.5]], np.float32) / 10.5)
    assert_map(result.heatmaps[0, 1], np.array([[6.25, 0.75], [5.25, 4.75]], np.float32) / 6.25)
    np.testing.assert_allclose(result.scores, [[30, 21]], atol=1e-4)


def test_shapleycam_one_target_as_several():
    cam = ShapleyCAM(make_quadratic(), layer="conv")
    together = cam.heatmaps(np.concatenate([A, A[:, ::-1] * 0.5]), targets=[1, 0])
    for n, image in enumerate([A, A[:, ::-1] * 0.5]):
        for k, target in enumerate([1, 0]):
            assert_map(together[n, k], cam.heatmaps(image, targets=target)[0, 0], atol=1e-6)


def test_shapleycam_differs_from_gradcam_where_the_score_is_not_linear():
    # Grad-CAM: w = W[k, c] (1 + 2 mean A_k) / 4 = W[k, 0] [11, 3] / 4 = [2.75, -1.5]:
    # L = [[16.25, 2.75], [19.25, 10.75]], / max.
    maps = GradCAM(make_quadratic(), layer="conv").heatmaps(A, targets=0)
    assert_map(maps[0, 0], np.array([[16.25, 2.75], [19.25, 10.75]], np.float32) / 19.25)


def test_shapleycam_is_gradcam_on_a_linear_head(tiny):
    # The tiny model pools then applies a dense layer: H A = 0, Grad-CAM's weights.
    with pytest.warns(EmptyMapWarning):
        maps = ShapleyCAM(tiny).heatmaps(X, targets=[0, 1])
    assert_map(maps[0, 0], LOGIT_MAP_0)
    assert_map(maps[0, 1], np.zeros((2, 2), np.float32))
