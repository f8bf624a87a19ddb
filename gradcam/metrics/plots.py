"""Plots of the metrics: deletion and insertion curves of several methods in one figure."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradcam.metrics.scoring import curve_area


def _check_curve(label: str, curve) -> np.ndarray:
    """``curve`` as float64 ``(N, S + 1)``, checked."""
    try:
        array = np.asarray(curve, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"The curves of {label!r} must be an array of numbers; got {type(curve).__name__}.") from None
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(
            f"The curves of {label!r} must be (N, steps + 1), one curve per image, or one curve "
            f"(steps + 1,), with at least two points; got shape {np.shape(curve)}."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"The curves of {label!r} contain NaN or infinite values.")
    return array


def plot_curves(
    curves, labels=None, ax=None, title: str | None = None, xlabel: str = "fraction of pixels", ylabel: str = "score"
):
    """Draw deletion or insertion curves of several methods in one figure: one line per
    method, the mean of its images' curves, with its area under the curve in the legend.

    Step ``i`` of ``S`` steps is drawn at ``x = i / S``, the fraction of the pixels
    removed (deletion) or restored (insertion). The area is the trapezoidal rule's, as
    :func:`~gradcam.metrics.deletion` computes it: the area under the mean curve is the
    mean of the images' areas.

    Args:
        curves: a mapping from each method's label to its curves, ``(N, steps + 1)``
            (the second value of ``deletion(..., return_curves=True)``) or one curve
            ``(steps + 1,)``; or a list of such arrays, labelled by ``labels`` (one
            array alone stands for one method). Methods may have different numbers of
            steps.
        labels: one label per array when ``curves`` is a list; ``None`` numbers them
            ("curve 1", ...). Defaults to ``None``.
        ax: the ``matplotlib.axes.Axes`` to draw in; ``None`` draws in a new figure.
            Defaults to ``None``.
        title: the plot's title, e.g. ``"Deletion"``. Defaults to ``None`` (none).
        xlabel: the horizontal axis' label. Defaults to ``"fraction of pixels"``.
        ylabel: the vertical axis' label. Defaults to ``"score"``.

    Returns:
        The ``matplotlib.axes.Axes`` drawn in (its figure is ``ax.figure``).

    Raises:
        TypeError: curves that are not arrays of numbers.
        ValueError: no curves; ``labels`` given with a mapping, or of another length than
            the list; curves of another shape, with fewer than two points, or NaN.

    Example:
        >>> aucs, curves = {}, {}
        >>> for name in ["gradcam", "gradcam++"]:
        ...     aucs[name], curves[name] = gradcam.metrics.deletion(
        ...         model, docs, maps[name], targets, return_curves=True)
        >>> ax = plot_curves(curves, title="Deletion")
    """
    if isinstance(curves, Mapping):
        if labels is not None:
            raise ValueError("labels must be None when curves is a mapping: its keys are the labels.")
        labels, arrays = [str(label) for label in curves], list(curves.values())
    else:
        arrays = list(curves) if not isinstance(curves, np.ndarray) or curves.ndim > 2 else [curves]
        if labels is None:
            labels = [f"curve {i + 1}" for i in range(len(arrays))]
        labels = [str(label) for label in labels]
        if len(labels) != len(arrays):
            raise ValueError(f"labels has {len(labels)} entries for {len(arrays)} sets of curves.")
    if not arrays:
        raise ValueError("plot_curves needs at least one set of curves.")
    means = [_check_curve(label, array).mean(axis=0) for label, array in zip(labels, arrays)]

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    for label, mean in zip(labels, means):
        x = np.linspace(0.0, 1.0, len(mean))
        area = curve_area(mean[np.newaxis])[0]
        ax.plot(x, mean, label=f"{label} (AUC {area:.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax
