"""plot_curves on matplotlib's Agg backend: what is drawn, checked line by line."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gradcam.metrics import plot_curves  # noqa: E402

# "a": two images, 2 steps; mean [1, 0.5, 0.1], area (1/2 + 0.5 + 0.1/2) / 2 = 0.525.
# "b": one curve, 4 steps; area (0/2 + 1 + 1 + 1 + 1/2) / 4 = 0.875.
CURVES = {"a": np.array([[1, 0.5, 0], [1, 0.5, 0.2]], np.float32), "b": [0, 1, 1, 1, 1]}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_curves_draws_the_mean_curve_of_each_method():
    ax = plot_curves(CURVES, title="Deletion")
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 0.5, 1])
    np.testing.assert_allclose(lines[0].get_ydata(), [1, 0.5, 0.1])
    np.testing.assert_allclose(lines[1].get_xdata(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(lines[1].get_ydata(), [0, 1, 1, 1, 1])
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a (AUC 0.525)", "b (AUC 0.875)"]
    assert ax.get_title() == "Deletion"
    assert ax.get_xlabel() == "fraction of pixels"
    assert ax.get_ylabel() == "score"
    assert ax.get_xlim() == (0.0, 1.0)


def test_plot_curves_list_labels_and_given_axes():
    figure, (left, right) = plt.subplots(1, 2)
    ax = plot_curves(list(CURVES.values()), labels=["gradcam", "scorecam"], ax=right, xlabel="pixels inserted", ylabel="p")
    assert ax is right
    assert not left.get_lines()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["gradcam (AUC 0.525)", "scorecam (AUC 0.875)"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("pixels inserted", "p", "")
    # unlabelled curves are numbered; one array is one method's curves
    ax = plot_curves(CURVES["a"])
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["curve 1 (AUC 0.525)"]


@pytest.mark.parametrize(
    "curves, labels, error, message",
    [
        ({}, None, ValueError, "needs at least one set of curves"),
        (CURVES, ["x", "y"], ValueError, "labels must be None when curves is a mapping"),
        ([[0, 1]], ["x", "y"], ValueError, "labels has 2 entries for 1 sets of curves"),
        ({"a": [1]}, None, ValueError, r"The curves of 'a' must be \(N, steps \+ 1\).*got shape \(1,\)"),
        ({"a": np.zeros((2, 2, 2))}, None, ValueError, r"got shape \(2, 2, 2\)"),
        ({"a": [0, np.nan]}, None, ValueError, "The curves of 'a' contain NaN"),
        ({"a": ["x", "y"]}, None, TypeError, "The curves of 'a' must be an array of numbers"),
    ],
)
def test_plot_curves_bad_curves(curves, labels, error, message):
    with pytest.raises(error, match=message):
        plot_curves(curves, labels=labels)


def test_the_metrics_are_functions_whatever_was_imported_first():
    # importing a submodule sets the package's attribute of its name: no module may be
    # named like a metric, or `from gradcam.metrics import road` would give the module
    import importlib
    import pkgutil

    import gradcam.metrics

    for module in pkgutil.iter_modules(gradcam.metrics.__path__):
        importlib.import_module(f"gradcam.metrics.{module.name}")
    for name in gradcam.metrics.__all__:
        assert callable(getattr(gradcam.metrics, name)), name
        assert not isinstance(getattr(gradcam.metrics, name), type(gradcam.metrics)), name
