"""LayerCAM: positive gradients times activations, element by element."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class LayerCAM(Method):
    """LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE Transactions on Image Processing 30, 2021).

    With ``G = d y_c / d A``: ``L = sum_k ReLU(G_k) * A_k``, element by element; then
    ``L = ReLU(L)`` and ``L / max(L)``. As in the paper for one layer (its fusion of
    several layers' maps is left to the caller); ``y_c`` is the pre-softmax logit when the
    model ends in a softmax.
    """

    name = "layercam"

    def weighted_activations(self, capture):
        return ops.relu(capture.gradients) * capture.activations
