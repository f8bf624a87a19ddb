"""Grad-CAM: channels weighed by their mean gradient."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class GradCAM(Method):
    """Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", arXiv 1610.02391).

    Each channel ``k`` of the layer's activations ``A`` is weighed by the mean gradient of
    the class score over the map: ``w_k = mean_ij d y_c / d A_k[i, j]``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. As in the paper; ``y_c`` is the
    pre-softmax logit when the model ends in a softmax.
    """

    name = "gradcam"

    def channel_weights(self, capture):
        return ops.mean(capture.gradients, axis=(2, 3))
