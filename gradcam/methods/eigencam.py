"""Eigen-CAM: the activations' first principal component, with no gradients."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method
from gradcam.methods.smoothing import first_component


class EigenCAM(Method):
    """Eigen-CAM (Bany Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using
    Principal Components", arXiv 2008.00299).

    No gradients, and the same map for every target. The activations of one image,
    ``(h w, C)``, are centred (each channel's mean over the map subtracted), and ``L`` is
    their projection on their first right singular vector ``v``: ``L = (A - mean A) v``;
    then ``L = ReLU(L)`` and ``L / max(L)``.

    Departure: the sign of a singular vector is arbitrary (it differs between linear
    algebra libraries), so ``L`` is negated where needed to correlate positively with the
    mean activation over channels, ``mean_k A_k`` (:func:`~gradcam.methods.smoothing.first_component`); a map with
    no correlation keeps the sign it has. As in pytorch-grad-cam, the activations are
    centred first.
    """

    name = "eigencam"
    uses_gradients = False
    principal_component = True

    def element_map(self, capture):
        projection = first_component(capture.activations)  # (N, h, w)
        # One map per image, the same for each of the K targets.
        repeat = ops.zeros_like(ops.transpose(capture.scores))[:, :, None, None]  # (K, N, 1, 1)
        return projection[None] + repeat
