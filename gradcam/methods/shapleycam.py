"""Shapley-CAM: channels weighed by the mean gradient less half the Hessian-vector product."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


class ShapleyCAM(Method):
    """Shapley-CAM (Cai et al., "CAMs as Shapley Value-based Explainers", arXiv 2501.06261).

    With ``G = d y_c / d A`` and ``H A``, the Hessian of ``y_c`` with respect to the
    layer's output times that output: ``w_k = mean_ij (G_k - H A_k / 2)[i, j]``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. The second-order term is the
    backend's own autodiff (:func:`gradcam.backend` ``probe_hessian_products``: TensorFlow
    nested tapes, ``jax.jvp`` over the ``jax.vjp``, PyTorch's double backward), compiled
    with the rest: about one more backward pass than Grad-CAM. Where ``y_c`` is linear
    in the layer's output (only linear layers and ReLUs after it, as a global average
    pooling and a dense layer), ``H A = 0`` and the map is Grad-CAM's. As in
    pytorch-grad-cam; ``y_c`` is the pre-softmax logit when the model ends in a softmax.
    """

    name = "shapleycam"
    uses_hessian_products = True

    def channel_weights(self, capture):
        return ops.mean(capture.gradients - 0.5 * capture.hessian_products, axis=(2, 3))
