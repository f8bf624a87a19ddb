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

    An engine for one model and layer, built once and reused; its arguments and methods
    are the template's (:class:`~gradcam.methods.base.Method`), where they are described
    in full.

    Args:
        model: a built Keras 3 image classifier (Sequential, Functional, nested, or a
            subclassed model called once).
        layer: the layer to explain; ``None`` for the last layer with a 4-D output.
            Defaults to ``None``.
        score: ``"auto"``, ``"logit"`` or ``"output"``. Defaults to ``"auto"``.
        class_names: the model's class names; ImageNet's for 1000 classes when ``None``.
            Defaults to ``None``.
        preprocess: the model's preprocessing, applied to a copy of raw images; ``None``
            when images are passed preprocessed. Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: the model, layer or score cannot be explained.

    Example:
        >>> cam = gradcam.GradCAM(model, preprocess=efficientnet_lite.preprocess_input)
        >>> maps = cam.heatmaps(photos, targets=["tiger cat", "espresso"])
        >>> maps.shape
        (32, 2, 7, 7)
    """

    name = "gradcam"

    def channel_weights(self, capture):
        return ops.mean(capture.gradients, axis=(2, 3))
