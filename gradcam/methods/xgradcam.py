"""XGrad-CAM: channels weighed by their gradients, each scaled by its activation's share."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class XGradCAM(Method):
    """XGrad-CAM (Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and
    Explanation of CNNs", arXiv 2008.02312).

    With ``G = d y_c / d A``: ``w_k = sum_ij G_k A_k / (sum_ij A_k + 1e-7)``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. As in the paper and pytorch-grad-cam
    (whose ``1e-7`` keeps a channel that sums to zero finite); ``y_c`` is the
    pre-softmax logit when the model ends in a softmax.
    """

    name = "xgradcam"

    def channel_weights(self, capture):
        activations = capture.activations  # (N, h, w, C)
        sums = ops.sum(activations, axis=(1, 2))  # (N, C)
        return ops.sum(capture.gradients * activations, axis=(2, 3)) / (sums + 1e-7)
