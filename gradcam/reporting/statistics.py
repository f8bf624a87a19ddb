"""Statistics of per-image metric values: bootstrap confidence intervals and paired tests.

A report compares methods by the mean of a metric over the same images. Each mean comes
with a percentile bootstrap confidence interval (Efron and Tibshirani, "An Introduction to
the Bootstrap", 1993, ch. 13), and each difference between two methods with a paired test
over the images: a paired bootstrap of the mean difference, or Wilcoxon's signed-rank test
(``scipy.stats.wilcoxon``). Every resampling is drawn from ``numpy.random.default_rng(seed)``:
the same values and seed give the same interval and p-value, on any machine.

NaN values (an image a metric could not score, e.g. the rank correlation of a constant
map) are left out; ``n`` says how many values were used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradcam.checks import check_positive_int, check_seed

#: The paired tests :func:`paired_test` runs, by the name ``test=`` takes.
TESTS = ("wilcoxon", "bootstrap")
#: Their names as a reader sees them (the report's sentences name the test).
TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank test", "bootstrap": "paired bootstrap test"}

# Resamples drawn at once: bounds the index array to about 8 MB for 1000 images.
_CHUNK = 1000


class Interval(NamedTuple):
    """A mean and its bootstrap confidence interval.

    Attributes:
        mean: the mean of the finite values (NaN when there is none).
        low: the interval's lower end.
        high: the interval's upper end.
        n: the number of finite values.
        confidence: the interval's level, e.g. ``0.95``.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float


class Comparison(NamedTuple):
    """A paired test of the difference between two methods' values on the same images.

    Attributes:
        test: the test's name as :data:`TEST_NAMES` writes it.
        difference: the mean of ``a - b`` over the images where both are finite.
        p_value: the two-sided p-value (NaN when there is no difference to test).
        n: the number of pairs used.
    """

    test: str
    difference: float
    p_value: float
    n: int


def _finite(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers; got {type(values).__name__}: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per image, a 1-D array; got shape {array.shape}.")
    return array


def _check_confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number between 0 and 1 (exclusive), e.g. 0.95; got {confidence!r}.")
    return float(confidence)


def _resampled_means(rows: np.ndarray, resamples, seed) -> np.ndarray:
    """The column means of ``resamples`` resamples of ``rows (N, P)``: ``(resamples, P)``."""
    resamples = check_positive_int(resamples, "resamples")
    rng = np.random.default_rng(check_seed(seed))
    means = np.empty((resamples, rows.shape[1]), np.float64)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        means[start : start + size] = rows[rng.integers(0, len(rows), (size, len(rows)))].mean(axis=1)
    return means


def bootstrap_means(values, *, resamples: int = 10000, seed: int = 0) -> np.ndarray:
    """The means of ``resamples`` bootstrap resamples of ``values``.

    Each resample draws ``len(values)`` values with replacement, with indices from
    ``numpy.random.default_rng(seed).integers``, in chunks of 1000 resamples (the same
    draws whatever the number of values).

    Args:
        values: 1-D array of finite numbers, at least one.
        resamples: the number of resamples. Defaults to ``10000``.
        seed: the random generator's seed. Defaults to ``0``.

    Returns:
        float64 array ``(resamples,)``.

    Raises:
        ValueError: ``values`` is empty or not 1-D; ``resamples`` is not a positive
            integer; ``seed`` is not a non-negative integer.
    """
    values = _finite(values, "values")
    if not len(values):
        raise ValueError("Cannot bootstrap the mean of no values.")
    return _resampled_means(values[:, None], resamples, seed)[:, 0]


def bootstrap_interval(values, *, confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> Interval:
    """The mean of ``values`` and its percentile bootstrap confidence interval.

    The interval runs from the ``(1 - confidence) / 2`` to the ``(1 + confidence) / 2``
    quantile (numpy's default, linear interpolation) of the :func:`bootstrap_means`. NaN
    values are left out first. Constant values give the interval ``(c, c)``; no finite
    value gives NaN throughout and ``n = 0``.

    Args:
        values: one value per image, 1-D.
        confidence: the interval's level. Defaults to ``0.95``.
        resamples: the number of bootstrap resamples. Defaults to ``10000``.
        seed: the random generator's seed: the same seed gives the same interval.
            Defaults to ``0``.

    Returns:
        An :class:`Interval`.

    Raises:
        TypeError: ``values`` is not an array of numbers.
        ValueError: ``values`` is not 1-D; ``confidence`` is not in (0, 1);
            ``resamples`` or ``seed`` out of range.

    Example:
        >>> bootstrap_interval([0.25, 0.5, 0.75], seed=0).mean
        0.5
    """
    values = _finite(values, "values")
    confidence = _check_confidence(confidence)
    values = values[np.isfinite(values)]
    if not len(values):
        check_positive_int(resamples, "resamples")
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    means = bootstrap_means(values, resamples=resamples, seed=seed)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    mean = float(values.mean())
    # Rounding can put a constant sample's resampled means a last bit off its mean.
    return Interval(mean, min(float(low), mean), max(float(high), mean), len(values), confidence)


def paired_test(a, b, *, test: str = "wilcoxon", resamples: int = 10000, seed: int = 0) -> Comparison:
    """Whether two methods' values on the same images differ: a two-sided paired test.

    The differences ``d = a - b`` are taken on the images where both are finite.

    * ``"wilcoxon"``: Wilcoxon's signed-rank test of ``d`` (``scipy.stats.wilcoxon``,
      two-sided, zero differences dropped; scipy's exact distribution for small samples
      without ties, its normal approximation otherwise).
    * ``"bootstrap"``: the paired bootstrap of the mean difference. With ``B``
      :func:`bootstrap_means` of ``d`` and ``k`` the number of them on the smaller side
      of 0 (``<= 0`` or ``>= 0``), ``p = min(1, 2 (k + 1) / (B + 1))``: all ``B`` means
      positive gives ``2 / (B + 1)``.

    Args:
        a: one value per image for the first method.
        b: one value per image for the second method, the same images in the same order.
        test: ``"wilcoxon"`` or ``"bootstrap"``. Defaults to ``"wilcoxon"``.
        resamples: the bootstrap's number of resamples. Defaults to ``10000``.
        seed: the bootstrap's seed. Defaults to ``0``.

    Returns:
        A :class:`Comparison` that names the test. With no pair, or all differences
        zero, the p-value is NaN (``1.0`` when all differences are zero).

    Raises:
        TypeError: ``a`` or ``b`` is not an array of numbers.
        ValueError: ``a`` and ``b`` of different lengths; an unknown ``test``;
            ``resamples`` or ``seed`` out of range.

    Example:
        >>> paired_test([3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0]).p_value
        0.03125
    """
    a, b = _finite(a, "a"), _finite(b, "b")
    if len(a) != len(b):
        raise ValueError(f"Expected paired values, one of each per image; got {len(a)} values in a and {len(b)} in b.")
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(map(repr, TESTS))}; got {test!r}.")
    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    name = TEST_NAMES[test]
    if not len(d):
        return Comparison(name, float("nan"), float("nan"), 0)
    difference = float(d.mean())
    if not d.any():
        return Comparison(name, 0.0, 1.0, len(d))
    if test == "wilcoxon":
        from scipy.stats import wilcoxon  # scipy.stats takes about 0.3 s to import

        p_value = float(wilcoxon(d).pvalue)
    else:
        means = bootstrap_means(d, resamples=resamples, seed=seed)
        smaller = min(int((means <= 0).sum()), int((means >= 0).sum()))
        p_value = min(1.0, 2 * (smaller + 1) / (len(means) + 1))
    return Comparison(name, difference, p_value, len(d))


def bootstrap_band(curves, *, confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple:
    """The mean curve and its pointwise percentile bootstrap band.

    Each resample draws whole curves (images) with replacement, with the same indices as
    :func:`bootstrap_means` draws for ``len(curves)`` values: the band at point ``j`` is
    :func:`bootstrap_interval` of ``curves[:, j]`` with the same ``seed``.

    Args:
        curves: finite ``(N, P)``, one curve per image, ``N >= 1``.
        confidence: the band's level. Defaults to ``0.95``.
        resamples: the number of resamples. Defaults to ``10000``.
        seed: the random generator's seed. Defaults to ``0``.

    Returns:
        ``(mean, low, high)``, float64 arrays ``(P,)``.

    Raises:
        ValueError: ``curves`` is not ``(N, P)`` with ``N >= 1``; bad ``confidence``,
            ``resamples`` or ``seed``.
    """
    curves = np.asarray(curves, np.float64)
    if curves.ndim != 2 or not len(curves):
        raise ValueError(f"curves must be (N, P), one curve per image; got shape {curves.shape}.")
    confidence = _check_confidence(confidence)
    means = _resampled_means(curves, resamples, seed)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    mean = curves.mean(axis=0)
    return mean, np.minimum(low, mean), np.maximum(high, mean)
