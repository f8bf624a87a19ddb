"""gradcam.metrics.road (gradcam.metrics.remove_and_debias): noisy linear imputation by hand, and ROAD's scores on linear models.

``X`` holds 1..12 in a 3x4 grid (row-major); ``make_linear()`` scores class 0 as the sum of
the pixels (78). A removed pixel takes the weighted mean of its neighbours in the image:
1/6 for those sharing an edge, 1/12 for diagonal ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.metric_models import REGIONS, X, make_linear

from gradcam.metrics import road
from gradcam.metrics.remove_and_debias import NEIGHBOURS, dissection_order, impute

IMAGE = X[0]  # (3, 4, 1)


def removed(*pixels):
    mask = np.zeros((3, 4), bool)
    for y, x in pixels:
        mask[y, x] = True
    return mask


def test_impute_one_corner_pixel():
    # (0, 0): neighbours 2 and 5 (1/6 each), 6 (1/12): (2/6 + 5/6 + 6/12) / (5/12) = 4.
    out = impute(IMAGE, removed((0, 0)))
    expected = IMAGE.astype(np.float64).copy()
    expected[0, 0] = 4
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_impute_an_interior_pixel_of_a_linear_image_is_exact():
    # (1, 1): (2 + 5 + 7 + 10) / 6 + (1 + 3 + 9 + 11) / 12 = 6, as before.
    np.testing.assert_allclose(impute(IMAGE, removed((1, 1))), IMAGE, rtol=1e-12)


def test_impute_two_neighbouring_removed_pixels_solve_a_system():
    # a = (0, 0), b = (0, 1):  5a = 2b + 16  and  8b = 2a + 30,  so a = 47/9, b = 91/18.
    out = impute(IMAGE, removed((0, 0), (0, 1)))
    np.testing.assert_allclose(out[0, :2, 0], [47 / 9, 91 / 18], rtol=1e-12)
    np.testing.assert_array_equal(out[1:], IMAGE[1:])
    np.testing.assert_array_equal(out[0, 2:], IMAGE[0, 2:])


def test_impute_each_channel_and_leaves_the_image_alone():
    image = np.concatenate([IMAGE, 10 * IMAGE, -IMAGE], axis=-1)
    before = image.copy()
    out = impute(image, removed((0, 0), (0, 1)))
    np.testing.assert_allclose(out[0, :2], np.outer([47 / 9, 91 / 18], [1, 10, -1]), rtol=1e-12)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(impute(image, removed()), image)


def dense_imputation(image, removed):
    """The imputation's system written out pixel by pixel and solved densely."""
    height, width, channels = image.shape
    unknown = [(y, x) for y in range(height) for x in range(width) if removed[y, x]]
    variable = {pixel: k for k, pixel in enumerate(unknown)}
    matrix, right = np.zeros((len(unknown), len(unknown))), np.zeros((len(unknown), channels))
    for k, (y, x) in enumerate(unknown):
        for dy, dx, weight in NEIGHBOURS:
            if 0 <= y + dy < height and 0 <= x + dx < width:
                matrix[k, k] += weight
                if removed[y + dy, x + dx]:
                    matrix[k, variable[y + dy, x + dx]] -= weight
                else:
                    right[k] += weight * image[y + dy, x + dx]
    out = np.array(image, np.float64)
    out[removed] = np.linalg.solve(matrix, right)
    return out


@pytest.mark.parametrize(
    "removed",
    [
        REGIONS,
        np.random.default_rng(1).random((24, 30)) < 0.6,  # many regions, cut several times
    ],
    ids=["regions", "random"],
)
def test_impute_solves_the_system_as_a_dense_solve_does(removed):
    image = np.random.default_rng(0).uniform(0, 255, removed.shape + (2,))
    np.testing.assert_allclose(impute(image, removed), dense_imputation(image, removed), rtol=1e-12, atol=1e-10)


def test_dissection_order_cuts_the_longer_side_and_puts_the_cut_last():
    # 3x3 with blocks of 1 pixel: row 0 (its middle pixel last), row 2 (the same), then the
    # middle row, the first cut, as it is.
    np.testing.assert_array_equal(dissection_order(3, 3, leaf=1), [0, 2, 1, 6, 8, 7, 3, 4, 5])
    # 2x5: wider than tall, so column 2 is the cut; the 2x2 halves are left whole.
    np.testing.assert_array_equal(dissection_order(2, 5, leaf=4), [0, 5, 1, 6, 3, 8, 4, 9, 2, 7])
    np.testing.assert_array_equal(np.sort(dissection_order(37, 53)), np.arange(37 * 53))


def test_impute_refuses_an_image_with_every_pixel_removed():
    with pytest.raises(ValueError, match=r"impute needs at least one kept pixel; all 12 pixels of the \(3, 4\) image"):
        impute(IMAGE, np.ones((3, 4), bool))


def test_road_by_hand_morf_and_lerf():
    # percentiles 10 and 0 of 12 pixels remove floor(1.2) = 1 and 0 pixels.
    # MoRF removes 12 at (2, 3): (11/6 + 8/6 + 7/12) / (5/12) = 9, so 78 - 12 + 9 = 75.
    # LeRF removes 1 at (0, 0), imputed as 4: 78 - 1 + 4 = 81.
    morf = road(make_linear(), X, X[..., 0], 0, percentiles=(10, 0), noise=0)
    assert morf.dtype == np.float32 and morf.shape == (1, 2)
    np.testing.assert_allclose(morf, [[75, 78]], rtol=1e-6)
    lerf = road(make_linear(), X, X[..., 0], 0, percentiles=(10, 0), order="lerf", noise=0)
    np.testing.assert_allclose(lerf, [[81, 78]], rtol=1e-6)


def test_road_removes_in_rank_order_with_ties_row_major():
    # An all-zero map ranks pixels 0, 1, 2, ...: 25% removes floor(3) = 3 pixels, (0, 0..2);
    # LeRF removes the last three, (2, 1..3).
    zero = np.zeros((1, 3, 4))
    for order, pixels in (("morf", [(0, 0), (0, 1), (0, 2)]), ("lerf", [(2, 1), (2, 2), (2, 3)])):
        expected = impute(IMAGE, removed(*pixels)).sum()
        np.testing.assert_allclose(road(make_linear(), X, zero, 0, percentiles=[25], order=order, noise=0),
                                   [[expected]], rtol=1e-6)


def test_road_map_at_a_lower_resolution():
    # [[0, 1]] upsamples to rows [0, 0.25, 0.75, 1]: 50% removes columns 3 and 2.
    expected = impute(IMAGE, removed((0, 3), (1, 3), (2, 3), (0, 2), (1, 2), (2, 2))).sum()
    out = road(make_linear(), X, np.array([[[0.0, 1.0]]]), 0, percentiles=[50], noise=0)
    np.testing.assert_allclose(out, [[expected]], rtol=1e-6)


def test_road_noise_is_seeded_per_image_and_percentile():
    docs = np.concatenate([X, 2 * X])
    maps = np.concatenate([X[..., 0], -X[..., 0]])
    clean = road(make_linear(), docs, maps, 0, percentiles=(10, 50), noise=0)
    results = [road(make_linear(), docs, maps, 0, percentiles=(10, 50), batch_size=b) for b in (1, 3, 4)]
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-6)
    # The linear model adds up the noise on the removed pixels: std 0.01 * (12 - 1) on
    # image 0, 0.01 * (24 - 2) on image 1.
    for n, spread in ((0, 0.11), (1, 0.22)):
        for i, k in ((0, 1), (1, 6)):
            drawn = np.random.default_rng((0, n, i)).normal(0.0, spread, (k, 1)).sum()
            np.testing.assert_allclose(results[0][n, i], clean[n, i] + drawn, rtol=1e-6)
    assert not np.allclose(road(make_linear(), docs, maps, 0, percentiles=(50,), seed=1), results[0][:, 1:])


def test_road_same_scores_with_one_thread_and_several():
    docs = np.concatenate([X, 2 * X, X[:, ::-1], X + 5])
    maps = np.concatenate([X[..., 0], -X[..., 0], np.zeros((1, 3, 4)), X[..., 0] % 3])
    percentiles = (10, 25, 50, 75, 90)
    one = road(make_linear(), docs, maps, 0, percentiles=percentiles, batch_size=7, workers=1)
    for workers in (2, 3, None):
        several = road(make_linear(), docs, maps, 0, percentiles=percentiles, batch_size=7, workers=workers)
        np.testing.assert_array_equal(several, one)
    # and each is the imputed image's sum plus its own noise
    clean = road(make_linear(), docs, maps, 0, percentiles=percentiles, noise=0, workers=3)
    expected = clean[3, 2] + np.random.default_rng((0, 3, 2)).normal(0.0, 0.01 * 11, (6, 1)).sum()
    np.testing.assert_allclose(one[3, 2], expected, rtol=1e-6)


def test_road_arrays_unchanged_and_preprocess_after_imputing():
    docs, maps = X.copy(), X[..., 0].copy()

    def preprocess(batch):
        batch *= 2
        return batch

    out = road(make_linear(), docs, maps, 0, percentiles=[10], noise=0, preprocess=preprocess)
    np.testing.assert_allclose(out, [[150]], rtol=1e-6)
    np.testing.assert_array_equal(docs, X)
    np.testing.assert_array_equal(maps, X[..., 0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(order="MoRF"), r"order must be one of 'morf', 'lerf'; got 'MoRF'"),
        (dict(percentiles=[10, 100]), r"percentiles must be a non-empty sequence of numbers in \[0, 100\)"),
        (dict(percentiles=[]), r"percentiles must be a non-empty sequence .* got \[\]"),
        (dict(percentiles=[-5]), r"in \[0, 100\) \(the share of pixels removed, in percent\); got \[-5\]"),
        (dict(percentiles="10"), r"got '10'"),
        (dict(noise=-0.1), r"noise must be a finite number >= 0; got -0.1"),
        (dict(noise=float("nan")), r"noise must be a finite number >= 0; got nan"),
        (dict(seed=-1), r"seed must be a non-negative integer; got -1"),
        (dict(seed=1.5), r"seed must be a non-negative integer; got 1.5"),
        (dict(targets=[0, 1]), r"one target per image: 1 class indices"),
        (dict(heatmaps=np.zeros((1, 1, 3, 4))), r"pass heatmaps\[:, k\]"),
        (dict(batch_size=0), r"batch_size must be a positive integer; got 0"),
        (dict(workers=0), r"workers must be a positive integer; got 0"),
        (dict(workers=1.5), r"workers must be a positive integer; got 1.5"),
    ],
)
def test_clear_errors(kwargs, message):
    arguments = dict(model=make_linear(), docs=X, heatmaps=np.zeros((1, 3, 4)), targets=0)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        road(**arguments)
