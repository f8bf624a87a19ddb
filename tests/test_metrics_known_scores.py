"""Curve points and scores already measured (``known_scores``) are used as given and not
measured again. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.metric_models import X, make_linear

from gradcam.metrics import deletion, insertion
from gradcam.metrics.confidence import masked_scores
from gradcam.reporting.study import PassCounter

MAP = np.arange(12, dtype=np.float32).reshape(1, 3, 4)


@pytest.mark.parametrize("metric", [deletion, insertion])
def test_known_points_are_not_measured_again(metric):
    model = make_linear()
    full = PassCounter()
    area, curves = metric(model, X, MAP, 0, steps=4, return_curves=True, preprocess=full)
    assert full.count == 5
    known = PassCounter()
    again, same = metric(model, X, MAP, 0, steps=4, return_curves=True, preprocess=known,
                         known_scores={0: curves[:, 0], 4: curves[:, 4]})
    assert known.count == 3
    np.testing.assert_array_equal(same, curves)
    np.testing.assert_array_equal(again, area)
    # What is given is used as it is: a known point of 100 raises the area by 100 / 2 / 4.
    shifted = metric(model, X, MAP, 0, steps=4, known_scores={4: curves[:, 4] + 100})
    np.testing.assert_allclose(shifted, area + 12.5, rtol=1e-6)


def test_masked_scores_with_the_known_unmasked_score():
    model = make_linear()
    unmasked, masked = masked_scores(model, X, MAP, 0)
    counter = PassCounter()
    given, again = masked_scores(model, X, MAP, 0, preprocess=counter, known_scores={0: unmasked})
    assert counter.count == 1
    np.testing.assert_array_equal(given, unmasked)
    np.testing.assert_array_equal(again, masked)


@pytest.mark.parametrize(
    "known, message",
    [
        ({5: [1.0]}, "known_scores' keys must be perturbation indices 0..4; got 5"),
        ({0: [1.0, 2.0]}, "known_scores[0] must be 1 finite scores, one per image; got shape (2,)"),
        ({0: [np.nan]}, "known_scores[0] must be 1 finite scores"),
    ],
)
def test_bad_known_scores(known, message):
    with pytest.raises(ValueError) as error:
        deletion(make_linear(), X, MAP, 0, steps=4, known_scores=known)
    assert message in str(error.value)
