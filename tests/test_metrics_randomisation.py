"""The model randomisation test and its rank correlation. Run once per KERAS_BACKEND.

The "constant" model is the tiny classifier of helpers/tiny.py (trained Grad-CAM map of class 0:
``[[0, 0.2], [0.8, 1]]``) whose initialisers are constants, so that its "random" weights
are known by hand:

* step 1 re-initialises ``predictions`` to ``W' = [[-0.01, 0], [-1, 0]]``; with
  ``A0 = [[10, 18], [42, 50]]`` and ``A1 = -5``, class 0's weights are ``W'[:, 0] / 4``
  and ``L = -0.0025 A0 + 1.25 = [[1.225, 1.205], [1.145, 1.125]]``: the trained map's
  order reversed, a rank correlation of -1;
* step 2 re-initialises ``conv`` to all ones: ``A0 = A1 = [[10, 18], [42, 50]]``,
  ``L = -0.2525 A0 < 0`` everywhere: an all-zero map, which has no ranking (NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import (
    LOGIT_MAP_0, STEP_1_MAP, X, assert_map, make_constant, make_functional, make_nested, make_subclassed)

from gradcam.methods.base import EmptyMapWarning
from gradcam.metrics import randomisation
from gradcam.metrics.model_randomisation import RandomisationResult, average_ranks, spearman

def test_average_ranks_share_ties():
    ranks = average_ranks(np.array([[5, 1, 5, 3], [2, 2, 2, 2], [0, 1, 2, 3]], np.float32))
    np.testing.assert_array_equal(ranks, [[3.5, 1, 3.5, 2], [2.5, 2.5, 2.5, 2.5], [1, 2, 3, 4]])


def test_spearman_hand_computed():
    a = np.array([[5, 1, 5, 3], [1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]], np.float32)
    b = np.array([[1, 2, 3, 4], [10, 20, 30, 40], [4, 3, 2, 1], [1, 2, 3, 4]], np.float32)
    # Row 0: ranks [3.5, 1, 3.5, 2] and [1, 2, 3, 4], centred [1, -1.5, 1, -0.5] and
    # [-1.5, -0.5, 0.5, 1.5]: a dot product of -1 over sqrt(4.5 * 5).
    correlations = spearman(a, b)
    assert correlations.dtype == np.float32
    np.testing.assert_allclose(correlations[:3], [-1 / np.sqrt(22.5), 1, -1], rtol=1e-6)
    assert np.isnan(correlations[3])  # a constant row has no ranking


def test_spearman_compares_maps_of_any_shape_and_refuses_different_shapes():
    maps = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    np.testing.assert_array_equal(spearman(maps, maps**2), [1, 1])
    with pytest.raises(ValueError, match=r"shapes \(2, 2, 2\) and \(2, 4\)"):
        spearman(maps, maps.reshape(2, 4))


def test_randomisation_hand_computed():
    result = randomisation(make_constant(), X)
    assert isinstance(result, RandomisationResult)
    assert result.layers == ("predictions", "conv")
    np.testing.assert_array_equal(result.targets, [0])
    assert result.heatmaps.shape == (1, 3, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    assert_map(result.heatmaps[0, 1], STEP_1_MAP)
    assert_map(result.heatmaps[0, 2], np.zeros((2, 2), np.float32))
    assert result.correlations.dtype == np.float32
    assert result.correlations.shape == (1, 2)
    np.testing.assert_allclose(result.correlations[0, 0], -1, rtol=1e-6)
    assert np.isnan(result.correlations[0, 1])


def test_randomisation_explains_the_trained_models_class_at_every_step():
    # After step 1, the top class of the randomised model is 1 (logits [-0.3, 0]); the
    # maps still explain class 0, the trained model's top class.
    result = randomisation(make_constant(), X, max_steps=1)
    assert result.layers == ("predictions",)
    assert_map(result.heatmaps[0, 1], STEP_1_MAP)
    # an explicit class, one per image
    with pytest.warns(EmptyMapWarning):  # the trained model's map of class 1 is all zero
        result = randomisation(make_constant(), np.concatenate([X, X]), targets=[1, 0], max_steps=1)
    np.testing.assert_array_equal(result.targets, [1, 0])
    assert_map(result.heatmaps[1, 1], STEP_1_MAP)


def test_randomisation_leaves_the_model_unchanged():
    model = make_functional()
    before = [w.copy() for w in model.get_weights()]
    randomisation(model, X)
    after = model.get_weights()
    assert len(after) == len(before)
    for old, new in zip(before, after):
        assert old.dtype == new.dtype
        assert old.tobytes() == new.tobytes()


def test_randomisation_seed_repeats_and_changes_the_random_weights():
    docs = np.concatenate([X, X[:, ::-1]])
    first = randomisation(make_functional(), docs, seed=3)
    again = randomisation(make_functional(), docs, seed=3)
    other = randomisation(make_functional(), docs, seed=4)
    np.testing.assert_array_equal(first.heatmaps, again.heatmaps)
    np.testing.assert_array_equal(first.correlations, again.correlations)
    np.testing.assert_array_equal(first.heatmaps[:, 0], other.heatmaps[:, 0])  # the trained maps
    assert not np.array_equal(first.heatmaps[:, 1:], other.heatmaps[:, 1:])


def test_randomisation_steps_go_into_nested_models_top_first():
    result = randomisation(make_nested(), X, max_steps=5)
    assert result.layers == ("predictions", "base/conv")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"method": "gradcamm"}, ValueError, "Unknown method 'gradcamm'"),
        ({"max_steps": 0}, ValueError, "max_steps must be a positive integer; got 0"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer; got -1"),
        ({"targets": [0, 1]}, ValueError, r"Expected one target per image: 1 class indices or names"),
        ({"targets": 5}, ValueError, "Target 5 is out of range"),
    ],
)
def test_randomisation_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        randomisation(make_functional(), X, **kwargs)


def test_randomisation_refuses_a_model_it_cannot_copy():
    with pytest.raises(ValueError, match="model 'tiny_subclassed' has no symbolic inputs"):
        randomisation(make_subclassed(), X)


def test_randomisation_at_the_automatic_input_of_the_pooling():
    # the automatic choice is "input of pool" (a residual sum made by an operation): the
    # copies must explain that tensor too, not the pooling layer's 2-D output
    from helpers.method_models import make_residual

    model, _ = make_residual()
    result = randomisation(model, X, max_steps=1)
    assert result.layers == ("predictions",)
    expected = randomisation(model, X, layer="input of pool", max_steps=1)
    np.testing.assert_array_equal(result.heatmaps, expected.heatmaps)
    assert result.heatmaps.shape == (1, 2, 2, 2)
