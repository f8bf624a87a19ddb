"""gradcam.metrics average_drop and increase_in_confidence, on linear models.

``make_linear()`` scores class 0 as the sum of the pixels (``X``: 1..12, so ``Y = 78``) and
class 1 as minus that sum. The map ``[[0, 1]]`` upsampled to 3x4 is ``[0, 0.25, 0.75, 1]``
on every row, so ``O = (0 + 0.5 + 2.25 + 4) + (0 + 1.5 + 5.25 + 8) + (0 + 2.5 + 8.25 + 12)
= 44.25``.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.metric_models import X, make_linear, sigmoid

from gradcam.metrics import average_drop, increase_in_confidence

RAMP = np.array([[[0.0, 1.0]]])
O_RAMP = 44.25


def test_average_drop_by_hand():
    drop = average_drop(make_linear(), X, RAMP, 0)
    assert drop.dtype == np.float32 and drop.shape == (1,)
    np.testing.assert_allclose(drop, [(78 - O_RAMP) / 78], rtol=1e-6)


def test_the_map_is_scaled_by_its_maximum_and_negatives_cut():
    # [[0, 2]] scales to [[0, 1]]: the same O.
    np.testing.assert_allclose(average_drop(make_linear(), X, 2 * RAMP, 0), [(78 - O_RAMP) / 78], rtol=1e-6)
    # [[-1, 1]] -> rows [-1, -0.5, 0.5, 1] -> [0, 0, 0.5, 1]: O = 5.5 + 11.5 + 17.5 = 34.5.
    np.testing.assert_allclose(average_drop(make_linear(), X, np.array([[[-1.0, 1.0]]]), 0), [(78 - 34.5) / 78], rtol=1e-6)


def test_all_zero_map_is_a_black_image():
    maps = np.zeros((1, 2, 2))
    np.testing.assert_array_equal(average_drop(make_linear(), X, maps, 0), [1.0])
    np.testing.assert_array_equal(increase_in_confidence(make_linear(), X, maps, 0), [0.0])
    # A negative map is all zero once cut: also black. Class 1 (minus the sum) rises from -78 to 0.
    np.testing.assert_array_equal(increase_in_confidence(make_linear(), X, -np.ones((1, 3, 4)), 1), [1.0])


def test_increase_in_confidence_is_strict():
    # A constant map scales to ones: O == Y, no increase, no drop.
    ones = np.full((1, 3, 4), 0.3)
    np.testing.assert_array_equal(increase_in_confidence(make_linear(), X, ones, 0), [0.0])
    np.testing.assert_array_equal(average_drop(make_linear(), X, ones, 0), [0.0])
    # Class 1 is minus the sum: masking raises it from -78 to -44.25.
    out = increase_in_confidence(make_linear(), X, RAMP, 1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0])


def test_several_images_and_a_softmax_model():
    kernel = np.stack([np.full(12, 0.1), np.zeros(12)], axis=1)  # p0 = sigmoid(0.1 sum)
    model = make_linear(kernel, "softmax")
    docs = np.concatenate([X, X, 2 * X])
    maps = np.concatenate([RAMP, np.zeros((1, 1, 2)), RAMP])
    y = sigmoid(0.1 * np.array([78, 78, 156]))
    o = sigmoid(0.1 * np.array([O_RAMP, 0, 2 * O_RAMP]))
    for batch_size in (1, 2, 32):
        drop = average_drop(model, docs, maps, [0, 0, 0], batch_size=batch_size)
        np.testing.assert_allclose(drop, (y - o) / y, rtol=1e-5, atol=1e-6)  # float32 probabilities
        # Class 1: p1 = 1 - p0 rises wherever p0 falls.
        np.testing.assert_array_equal(increase_in_confidence(model, docs, maps, 1, batch_size=batch_size), [1, 1, 1])
        np.testing.assert_allclose(average_drop(model, docs, maps, 1, batch_size=batch_size), [0, 0, 0])


def test_preprocess_after_masking_and_arrays_unchanged():
    docs, maps = X.copy(), RAMP.copy()

    def preprocess(batch):
        batch -= 1
        return batch

    # Y = 78 - 12, O = 44.25 - 12.
    drop = average_drop(make_linear(), docs, maps, 0, preprocess=preprocess)
    np.testing.assert_allclose(drop, [(66 - 32.25) / 66], rtol=1e-6)
    np.testing.assert_array_equal(docs, X)
    np.testing.assert_array_equal(maps, RAMP)


def test_average_drop_needs_a_positive_score():
    docs = np.concatenate([X, -X])
    with pytest.raises(ValueError, match=r"positive score on each image \(a probability\); the target's score is -78.0 on image 0 \(images \[0, 1\] are not positive\)"):
        average_drop(make_linear(), docs, np.ones((2, 3, 4)), [1, 0])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(batch_size=-1), ValueError, "batch_size must be a positive integer; got -1"),
        (dict(targets=[0, 0]), ValueError, "one target per image: 1 class indices"),
        (dict(heatmaps=np.zeros((1, 1, 3, 4))), ValueError, r"pass heatmaps\[:, k\]"),
        (dict(heatmaps=np.full((1, 2, 2), np.inf)), ValueError, r"heatmaps \[0\] contain NaN or infinite"),
        (dict(docs="cat.jpg"), TypeError, "docs must be an image array"),
    ],
)
def test_clear_errors(kwargs, error, message):
    arguments = dict(model=make_linear(), docs=X, heatmaps=RAMP, targets=0)
    arguments.update(kwargs)
    for metric in (average_drop, increase_in_confidence):
        with pytest.raises(error, match=message):
            metric(**arguments)
