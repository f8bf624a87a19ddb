"""Eigen-CAM: the activations' first principal component, with no gradients."""

from __future__ import annotations

from keras import ops

from gradcam.methods.base import Method


def first_component(values):
    """Each map's projection on its first principal component, signed by a fixed rule.

    ``values`` ``(..., h, w, C)`` holds one ``(h w, C)`` matrix per leading index. Each is
    centred (each channel's mean over the map subtracted) and projected on its first right
    singular vector ``v``: ``(values - mean) v``. The sign of a singular vector is
    arbitrary (it differs between linear algebra libraries), so the projection is negated
    where needed to correlate positively with the mean over channels of ``values``; a
    projection with no correlation keeps the sign it has.

    Args:
        values: float32 tensor ``(..., h, w, C)``.

    Returns:
        float32 tensor ``(..., h, w)``.
    """
    h, w, c = tuple(values.shape)[-3:]
    flat = ops.reshape(values, (-1, h * w, c))
    centred = flat - ops.mean(flat, axis=1, keepdims=True)
    _, _, vh = ops.svd(centred, full_matrices=False)
    projection = ops.einsum("npc,nc->np", centred, vh[:, 0, :])  # (M, h w)
    # The projection sums to zero over the map: its dot product with the mean over
    # channels has the sign of their correlation.
    correlation = ops.sum(projection * ops.mean(flat, axis=2), axis=1, keepdims=True)
    projection = ops.where(correlation < 0, -projection, projection)
    return ops.reshape(projection, tuple(ops.shape(values))[:-1])


class EigenCAM(Method):
    """Eigen-CAM (Bany Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using
    Principal Components", arXiv 2008.00299).

    No gradients, and the same map for every target. The activations of one image,
    ``(h w, C)``, are centred (each channel's mean over the map subtracted), and ``L`` is
    their projection on their first right singular vector ``v``: ``L = (A - mean A) v``;
    then ``L = ReLU(L)`` and ``L / max(L)``.

    Departure: the sign of a singular vector is arbitrary (it differs between linear
    algebra libraries), so ``L`` is negated where needed to correlate positively with the
    mean activation over channels, ``mean_k A_k`` (:func:`first_component`); a map with
    no correlation keeps the sign it has. As in pytorch-grad-cam, the activations are
    centred first.
    """

    name = "eigencam"
    uses_gradients = False

    def element_map(self, capture):
        projection = first_component(capture.activations)  # (N, h, w)
        # One map per image, the same for each of the K targets.
        repeat = ops.zeros_like(ops.transpose(capture.scores))[:, :, None, None]  # (K, N, 1, 1)
        return projection[None] + repeat
