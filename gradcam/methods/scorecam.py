"""Score-CAM: channels weighed by the class score of the input masked by each."""

from __future__ import annotations

import numpy as np
from keras import ops

from gradcam.checks import attributed_to, check_positive_int
from gradcam.methods.perturbation import PerturbationMethod


def _bilinear(size_in: int, size_out: int) -> np.ndarray:
    """The ``(size_out, size_in)`` matrix of bilinear interpolation, corners aligned."""
    matrix = np.zeros((size_out, size_in), np.float32)
    if size_in == 1 or size_out == 1:
        matrix[:, 0] = 1
        return matrix
    source = np.arange(size_out) * (size_in - 1) / (size_out - 1)
    low = np.minimum(np.floor(source).astype(int), size_in - 2)
    rows = np.arange(size_out)
    matrix[rows, low] = 1 - (source - low)
    matrix[rows, low + 1] = source - low
    return matrix


def top_variance_channels(activations, max_channels):
    """The ``max_channels`` channels of largest variance over the map, ``(N, M)``, for
    each image of ``activations`` ``(N, h, w, C)``; ``None`` when every channel counts
    (``max_channels`` is ``None`` or at least ``C``)."""
    if max_channels is None or max_channels >= activations.shape[-1]:
        return None
    return ops.top_k(ops.var(activations, axis=(1, 2)), max_channels)[1]


def spread_to_channels(weights, activations, max_channels):
    """Weights ``(N, K, M)`` of the channels :func:`top_variance_channels` chose, as
    weights ``(N, K, C)`` of every channel, 0 for those not chosen."""
    channels = top_variance_channels(activations, max_channels)
    if channels is None:
        return weights
    one_hot = ops.one_hot(channels, activations.shape[-1])  # (N, M, C)
    return ops.einsum("nkm,nmc->nkc", weights, one_hot)


class ScoreCAM(PerturbationMethod):
    """Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for
    Convolutional Neural Networks", arXiv 1910.01279).

    No gradients. Each channel ``A_k`` is upsampled to the input's height and width
    (bilinear), scaled to [0, 1] by its minimum and maximum, and multiplied into the
    input; ``s_k`` is the target's score on that masked input, and ``w = softmax_k(s)``;
    then ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. The ``C`` masked inputs go
    through the model ``perturbation_batch`` at a time.

    With ``max_channels=M``, only the ``M`` channels of largest variance over the map are
    scored, the softmax runs over them and the other channels weigh 0 (Faster Score-CAM,
    as in tf-keras-vis): ``M`` forward passes instead of ``C``.

    As pytorch-grad-cam (``UpsamplingBilinear2d``) and tf-keras-vis (``zoom``) do, the
    upsampling aligns the corner pixels of the map with those of the input. A constant
    channel gives an all-zero mask. The paper subtracts a baseline's score from each
    ``s_k``; the softmax does not change when the same value is subtracted from every
    ``s_k``, so it is left out. ``y_c`` is the pre-softmax logit when the model ends in a
    softmax, as in pytorch-grad-cam.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        perturbation_batch: how many masked inputs go through the model at once.
            Defaults to ``32``.
        max_channels: score only this many channels, those of largest variance; ``None``
            scores every channel. Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: ``perturbation_batch`` or ``max_channels`` is not a positive integer;
            the model, layer or score cannot be explained (see
            :class:`~gradcam.methods.base.Method`).
    """

    name = "scorecam"
    perturbs = "inputs"

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, perturbation_batch: int = 32, max_channels: int | None = None, *,
                 weak_model: bool = False):
        if max_channels is not None:
            with attributed_to("max_channels"):
                max_channels = check_positive_int(max_channels, "max_channels")
        super().__init__(model, layer, score, class_names, preprocess, reshape, perturbation_batch,
                         weak_model=weak_model)
        self.max_channels = max_channels

    def perturbation_count(self, activations_shape):
        return min(activations_shape[-1], self.max_channels or activations_shape[-1])

    def perturb(self, image, activations, index):
        channels = top_variance_channels(activations, self.max_channels)
        chosen = index if channels is None else ops.take(channels[0], index)
        maps = ops.take(activations[0], chosen, axis=-1)  # (h, w, B)
        rows = _bilinear(activations.shape[1], image.shape[1])
        columns = _bilinear(activations.shape[2], image.shape[2])
        masks = ops.einsum("yh,hwb,xw->byx", rows, maps, columns)  # (B, H, W)
        low = ops.min(masks, axis=(1, 2), keepdims=True)
        span = ops.max(masks, axis=(1, 2), keepdims=True) - low
        masks = ops.where(span > 0, (masks - low) / ops.where(span > 0, span, 1), 0)
        return image * ops.cast(masks[..., None], image.dtype)

    def channel_weights(self, capture):
        scores = capture.perturbation_scores  # (N, K, M)
        # The softmax over k, written out (keras.ops.softmax warns when M is 1).
        weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        return ops.transpose(spread_to_channels(weights, capture.activations, self.max_channels), (1, 0, 2))
