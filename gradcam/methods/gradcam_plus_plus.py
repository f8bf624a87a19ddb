"""Grad-CAM++: channels weighed by their positive gradients, with per-pixel weights."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class GradCAMPlusPlus(Method):
    """Grad-CAM++ (Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for
    Deep Convolutional Networks", arXiv 1710.11063, eq. 19).

    With ``G = d y_c / d A``: ``a = G^2 / (2 G^2 + (sum_ij A_k) G^3 + 1e-6)``, ``a = 0``
    where ``G == 0``; ``w_k = sum_ij ReLU(G) a``; then ``L = ReLU(sum_k w_k A_k)`` and
    ``L / max(L)``.

    The paper derives ``a`` for the exponential of the score, whose higher derivatives
    are powers of the first; as pytorch-grad-cam does, the powers of ``G`` stand for
    them, and ``y_c`` is the pre-softmax logit when the model ends in a softmax.
    """

    name = "gradcam++"

    def channel_weights(self, capture):
        gradients = capture.gradients  # (K, N, h, w, C)
        sums = ops.sum(capture.activations, axis=(1, 2))[None, :, None, None, :]
        squares = gradients * gradients
        alpha = squares / (2 * squares + sums * squares * gradients + 1e-6)
        alpha = ops.where(ops.equal(gradients, 0), ops.zeros_like(alpha), alpha)
        return ops.sum(ops.relu(gradients) * alpha, axis=(2, 3))
