"""FEM: channels weighed by the share of their activations that are unusually high."""

from __future__ import annotations

import math

from keras import ops

from gradcam.checks import ArgumentError
from gradcam.methods.base import Method


class FEM(Method):
    """FEM, the Feature Explanation Method (Fuad et al., "Features understanding in 3D
    CNNs for actions recognition in video", IPTA 2020).

    No gradients, and the same map for every target. For each channel, the threshold is
    ``t_k = mean_ij A_k + k std_ij A_k`` (population standard deviation); the weight
    ``w_k`` is the share of the map's positions where ``A_k > t_k``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. As in pytorch-grad-cam.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        k: how many standard deviations above the mean an activation must be to count.
            Defaults to ``2``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: ``k`` is not a finite number; the model, layer or score cannot be
            explained (see :class:`~gradcam.methods.base.Method`).
    """

    name = "fem"
    uses_gradients = False

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, k: float = 2, *, weak_model: bool = False):
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k):
            raise ArgumentError("k", f"k must be a finite number (standard deviations above the mean); got {k!r}.")
        super().__init__(model, layer, score, class_names, preprocess, reshape, weak_model=weak_model)
        self.k = float(k)

    def channel_weights(self, capture):
        activations = capture.activations  # (N, h, w, C)
        mean = ops.mean(activations, axis=(1, 2), keepdims=True)
        std = ops.std(activations, axis=(1, 2), keepdims=True)
        above = ops.cast(activations > mean + self.k * std, "float32")
        weights = ops.mean(above, axis=(1, 2))  # (N, C)
        # The same weights for each of the K targets.
        return weights[None] + ops.zeros_like(ops.transpose(capture.scores))[:, :, None]
