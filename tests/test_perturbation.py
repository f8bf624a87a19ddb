"""The template of the methods that score perturbations (:mod:`gradcam.methods.perturbation`):
one compiled call per batch, and each image's perturbations scored for that image's
targets. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import X

from gradcam import backend
from gradcam.methods import AblationCAM, ScoreCAM
from gradcam.targets import Output, Similarity

# Three images of the tiny model: X, X flipped and shifted, X scaled (their own maps differ).
IMAGES = np.concatenate([X, X[:, :, ::-1] * 0.5 - 3, X * 2 - 20])


@pytest.fixture
def compiled_calls(monkeypatch):
    """Each call of a computation compiled by the backend's ``compile`` appends to the list."""
    calls = []
    adapter = backend.current()
    compile_model = adapter.compile

    def counting(model, fn, signature):
        compiled = compile_model(model, fn, signature)

        def run(*args):
            calls.append(len(args))
            return compiled(*args)

        return run

    monkeypatch.setattr(adapter, "compile", counting)
    return calls


@pytest.mark.parametrize("method", [AblationCAM, ScoreCAM])
def test_one_compiled_call_per_batch(tiny, compiled_calls, method):
    # Two channels in chunks of one: two chunks per image, all scored inside the batch's
    # one call, with its capture and its maps; aug_smooth and target objects too.
    cam = method(tiny, perturbation_batch=1)
    cam.compute(IMAGES, targets=[0, 1], batch_size=2)
    assert len(compiled_calls) == 2
    cam.compute(IMAGES, targets=[0, 1], batch_size=2, aug_smooth=True)
    assert len(compiled_calls) == 4
    cam.compute(IMAGES, targets=[Output(0)], batch_size=3, eigen_smooth=True)
    assert len(compiled_calls) == 5


@pytest.mark.parametrize("method", [AblationCAM, ScoreCAM])
@pytest.mark.parametrize("perturbation_batch", [1, 3])
def test_each_image_is_scored_for_its_own_targets(tiny, method, perturbation_batch):
    # Per-image class indices and per-image Similarity embeddings: a batch of three equals
    # each image alone with its own target, in maps and scores.
    cam = method(tiny, perturbation_batch=perturbation_batch)
    embeddings = np.array([[1, 0], [0.3, -1], [-1, 2]], np.float32)
    classes = np.array([[0], [1], [0]])
    together = cam.compute(IMAGES, targets=classes), cam.compute(IMAGES, targets=[Similarity(embeddings)])
    for n in range(len(IMAGES)):
        alone = (cam.compute(IMAGES[n], targets=classes[n : n + 1]),
                 cam.compute(IMAGES[n], targets=[Similarity(embeddings[n])]))
        for batch, single in zip(together, alone):
            np.testing.assert_allclose(batch.heatmaps[n], single.heatmaps[0], atol=1e-6)
            np.testing.assert_allclose(batch.scores[n], single.scores[0], atol=1e-6)
    # The images' maps differ, so that a batch scored for the wrong image's target shows.
    for result in together:
        assert result.heatmaps.max() > 0
        assert np.abs(result.heatmaps[0] - result.heatmaps[1]).max() > 0.05
