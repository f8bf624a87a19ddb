"""Score-CAM against maps computed by hand. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import LOGITS, X, assert_map
from helpers.method_models import make_pointwise

from gradcam.methods import ScoreCAM
from gradcam.methods.base import EmptyMapWarning


def softmax_map(scores, activations):
    """ReLU(sum_k softmax(s)_k A_k) / max, from hand-computed scores ``s``."""
    weights = np.exp(scores) / np.exp(scores).sum()
    cam = np.maximum(np.tensordot(activations, weights, axes=([-1], [0])), 0)
    return (cam / cam.max() if cam.max() > 0 else cam).astype(np.float32)


# The tiny model (helpers/tiny.py), X = arange(16), x = 4 r + c at pixel (r, c):
# channel 0, A0 = 10 + 32 i + 8 j, upsampled to 4x4 with corners aligned (i = r / 3,
# j = c / 3): 10 + (32 r + 8 c) / 3, from 10 to 50; min-max: (4 r + c) / 15 = x / 15.
# Masked input x^2 / 15, sum 1240 / 15. Filter 0 (block sums) averages 1240 / 60 = 62/3;
# filter 1 (top-left minus bottom-right of each block) averages
# (0 - 25 + 4 - 49 + 64 - 169 + 100 - 225) / 60 = -5.
# s0 = 0.1 * 62/3 + 0.2 * -5 = 16/15 (class 0), -0.1 * 62/3 + 0.3 * -5 = -107/30 (class 1).
# Channel 1 (A1 = -5) is constant: a zero mask, a zero input, s1 = 0.
A0 = np.array([[10, 18], [42, 50]], np.float32)
TINY_A = np.stack([A0, np.full((2, 2), -5, np.float32)], axis=-1)
TINY_MAP_0 = softmax_map(np.array([16 / 15, 0]), TINY_A)  # 0.74396 A0 - 1.28021 > 0
# Class 1: w = softmax([-107/30, 0]) = [0.02747, 0.97253]; L <= 0.02747 * 50 - 4.86 < 0.

# The pointwise model: activations = the input, three channels, kernel W (channel x class).
C0 = np.array([[0, 4], [4, 0]], np.float32)  # mask [[0, 1], [1, 0]]; variance 4
C1 = np.array([[1, 1], [1, 3]], np.float32)  # mask [[0, 0], [0, 1]]; variance 0.75
C2 = np.full((2, 2), 2, np.float32)  # constant: a zero mask; variance 0
IMAGE = np.stack([C0, C1, C2], axis=-1)
W = np.array([[1, 0], [2, -1], [-1, 1]], np.float32)
# Masked by C0's mask, the pooled input is [8, 2, 4] / 4 = [2, 0.5, 1]; by C1's, [0, 3, 2] / 4
# = [0, 0.75, 0.5]; by C2's, 0. Logits z = W^T pooled:
# s = [2 + 1 - 1, 1.5 - 0.5, 0] = [2, 1, 0] (class 0); [-0.5 + 1, -0.75 + 0.5, 0] = [0.5, -0.25, 0].
SCORES = np.array([[2, 1, 0], [0.5, -0.25, 0]])


@pytest.mark.parametrize("perturbation_batch", [1, 3, 32])
def test_scorecam_hand_computed(tiny, perturbation_batch):
    with pytest.warns(EmptyMapWarning):
        result = ScoreCAM(tiny, perturbation_batch=perturbation_batch).compute(X, targets=[0, 1])
    assert_map(result.heatmaps[0, 0], TINY_MAP_0)
    assert_map(result.heatmaps[0, 1], np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(result.empty, [[False, True]])
    np.testing.assert_allclose(result.scores, LOGITS[None], atol=1e-5)


@pytest.mark.parametrize("perturbation_batch", [1, 2, 3, 4])
def test_scorecam_every_channel(perturbation_batch):
    # 2 does not divide the 3 channels: the last chunk repeats the last mask.
    cam = ScoreCAM(make_pointwise(W), layer="conv", perturbation_batch=perturbation_batch)
    maps = cam.heatmaps(IMAGE, targets=[0, 1])
    assert_map(maps[0, 0], softmax_map(SCORES[0], IMAGE))
    assert_map(maps[0, 1], softmax_map(SCORES[1], IMAGE))


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0]])
@pytest.mark.parametrize(
    "max_channels, channels",
    [
        (1, [0]),  # the channel of largest variance: w = [1], L = C0
        (2, [0, 1]),  # softmax over s0, s1 only; C2 weighs 0
        (3, [0, 1, 2]),
        (5, [0, 1, 2]),  # more than there are: every channel
    ],
)
def test_scorecam_max_channels(max_channels, channels, order):
    # order: the same model with its channels in another order (the kernel's rows too):
    # the same scores and maps, but the channels of largest variance are not the first.
    cam = ScoreCAM(make_pointwise(W[order]), layer="conv", max_channels=max_channels, perturbation_batch=2)
    maps = cam.heatmaps(IMAGE[..., order], targets=[0, 1])
    for k in range(2):
        assert_map(maps[0, k], softmax_map(SCORES[k, channels], IMAGE[..., channels]))


def test_scorecam_max_channels_chosen_per_image():
    # Image 2 holds [C2, C1, C0]: its channels of largest variance are 2 (C0), then 1 (C1).
    # Masked by C0's mask, its pooled input is [4, 2, 8] / 4 = [1, 0.5, 2]: z = W^T that
    # = [1 + 1 - 2, -0.5 + 2] = [0, 1.5]; by C1's, [2, 3, 0] / 4: z = [0.5 + 1.5, -0.75].
    # Image 1's are SCORES[:, :2]. Either image's map weighs C0 and C1.
    images = np.stack([IMAGE, IMAGE[..., [2, 1, 0]]])
    cam = ScoreCAM(make_pointwise(W), layer="conv", max_channels=2)
    maps = cam.heatmaps(images, targets=[0, 1])
    both = IMAGE[..., :2]
    assert_map(maps[0, 0], softmax_map(SCORES[0, :2], both))
    assert_map(maps[0, 1], softmax_map(SCORES[1, :2], both))
    assert_map(maps[1, 0], softmax_map(np.array([0, 2]), both))
    assert_map(maps[1, 1], softmax_map(np.array([1.5, -0.75]), both))
    # One channel: its weight is 1, and each image's map is its own C0.
    maps = ScoreCAM(make_pointwise(W), layer="conv", max_channels=1).heatmaps(images, targets=0)
    assert_map(maps[0, 0], C0 / 4)
    assert_map(maps[1, 0], C0 / 4)


def test_scorecam_runs_no_backward_pass(tiny, no_backward_pass):
    assert_map(ScoreCAM(tiny).heatmaps(X, targets=0)[0, 0], TINY_MAP_0)


def test_scorecam_bad_arguments(tiny):
    with pytest.raises(ValueError, match="perturbation_batch must be a positive integer; got 0"):
        ScoreCAM(tiny, perturbation_batch=0)
    with pytest.raises(ValueError, match="max_channels must be a positive integer; got 0"):
        ScoreCAM(tiny, max_channels=0)
    with pytest.raises(ValueError, match="max_channels must be a positive integer; got True"):
        ScoreCAM(tiny, max_channels=True)
