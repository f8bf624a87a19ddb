"""Eigen-Grad-CAM: the first principal component of gradients times activations."""

from __future__ import annotations

from gradcam.methods.base import Method
from gradcam.methods.smoothing import first_component


class EigenGradCAM(Method):
    """Eigen-Grad-CAM (pytorch-grad-cam's variant of Eigen-CAM, Bany Muhammad and Yeasin,
    arXiv 2008.00299, on ``G * A`` instead of ``A``).

    With ``G = d y_c / d A``: the products ``G_k * A_k`` of one image and target,
    ``(h w, C)``, are centred (each channel's mean over the map subtracted) and ``L`` is
    their projection on their first right singular vector; then ``L = ReLU(L)`` and
    ``L / max(L)``. Unlike Eigen-CAM, the map depends on the target.

    Departure: the sign of a singular vector is arbitrary; ``L`` is negated where needed
    to correlate positively with ``mean_k G_k A_k`` (HiResCAM's map, up to a factor), as
    Eigen-CAM does with ``mean_k A_k``
    (:func:`~gradcam.methods.smoothing.first_component`); pytorch-grad-cam keeps whatever
    sign its SVD returns.
    """

    name = "eigengradcam"
    principal_component = True

    def element_map(self, capture):
        return first_component(capture.gradients * capture.activations)
