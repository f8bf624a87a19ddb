"""gradcam.metrics deletion and insertion, on linear models whose scores are sums of pixels.

With ``make_linear()`` (no softmax), class 0's score is the sum of the image's pixels and
class 1's minus that sum. ``X`` holds 1..12 (row-major), so removing the ``k`` largest
pixels leaves ``(12 - k)(13 - k) / 2`` and removing the ``k`` first (row-major) leaves
``78 - k (k + 1) / 2``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from helpers.metric_models import X, make_linear, sigmoid

from gradcam.metrics import deletion, insertion
from gradcam.metrics.perturbation import blur


def largest_removed(k):
    return (12 - k) * (13 - k) / 2


def test_deletion_by_hand_steps_not_dividing_the_pixels():
    # steps=5 on 12 pixels: k = round(12 i / 5) = 0, 2 (2.4), 5 (4.8), 7 (7.2), 10 (9.6), 12.
    area, curves = deletion(make_linear(), X, X[..., 0], 0, steps=5, return_curves=True)
    np.testing.assert_array_equal(curves, [[78, 55, 28, 15, 3, 0]])
    assert area.dtype == np.float32 and curves.dtype == np.float32
    np.testing.assert_allclose(area, [(39 + 55 + 28 + 15 + 3 + 0) / 5], rtol=1e-6)
    # return_curves=False returns the area alone.
    np.testing.assert_allclose(deletion(make_linear(), X, X[..., 0], 0, steps=5), area, rtol=0)


def test_deletion_rounds_halves_to_even():
    # steps=8: 12 i / 8 = 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5, 12 -> k = 0, 2, 3, 4, 6, 8, 9, 10, 12
    # (rounding halves up would give 2, 3, 5, 6, 8, 9, 11).
    _, curves = deletion(make_linear(), X, X[..., 0], 0, steps=8, return_curves=True)
    expected = [largest_removed(k) for k in (0, 2, 3, 4, 6, 8, 9, 10, 12)]
    np.testing.assert_array_equal(curves, [expected])


def test_deletion_all_zero_map_removes_pixels_in_row_major_order():
    # Every pixel ties: the ranking is 0, 1, ..., 11; steps=4 removes 3 pixels a step.
    _, curves = deletion(make_linear(), X, np.zeros((1, 3, 4)), 0, steps=4, return_curves=True)
    np.testing.assert_array_equal(curves, [[78, 72, 57, 33, 0]])


def test_deletion_map_at_a_lower_resolution_is_upsampled():
    # [[0, 1]] -> 3x4: each row is [0, 0.25, 0.75, 1]; ties broken row-major: column 3
    # (pixels 3, 7, 11 = 4 + 8 + 12), then column 2 (3 + 7 + 11), column 1 (2 + 6 + 10).
    area, curves = deletion(make_linear(), X, np.array([[[0.0, 1.0]]]), 0, steps=4, return_curves=True)
    np.testing.assert_array_equal(curves, [[78, 54, 33, 15, 0]])
    np.testing.assert_allclose(area, [(39 + 54 + 33 + 15 + 0) / 4], rtol=1e-6)


def test_deletion_baseline_per_channel_and_steps_above_the_pixel_count():
    # Three channels; class 0 sums them all. Removed pixels take (1, 2, 3): +6 each.
    docs = np.repeat(X, 3, axis=-1)  # 3 * 78 = 234
    model = make_linear(np.ones((36, 1)), channels=3)
    _, curves = deletion(model, docs, X[..., 0], 0, steps=24, baseline=[1.0, 2.0, 3.0], return_curves=True)
    k = np.round(np.arange(25) * 12 / 24).astype(int)  # 0, 0, 1, 2, 2, 2, 3, 4, 4, ...
    expected = [3 * largest_removed(i) + 6 * i for i in k]
    np.testing.assert_array_equal(curves, [expected])


def test_deletion_several_images_targets_and_batches():
    # Image 1 is 2 X scored by class 1 (minus the sum) under an all-zero map: row-major
    # removal. Image 2 is X upside down (rows 9..12, 5..8, 1..4) under the map -X, which
    # also ranks row-major: it loses 9..12 (42), then 5..8 (26), then 1..4.
    docs = np.concatenate([X, 2 * X, X[:, ::-1]])
    maps = np.stack([X[0, ..., 0], np.zeros((3, 4)), -X[0, ..., 0]])
    expected = [[78, 36, 10, 0], [-156, -136, -84, 0], [78, 36, 10, 0]]  # k = 0, 4, 8, 12
    for batch_size in (1, 3, 5, 12, 100):
        area, curves = deletion(make_linear(), docs, maps, [0, 1, 0], steps=3, batch_size=batch_size,
                                return_curves=True)
        np.testing.assert_array_equal(curves, expected)
        np.testing.assert_allclose(area, [(39 + 36 + 10) / 3, (-78 - 136 - 84) / 3, (39 + 36 + 10) / 3], rtol=1e-6)


def test_softmax_model_scores_the_probability():
    kernel = np.stack([np.full(12, 0.1), np.zeros(12)], axis=1)  # z = (0.1 sum, 0)
    _, curves = deletion(make_linear(kernel, "softmax"), X, X[..., 0], 0, steps=5, return_curves=True)
    expected = sigmoid(0.1 * np.array([78, 55, 28, 15, 3, 0]))
    np.testing.assert_allclose(curves, [expected], rtol=1e-6)


def test_preprocess_runs_after_perturbing_on_a_copy():
    docs = X.copy()
    maps = X[..., 0].copy()
    seen = []

    def preprocess(batch):
        seen.append(batch.dtype)
        batch -= 1  # in place: must not reach the caller's images
        return batch

    _, curves = deletion(make_linear(), docs, maps, 0, steps=4, preprocess=preprocess, return_curves=True)
    # k = 0, 3, 6, 9, 12. Removed pixels are 0 before preprocessing, -1 after: the
    # score is what remains of 1..12, minus 12.
    np.testing.assert_array_equal(curves, [[78 - 12, 45 - 12, 21 - 12, 6 - 12, 0 - 12]])
    assert set(seen) == {np.dtype(np.float32)}
    np.testing.assert_array_equal(docs, X)
    np.testing.assert_array_equal(maps, X[..., 0])


def test_batches_of_batch_size_then_powers_of_two():
    # 45 perturbations (steps=44) in batches of 32: 32, then 8 + 4 + 1 for the rest.
    sizes = []

    def preprocess(batch):
        sizes.append(len(batch))
        return batch

    _, curves = deletion(make_linear(), X, X[..., 0], 0, steps=44, preprocess=preprocess, return_curves=True)
    assert sizes == [32, 8, 4, 1]
    k = np.round(np.arange(45) * 12 / 44).astype(int)
    np.testing.assert_array_equal(curves, [[largest_removed(i) for i in k]])


def test_integer_images_are_scored_in_float():
    docs = X.astype(np.uint8)
    _, curves = deletion(make_linear(), docs, X[..., 0], 1, steps=2, baseline=0.5, return_curves=True)
    np.testing.assert_array_equal(curves, [[-78, -(21 + 3), -6]])  # 6 pixels at 0.5 each = 3


def test_blur_is_the_normalised_11_tap_gaussian_of_sigma_5_reflect_padded():
    rng = np.random.default_rng(1)
    for shape in ((3, 4, 2), (20, 17, 3)):
        image = rng.random(shape).astype(np.float32) * 255
        expected = np.stack(
            [scipy.ndimage.gaussian_filter(image[..., c].astype(np.float64), 5, truncate=1.0, mode="mirror")
             for c in range(shape[-1])], axis=-1)
        out = blur(image)
        assert out.dtype == np.float32 and out.shape == shape
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)
    # A constant image stays as it is; the kernel sums to 1.
    np.testing.assert_allclose(blur(np.full((5, 6, 3), 7.0)), 7.0, rtol=1e-6)
    # One row, by hand: [0, 1] reflect-padded by 5 is 1 0 1 0 1 | 0 1 | 0 1 0 1 0, so each
    # pixel takes the kernel's weight on the offsets of the other parity.
    g = np.exp(-np.arange(-5, 6) ** 2 / 50)
    g /= g.sum()
    odd = g[0::2].sum()  # offsets -5, -3, ..., 5
    np.testing.assert_allclose(blur(np.array([[[0.0], [1.0]]]))[0, :, 0], [odd, 1 - odd], rtol=1e-6)


def test_insertion_by_hand():
    blurred = blur(X[0]).ravel()  # the start: every pixel blurred
    values = X.ravel()
    area, curves = insertion(make_linear(), X, X[..., 0], 0, steps=4, return_curves=True)
    order = np.arange(12)[::-1]  # most relevant first: pixels 11, 10, ...
    expected = []
    for k in (0, 3, 6, 9, 12):
        image = blurred.copy()
        image[order[:k]] = values[order[:k]]
        expected.append(image.sum())
    np.testing.assert_allclose(curves, [expected], rtol=1e-6)
    assert curves[0, -1] == 78
    np.testing.assert_allclose(area, [(expected[0] / 2 + sum(expected[1:4]) + expected[4] / 2) / 4], rtol=1e-6)


def test_insertion_reflect_blur_keeps_the_sum_of_a_ramp():
    # Blurring a constant image changes nothing: insertion's curve is flat.
    docs = np.full((1, 3, 4, 1), 5.0, np.float32)
    area = insertion(make_linear(), docs, X[..., 0], 0, steps=3)
    np.testing.assert_allclose(area, [60.0], rtol=1e-6)


def test_arrays_unchanged():
    docs = X.copy()
    maps = np.array([[[0.0, 1.0]]])
    before = maps.copy()
    deletion(make_linear(), docs, maps, 0, steps=3)
    insertion(make_linear(), docs, maps, 0, steps=3)
    np.testing.assert_array_equal(docs, X)
    np.testing.assert_array_equal(maps, before)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(steps=0), ValueError, "steps must be a positive integer; got 0"),
        (dict(steps=2.5), ValueError, "steps must be a positive integer; got 2.5"),
        (dict(batch_size=0), ValueError, "batch_size must be a positive integer; got 0"),
        (dict(targets=[0, 1]), ValueError, r"one target per image: 1 class indices or names, or one for all; got \[0, 1\]"),
        (dict(targets=2), ValueError, r"Target 2 is out of range: the model has 2 classes \(0..1\)"),
        (dict(targets=None), TypeError, "targets must be a class index or name, or one per image; got None"),
        (dict(targets=[0.5]), TypeError, "A target must be a class index"),
        (dict(heatmaps=np.zeros((2, 3, 4))), ValueError, "one map per image: docs has 1 images"),
        (dict(heatmaps=np.full((1, 3, 4), np.nan)), ValueError, r"heatmaps \[0\] contain NaN"),
        (dict(preprocess="scale"), TypeError, "preprocess must be a function or None; got 'scale'"),
        # steps=2: batches of 2 and 1 perturbed images
        (dict(preprocess=lambda b: b[:1]), ValueError, r"preprocess returned 1 images for 2; it must keep the batch as"),
        (dict(preprocess=lambda b: b.astype(object)), TypeError, "the output of preprocess must be an array of numbers"),
        (dict(preprocess=lambda b: b + np.nan), ValueError, "the output of preprocess contains 24 NaN or infinite values"),
        (
            dict(docs=np.zeros((1, 4, 4, 1))),
            ValueError,
            r"Model 'linear' expects images of shape \(3, 4, 1\) \(height, width, channels\); got a batch of shape "
            r"\(2, 4, 4, 1\). Load images with gradcam.image_from_path\(path, image_shape=\(3, 4\)\)",
        ),
        (
            dict(preprocess=lambda b: b[:, :2]),
            ValueError,
            r"expects images of shape \(3, 4, 1\) \(height, width, channels\); preprocess made a batch of shape \(2, 2, 4, 1\)",
        ),
        (dict(model="model"), TypeError, "model must be a keras.Model; got str"),
    ],
)
def test_clear_errors(kwargs, error, message):
    arguments = dict(model=make_linear(), docs=X, heatmaps=np.zeros((1, 3, 4)), targets=0, steps=2)
    arguments.update(kwargs)
    for metric in (deletion, insertion):
        with pytest.raises(error, match=message):
            metric(**arguments)


@pytest.mark.parametrize("baseline", [np.nan, [1.0, 2.0], "black"])
def test_bad_baseline(baseline):
    with pytest.raises(ValueError, match=r"baseline must be a finite number, or an array that broadcasts to one image \(3, 4, 1\)"):
        deletion(make_linear(), X, X[..., 0], 0, steps=2, baseline=baseline)


def test_the_compiled_forward_keeps_no_model_alive():
    import gc
    import weakref

    model = make_linear()
    deletion(model, X, X[..., 0], 0, steps=2)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
