"""Grad-CAM element-wise: positive parts of gradients times activations, summed."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class GradCAMElementWise(Method):
    """Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``, a variant of
    HiResCAM, Draelos and Carin, arXiv 2011.08891).

    With ``G = d y_c / d A``: ``L = sum_k ReLU(G_k * A_k)``, element by element; then
    ``L / max(L)``. HiResCAM sums ``G_k * A_k`` before the ReLU, so negative evidence in
    one channel cancels positive evidence in another; here only positive products count.
    """

    name = "gradcamelementwise"

    def weighted_activations(self, capture):
        return ops.relu(capture.gradients * capture.activations)
