"""gradcam.metrics.remove_and_debias's iterative solve: conjugate gradients in keras.ops on
the Keras backend, against the direct sparse solve (itself checked against a dense solve
in test_metrics_road.py), and ROAD with either solver.

The pixel values lie in [0, 255]; "equal" is within 1e-3 of that range.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.metric_models import REGIONS, X, make_linear

from gradcam import backend
from gradcam.metrics import road
from gradcam.metrics.remove_and_debias import _compiled_solver, impute, impute_iteratively

RANGE = 255.0
ATOL = 1e-3 * RANGE


def direct(images, removed):
    return np.stack([impute(image, mask) for image, mask in zip(images, removed)])


def test_iterative_equals_direct_on_irregular_and_disconnected_regions():
    rng = np.random.default_rng(0)
    # the regions, their complement (one large region around islands of kept pixels), and
    # 60% of the pixels at random: many regions, some single pixels
    removed = np.stack([REGIONS, ~REGIONS, rng.random(REGIONS.shape) < 0.6])
    images = rng.uniform(0, RANGE, removed.shape + (3,))
    out = impute_iteratively(images, removed)
    assert out.dtype == np.float32 and out.shape == images.shape
    expected = direct(images, removed)
    np.testing.assert_allclose(out, expected, atol=ATOL, rtol=0)
    # the kept pixels are the image's own, unchanged
    np.testing.assert_array_equal(out[~removed], images[~removed].astype(np.float32))


def test_iterative_equals_direct_on_a_larger_image_with_a_wide_region():
    # 48x64, 85% of the pixels removed in one blob around a kept corner and a kept stripe:
    # the slowest case for conjugate gradients (the widest region)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:64]
    removed = np.stack([(yy - 10) ** 2 + (xx - 40) ** 2 < 40**2, (xx > 3) & (yy % 13 != 0)])
    images = rng.uniform(0, RANGE, (2, 48, 64, 2)) + 4 * xx[None, ..., None]
    np.testing.assert_allclose(impute_iteratively(images, removed), direct(images, removed), atol=ATOL, rtol=0)


def test_iterative_takes_one_image_and_leaves_it_alone():
    image = np.random.default_rng(2).uniform(0, RANGE, REGIONS.shape + (1,))
    before = image.copy()
    out = impute_iteratively(image, REGIONS)
    assert out.shape == image.shape
    np.testing.assert_allclose(out, impute(image, REGIONS), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(image, before)
    # nothing removed: the image as it is
    np.testing.assert_array_equal(impute_iteratively(image, np.zeros(REGIONS.shape, bool)), image.astype(np.float32))


def test_iterative_by_hand_two_neighbouring_removed_pixels():
    # as in test_metrics_road.py: a = 47/9, b = 91/18
    removed = np.zeros((3, 4), bool)
    removed[0, :2] = True
    out = impute_iteratively(X[0], removed)
    np.testing.assert_allclose(out[0, :2, 0], [47 / 9, 91 / 18], rtol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts tf.function traces")
def test_iterative_compiles_once_per_image_size():
    _compiled_solver.cache_clear()
    rng = np.random.default_rng(3)
    for count in (1, 4, 7):
        impute_iteratively(rng.uniform(0, 1, (count, 5, 6, 2)), rng.random((count, 5, 6)) < 0.5)
    assert _compiled_solver(5, 6, 2).experimental_get_tracing_count() == 1


def make_flat_linear(shape=(7, 11, 2)):
    """Input ``shape`` -> Flatten -> Dense(2) with a fixed random kernel, no bias."""
    model = keras.Sequential(
        [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)], name="flat_linear"
    )
    kernel = np.random.default_rng(4).uniform(-1, 1, (int(np.prod(shape)), 2)).astype(np.float32)
    model.layers[-1].set_weights([kernel])
    return model, kernel


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_iterative_equals_road_direct(order):
    model, kernel = make_flat_linear()
    rng = np.random.default_rng(5)
    docs = rng.uniform(0, RANGE, (5, 7, 11, 2)).astype(np.float32)
    maps = rng.random((5, 4, 6))
    targets = np.array([0, 1, 0, 1, 1])
    kwargs = dict(percentiles=(10, 35, 60, 85), order=order, batch_size=6)  # groups of 2 images, then 1
    exact = road(model, docs, maps, targets, solver="direct", **kwargs)
    iterative = road(model, docs, maps, targets, solver="iterative", **kwargs)
    # a score moves by at most sum |kernel| times the largest pixel error
    bound = np.abs(kernel).sum(axis=0)[targets][:, None] * ATOL
    assert (np.abs(iterative - exact) <= bound).all()
    assert not np.allclose(exact[:, 0], exact[:, -1])  # the percentiles differ


def test_road_auto_is_the_direct_solve_on_a_cpu_and_the_iterative_one_on_an_accelerator(monkeypatch):
    model, _ = make_flat_linear()
    rng = np.random.default_rng(6)
    docs = rng.uniform(0, RANGE, (2, 7, 11, 2)).astype(np.float32)
    maps = rng.random((2, 7, 11))
    results = {}
    for accelerator in (False, True):
        monkeypatch.setattr(backend.current(), "on_accelerator", lambda: accelerator)
        results[accelerator] = road(model, docs, maps, 0, percentiles=(50,), solver="auto")
    for solver, accelerator in (("direct", False), ("iterative", True)):
        np.testing.assert_array_equal(results[accelerator], road(model, docs, maps, 0, percentiles=(50,), solver=solver))


def test_road_iterative_noise_is_the_direct_solves():
    # the same noise, drawn per image and percentile, on either solve's imputation
    docs = np.concatenate([X, 2 * X])
    maps = np.concatenate([X[..., 0], -X[..., 0]])
    exact = road(make_linear(), docs, maps, 0, percentiles=(10, 50), solver="direct")
    iterative = road(make_linear(), docs, maps, 0, percentiles=(10, 50), solver="iterative")
    np.testing.assert_allclose(iterative, exact, atol=12 * 1e-3 * 24)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tolerance=0), r"tolerance must be a number in \(0, 1\); got 0"),
        (dict(tolerance=True), r"tolerance must be a number in \(0, 1\); got True"),
        (dict(iterations=0), r"iterations must be a positive integer.*0"),
        (dict(iterations=2.5), r"iterations must be a positive integer.*2.5"),
    ],
)
def test_iterative_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        impute_iteratively(X[0], REGIONS[:3, :4], **kwargs)


def test_iterative_bad_shapes_and_all_removed():
    with pytest.raises(ValueError, match=r"images \(S, H, W, C\) and removed pixels \(S, H, W\), or one \(H, W, C\) and \(H, W\); got images of shape "
                                         r"\(3, 4, 1\) and removed of shape \(3, 5\)"):
        impute_iteratively(X[0], np.zeros((3, 5), bool))
    with pytest.raises(ValueError, match=r"got images of shape \(3, 4\)"):
        impute_iteratively(X[0, ..., 0], np.zeros((3, 4), bool))
    removed = np.zeros((2, 3, 4), bool)
    removed[1] = True
    with pytest.raises(ValueError, match=r"at least one kept pixel per image; all 12 pixels of image 1 are removed"):
        impute_iteratively(np.concatenate([X, X]), removed)


def test_road_unknown_solver():
    with pytest.raises(ValueError, match=r"solver must be one of 'auto', 'direct', 'iterative'; got 'cg'"):
        road(make_linear(), X, X[..., 0], 0, solver="cg")
