"""Token layers: a ``(batch, tokens, channels)`` output explained as a grid of patches,
with a class token dropped, other layouts through ``reshape=``, and the automatic layer of
a Vision Transformer (hand-built, and keras-hub's ``ViTImageClassifier``).

Backend-neutral: run once per backend (``KERAS_BACKEND=jax pytest tests/test_tokens.py``).

The "token" classifier, for the 4x4 input ``x = arange(16)`` of :mod:`helpers.tiny`: the tiny
conv makes a 2x2 grid of patches (``A0 = [[10, 18], [42, 50]]``, ``A1 = -5``), read as 4
tokens row by row; ``extra`` copies of their mean ``[30, -5]`` go first (a class token,
or a class token and a register); the layer "tokens" outputs the ``extra + 4`` tokens;
the head averages all tokens (``[30, -5]``) into the tiny Dense, so the logits are the
tiny model's, ``[2, -4.5]``.

Grad-CAM, class 0: each token's gradient is ``W[:, 0] / T`` (``T = extra + 4``), so on the
grid ``alpha = W[:, 0] / T`` and ``L = ReLU(0.1 A0 - 1) / T``, which normalises to the
tiny model's ``[[0, 0.2], [0.8, 1]]`` whatever ``T``.

Ablation-CAM, class 0 (``y = 2``), with the extra tokens kept as they are:

* ``extra = 1``: channel 0 off leaves the class token's 30: means ``[6, -5]``,
  ``s0 = -0.4``, ``w0 = 1.2``; channel 1 off: ``[30, -1]``, ``s1 = 2.8``, ``w1 = -0.4``;
  ``L = 1.2 A0 + 2 = [[14, 23.6], [52.4, 62]]``, / 62. (Ablating the class token too
  would give ``1.5 A0 + 2.5``, another map.)
* ``extra = 2``: ``[10, -5]``, ``s0 = 0``, ``w0 = 1``; ``[30, -5/3]``, ``s1 = 8/3``,
  ``w1 = -1/3``; ``L = A0 + 5/3``, i.e. ``[[35, 59], [131, 155]] / 155``.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from helpers.tiny import LOGIT_MAP_0, LOGITS, X, assert_map
from helpers.tokens import make_tokens, make_vit
import gradcam
from gradcam import AblationCAM, GradCAM
from gradcam.methods.base import EmptyMapWarning

ABLATION_MAP = {
    1: np.array([[14, 23.6], [52.4, 62]], np.float32) / 62,
    2: np.array([[35, 59], [131, 155]], np.float32) / 155,
}


def drop(extra):
    """A ``reshape=`` function: the tokens after the first ``extra`` as a 2x2 grid."""
    return lambda tokens: ops.reshape(tokens[:, extra:, :], (-1, 2, 2, tokens.shape[-1]))


@pytest.mark.parametrize("extra", [0, 1])
def test_square_token_grid_matches_hand_computation(extra):
    cam = GradCAM(make_tokens(extra), layer="tokens")
    result = cam.compute(X, targets=[0])
    assert result.heatmaps.shape == (1, 1, 2, 2)
    assert_map(result.heatmaps[0, 0], LOGIT_MAP_0)
    np.testing.assert_allclose(result.scores[0], LOGITS[:1], atol=1e-5)


def test_ablation_keeps_the_class_token():
    maps = AblationCAM(make_tokens(1), layer="tokens").heatmaps(X, targets=0)
    assert_map(maps[0, 0], ABLATION_MAP[1], atol=1e-5)


def test_other_token_counts_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"Layer 'tokens': 6 tokens \(shape \(None, 6, 2\)\) do not make "
                                         r"a square grid.*Pass reshape="):
        GradCAM(make_tokens(2), layer="tokens")


def test_reshape_reads_other_layouts():
    model = make_tokens(2)  # a class token and a register token
    maps = GradCAM(model, layer="tokens", reshape=drop(2)).heatmaps(X, targets=0)
    assert_map(maps[0, 0], LOGIT_MAP_0)


def test_ablation_through_reshape_keeps_the_other_tokens():
    maps = AblationCAM(make_tokens(2), "tokens", reshape=drop(2)).heatmaps(X, targets=0)
    assert_map(maps[0, 0], ABLATION_MAP[2], atol=1e-5)


def test_reshape_must_return_a_grid_and_be_callable():
    model = make_tokens(2)
    with pytest.raises(ValueError, match=r"reshape turned the output of layer 'tokens', shape \((None|1), 6, 2\), "
                                         r"into shape \((None|1), 12\); it must return"):
        GradCAM(model, layer="tokens", reshape=lambda t: ops.reshape(t, (-1, 12))).heatmaps(X)
    with pytest.raises(TypeError, match="reshape must be a function or None; got 'grid'"):
        GradCAM(model, layer="tokens", reshape="grid")


def test_explain_prediction_passes_reshape():
    model = make_tokens(2)
    expl = gradcam.explain_prediction(model, X, targets=[0], layer="tokens", reshape=drop(2))
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)
    assert expl.layer == "tokens"


# -- Vision Transformers: the automatic layer ---------------------------------------------


def test_vit_automatic_layer_is_the_last_blocks_first_normalisation():
    model = make_vit()
    cam = GradCAM(model)
    assert cam.layer == "ln_1"
    image = np.random.default_rng(0).normal(size=(1, 4, 4, 1)).astype(np.float32)
    maps = cam.heatmaps(image, targets=[0, 1, 2])
    assert maps.shape == (1, 3, 2, 2) and maps.max() == 1.0
    np.testing.assert_allclose(maps, GradCAM(model, layer="ln_1", reshape=drop(1)).heatmaps(image, targets=[0, 1, 2]),
                               atol=1e-6)
    # after the last attention, nothing reaches the class token from the patches: the
    # gradients there are zero, and so is the map
    with pytest.warns(EmptyMapWarning):
        result = GradCAM(model, layer="ln").compute(image, targets=[0, 1, 2])
    assert result.empty.all()


def test_keras_hub_vit_layers_by_path_and_automatic():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(2)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    model = keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, preprocessor=None)
    image = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    path = f"{backbone.name}/vit_encoder/transformer_block_2/ln_1"  # the name's number varies
    cam = GradCAM(model)
    assert cam.layer == path
    maps = cam.heatmaps(image, targets=[1, 2])
    assert maps.shape == (1, 2, 4, 4)  # 1 + 4*4 tokens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        by_path = GradCAM(model, layer=path, reshape=drop_hub).heatmaps(image, targets=[1, 2])
    np.testing.assert_allclose(maps, by_path, atol=1e-6)
    assert GradCAM(model, layer="transformer_block_1/ln_2").layer == (
        f"{backbone.name}/vit_encoder/transformer_block_1/ln_2")


def drop_hub(tokens):
    return ops.reshape(tokens[:, 1:, :], (-1, 4, 4, tokens.shape[-1]))
