"""Smooth MPRT, Efficient MPRT, SSIM and the discrete entropy, by hand on the tiny
"constant" model (tests/helpers/tiny.py: its trained Grad-CAM map of class 0 is
``[[0, 0.2], [0.8, 1]]``, after randomising ``predictions`` the reverse order, after
randomising ``conv`` too an all-zero map). Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, STEP_1_MAP, X, assert_map, make_constant

from gradcam.methods import GradCAM
from gradcam.metrics import EfficientMPRTResult, efficient_mprt, randomisation, smooth_mprt, ssim
from gradcam.metrics.sanity_checks import discrete_entropy

C1, C2 = 0.01**2, 0.03**2


def test_ssim_of_one_window_by_hand():
    a = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    b = 1 - a
    # Means 0.5, sample variances 1/3 (squared deviations 4 * 0.25 over 4 - 1), covariance -1/3.
    expected = (2 * 0.25 + C1) * (-2 / 3 + C2) / ((0.5 + C1) * (2 / 3 + C2))
    np.testing.assert_allclose(ssim(a, b), [expected], rtol=1e-6)
    np.testing.assert_allclose(ssim(a, a), [1.0], rtol=1e-6)


def test_ssim_is_the_mean_over_the_full_windows():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 4, 5))
    windows = [ssim(a[:, i : i + 3, j : j + 3], b[:, i : i + 3, j : j + 3])[0] for i in range(2) for j in range(3)]
    np.testing.assert_allclose(ssim(a, b, window=3), [np.mean(windows)], rtol=1e-5)
    with pytest.raises(ValueError, match=r"shapes \(1, 4, 5\) and \(1, 5, 4\)"):
        ssim(a, b.transpose(0, 2, 1))


def test_discrete_entropy_by_hand():
    maps = np.array([LOGIT_MAP_0, [[0, 0], [1, 1]], np.zeros((2, 2))], np.float32)
    np.testing.assert_allclose(discrete_entropy(maps), [np.log(4), np.log(2), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(discrete_entropy(maps, bins=1), [0, 0, 0])
    with pytest.raises(ValueError, match="bins must be a positive integer; got 0"):
        discrete_entropy(maps, bins=0)


def test_efficient_mprt_by_hand():
    model = make_constant()
    weights = [w.copy() for w in model.get_weights()]
    result = efficient_mprt(model, X)
    assert isinstance(result, EfficientMPRTResult)
    assert result.layers == ("predictions", "conv")
    assert result.heatmaps.shape == (1, 2, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], np.zeros((2, 2)))  # the fully randomised model's map
    # Four values in four of 100 bins: log 4; the all-zero map: 0; a rise of (0 - log 4) / log 4.
    np.testing.assert_allclose(result.complexity, [np.log(4)], rtol=1e-6)
    np.testing.assert_array_equal(result.randomised_complexity, [0.0])
    np.testing.assert_allclose(result.rise, [-1.0], rtol=1e-6)
    np.testing.assert_array_equal(result.targets, [0])
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_smooth_mprt_without_noise_is_the_cascading_test():
    result = smooth_mprt(make_constant(), X, samples=3, noise=0.0)
    plain = randomisation(make_constant(), X)
    assert result.layers == plain.layers
    np.testing.assert_allclose(result.heatmaps, plain.heatmaps, atol=1e-6)
    np.testing.assert_allclose(result.correlations[:, :1], [[-1.0]], rtol=1e-6)
    assert np.isnan(result.correlations[0, 1])  # an all-zero map has no ranking
    last = smooth_mprt(make_constant(), X, samples=2, noise=0.0, max_steps=1, every_step=False)
    assert last.heatmaps.shape == (1, 2, 2, 2)
    assert_map(last.heatmaps[0, 1], STEP_1_MAP)
    np.testing.assert_allclose(last.correlations, [[-1.0]], rtol=1e-6)


def test_smooth_mprt_averages_the_maps_of_the_documented_noisy_copies():
    samples, noise, seed = 4, 0.2, 7
    result = smooth_mprt(make_constant(), X, samples=samples, noise=noise, seed=seed, max_steps=1)
    draws = np.random.default_rng(seed).standard_normal((samples - 1, *X.shape), dtype=np.float32)
    copies = [X] + [X + noise * (X.max() - X.min()) * draw for draw in draws]
    engine = GradCAM(make_constant())
    expected = np.mean([engine.heatmaps(copy, [0])[0, 0] for copy in copies], axis=0)
    assert_map(result.heatmaps[0, 0], expected)
    again = smooth_mprt(make_constant(), X, samples=samples, noise=noise, seed=seed, max_steps=1)
    np.testing.assert_array_equal(result.heatmaps, again.heatmaps)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"samples": 0}, "samples must be a positive integer; got 0"),
        ({"noise": -0.1}, "noise must be a non-negative number (a fraction of each image's range); got -0.1"),
        ({"seed": -1}, "seed must be a non-negative integer; got -1"),
        ({"method": "gradkam"}, "gradkam"),
    ],
)
def test_smooth_mprt_bad_input(kwargs, message):
    with pytest.raises(ValueError) as error:
        smooth_mprt(make_constant(), X, **kwargs)
    assert message in str(error.value)
