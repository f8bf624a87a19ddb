"""Bootstrap intervals and paired tests on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gradcam.reporting.statistics import bootstrap_band, bootstrap_interval, bootstrap_means, paired_test


def test_interval_of_constant_values_is_the_value():
    interval = bootstrap_interval([0.25] * 7, seed=3)
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.25, 0.25, 0.25, 7)


def test_interval_reproducible_with_a_seed_and_different_with_another():
    values = np.random.default_rng(1).normal(size=40)
    first, again = bootstrap_interval(values, seed=5), bootstrap_interval(values, seed=5)
    assert first == again
    assert bootstrap_interval(values, seed=6)[1:3] != first[1:3]


def test_interval_is_the_percentiles_of_the_bootstrap_means():
    values = np.array([0.0, 1.0, 2.0, 10.0])
    means = bootstrap_means(values, resamples=2000, seed=0)
    interval = bootstrap_interval(values, resamples=2000, seed=0, confidence=0.9)
    assert interval.mean == 3.25
    np.testing.assert_allclose([interval.low, interval.high], np.quantile(means, [0.05, 0.95]))
    # Two values: every resample mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    means = bootstrap_means([0.0, 1.0], resamples=40000, seed=0)
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    np.testing.assert_allclose([np.mean(means == 0), np.mean(means == 0.5)], [0.25, 0.5], atol=0.01)


def test_interval_covers_the_true_mean_of_a_normal_sample():
    values = np.random.default_rng(0).normal(loc=2.0, scale=1.0, size=400)
    interval = bootstrap_interval(values)
    assert interval.low < 2.0 < interval.high
    # The normal-theory half-width is 1.96 / sqrt(400) = 0.098.
    assert abs((interval.high - interval.low) / 2 - 0.098) < 0.015


def test_nan_values_are_left_out_and_counted():
    interval = bootstrap_interval([1.0, np.nan, 3.0])
    assert (interval.mean, interval.n) == (2.0, 2)
    empty = bootstrap_interval([np.nan])
    assert empty.n == 0 and np.isnan(empty.mean)


def test_wilcoxon_exact_p_value_of_all_positive_differences():
    # Six positive differences, no ties: the exact two-sided p-value is 2 / 2**6.
    result = paired_test([3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0])
    assert result.test == "Wilcoxon signed-rank test"
    assert (result.difference, result.p_value, result.n) == (5.5, 0.03125, 6)


def test_wilcoxon_of_symmetric_differences_is_one():
    # Differences -1, +2, -3, +4, -5, +6 and... signed ranks W+ = 12, W- = 9: not significant.
    result = paired_test([1, 2, 3, 4, 5, 6], [2, 0, 6, 0, 10, 0])
    assert result.p_value > 0.5


def test_bootstrap_p_value_of_all_positive_differences():
    result = paired_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], test="bootstrap", resamples=999)
    assert result.test == "paired bootstrap test"
    assert result.p_value == 2 / 1000
    assert result.difference == 2.0


def test_bootstrap_p_value_of_differences_centred_on_zero_is_large():
    d = np.array([-2.0, -1.0, 1.0, 2.0])
    result = paired_test(d, np.zeros(4), test="bootstrap", seed=1)
    assert result.p_value > 0.8
    assert result == paired_test(d, np.zeros(4), test="bootstrap", seed=1)


def test_equal_values_and_pairs_with_nan():
    assert paired_test([1, 2], [1, 2]).p_value == 1.0
    result = paired_test([1.0, np.nan, 5.0], [0.0, 0.0, np.nan])
    assert (result.difference, result.n) == (1.0, 1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: paired_test([1, 2], [1]), "got 2 values in a and 1 in b"),
        (lambda: paired_test([1], [2], test="t"), "test must be one of 'wilcoxon', 'bootstrap'; got 't'"),
        (lambda: bootstrap_interval([1.0], confidence=95), "confidence must be a number between 0 and 1"),
        (lambda: bootstrap_interval([1.0], seed=-1), "seed must be a non-negative integer; got -1"),
        (lambda: bootstrap_interval([[1.0]]), "got shape (1, 1)"),
        (lambda: bootstrap_means([1.0], resamples=0), "resamples must be a positive integer; got 0"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_band_is_the_interval_of_each_point():
    curves = np.random.default_rng(2).random((5, 3))
    mean, low, high = bootstrap_band(curves, resamples=500, seed=4)
    for j in range(3):
        interval = bootstrap_interval(curves[:, j], resamples=500, seed=4)
        np.testing.assert_allclose([mean[j], low[j], high[j]], interval[:3])
