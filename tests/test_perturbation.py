"""The template of the methods that score perturbations (:mod:`gradcam.methods.perturbation`):
one compiled call per batch, and each image's perturbations scored for that image's
targets. Run once per KERAS_BACKEND."""

from __future__ import annotations

import keras
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


def two_layers():
    """Input 4x4x1 -> ``before`` (1x1 conv) -> ``conv`` (the explained layer) -> pooling ->
    a softmax over 2 classes."""
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 1, name="conv")(keras.layers.Conv2D(3, 1, name="before")(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="two_layers")
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("method", [AblationCAM, ScoreCAM])
def test_the_part_before_the_layer_runs_once_per_batch(method, monkeypatch):
    """Ablation-CAM's chunks run the part of the model after the layer alone: where the
    backend runs everything it is called with (PyTorch), the layer before it runs once
    per batch (the capture), not once per chunk; where it compiles, a warm call runs no
    Python at all. Score-CAM perturbs the input, so each chunk runs the whole model."""
    model = two_layers()
    cam = method(model, layer="conv", perturbation_batch=1)  # two chunks per image
    cam.compute(IMAGES, targets=[0, 1], batch_size=3)
    before, runs = model.get_layer("before"), []
    original = before.call
    monkeypatch.setattr(before, "call", lambda *a, **k: runs.append(1) or original(*a, **k))
    cam.compute(IMAGES, targets=[0, 1], batch_size=3)
    if backend.current().prunes_unused:
        assert runs == []
    else:
        assert len(runs) == (1 if method is AblationCAM else 1 + 3 * 2)


def test_the_rest_of_the_model_gives_the_whole_models_scores():
    """The maps through the rest of the model equal those through the whole model with the
    layer's output replaced (the logits read at the same softmax), with two targets and
    with target objects."""
    model = two_layers()
    whole, rest = AblationCAM(model, layer="conv", perturbation_batch=1), AblationCAM(model, layer="conv")
    whole._compiled["rest of model"] = None
    assert (rest._rest_of_model() is None) == backend.current().prunes_unused
    for targets in ([0, 1], [Output(1)]):
        a, b = whole.compute(IMAGES, targets=targets), rest.compute(IMAGES, targets=targets)
        np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-6)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
