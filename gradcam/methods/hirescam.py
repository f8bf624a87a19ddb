"""HiResCAM: gradients times activations, element by element."""

from __future__ import annotations

from gradcam.methods.base import Method


class HiResCAM(Method):
    """HiResCAM (Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful
    explanations of convolutional neural networks", arXiv 2011.08891).

    With ``G = d y_c / d A``: ``L = sum_k G_k * A_k``, the product taken element by element
    (Grad-CAM averages ``G_k`` over the map first); then ``L = ReLU(L)`` and ``L / max(L)``.
    As in the paper; ``y_c`` is the pre-softmax logit when the model ends in a softmax.
    """

    name = "hirescam"

    def weighted_activations(self, capture):
        return capture.gradients * capture.activations
