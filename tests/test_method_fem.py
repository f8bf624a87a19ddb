"""FEM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import assert_map
from helpers.method_models import make_pointwise

from gradcam.methods import FEM
from gradcam.methods.base import EmptyMapWarning

# The pointwise model: activations = the input. A0 = [[7, 1], [7, 5]]: mean 5, standard
# deviation sqrt(6) = 2.449; A1 = [[8, 4], [4, 4]]: mean 5, standard deviation sqrt(3) = 1.732.
A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 0], [0, 1]], np.float32)


def test_fem_hand_computed():
    # k = 0.5: thresholds 6.22 and 5.87; above them: the two 7s of A0 (w0 = 2/4) and the
    # 8 of A1 (w1 = 1/4). L = 0.5 A0 + 0.25 A1 = [[5.5, 1.5], [4.5, 3.5]], / max. Every
    # target gets the image's one map.
    maps = FEM(make_pointwise(W), layer="conv", k=0.5).heatmaps(A, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[5.5, 1.5], [4.5, 3.5]], np.float32) / 5.5)
    assert_map(maps[0, 1], np.array([[5.5, 1.5], [4.5, 3.5]], np.float32) / 5.5)


def test_fem_k_1():
    # k = 1: thresholds 7.45 and 6.73; only A1's 8 is above: L = 0.25 A1.
    maps = FEM(make_pointwise(W), layer="conv", k=1).heatmaps(A)
    assert_map(maps[0, 0], np.array([[1, 0.5], [0.5, 0.5]], np.float32))


def test_fem_default_k_2_finds_nothing_here():
    # k = 2: thresholds 9.90 and 8.46, above every activation: all weights 0, an empty map.
    with pytest.warns(EmptyMapWarning):
        result = FEM(make_pointwise(W), layer="conv").compute(A)
    assert_map(result.heatmaps[0, 0], np.zeros((2, 2), np.float32))


def test_fem_runs_no_backward_pass(no_backward_pass):
    maps = FEM(make_pointwise(W), layer="conv", k=1).heatmaps(A)
    assert_map(maps[0, 0], np.array([[1, 0.5], [0.5, 0.5]], np.float32))


@pytest.mark.parametrize("k", ["2", None, float("nan"), float("inf"), True])
def test_fem_bad_k(k):
    with pytest.raises(ValueError, match=r"k must be a finite number .*; got "):
        FEM(make_pointwise(W), layer="conv", k=k)
