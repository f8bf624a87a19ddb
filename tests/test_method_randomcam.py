"""Random-CAM: seeded weights, the same on every backend. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import assert_map
from helpers.method_models import make_pointwise

from gradcam.methods import RandomCAM

A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 0], [0, 1]], np.float32)
# numpy.random.RandomState(0).uniform(-1, 1, 2) = [0.09762701, 0.43037873]:
# L = w0 A0 + w1 A1 = [[4.1264189, 1.8191419], [2.4049040, 2.2096500]], / max.
SEED_0_MAP = np.array([[4.1264189, 1.8191419], [2.4049040, 2.2096500]], np.float32) / 4.1264189


def test_randomcam_seed_0(no_backward_pass):
    maps = RandomCAM(make_pointwise(W), layer="conv").heatmaps(np.concatenate([A, A]), targets=[0, 1])
    for n in range(2):  # the same weights for every image and target
        for k in range(2):
            assert_map(maps[n, k], SEED_0_MAP)


def test_randomcam_weights_follow_the_seed():
    first = RandomCAM(make_pointwise(W), layer="conv", seed=5).heatmaps(A)
    again = RandomCAM(make_pointwise(W), layer="conv", seed=5).heatmaps(A)
    other = RandomCAM(make_pointwise(W), layer="conv", seed=6).heatmaps(A)
    np.testing.assert_array_equal(first, again)
    # RandomState(5) draws [-0.556, 0.741], RandomState(6) [0.786, -0.336]: other maps.
    assert np.abs(first - other).max() > 0.05


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", None])
def test_randomcam_bad_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be (a non-negative integer|an integer in \[0, 2\*\*32\)); got "):
        RandomCAM(make_pointwise(W), layer="conv", seed=seed)
