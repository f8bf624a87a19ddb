"""The smoothing options every method takes: ``eigen_smooth`` and ``aug_smooth``.

``eigen_smooth`` replaces the sum over channels of a method's weighted activations by
their first principal component (:func:`first_component`),
as pytorch-grad-cam's ``eigen_smooth=True`` does. ``aug_smooth`` is test-time
augmentation: each image is explained as it is and horizontally flipped, each multiplied
by 0.9, 1.0 and 1.1 (pytorch-grad-cam's default ``ttach`` transforms), the six maps are
flipped back and averaged. The six copies of a batch go through the model in one call.
"""

from __future__ import annotations

import numpy as np
from keras import ops

#: The augmentations of ``aug_smooth``, ``(flip, factor)`` in the order of ttach's product.
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))
#: The augmentation whose scores and outputs are reported: the image as it is.
IDENTITY = AUGMENTATIONS.index((False, 1.0))


def augment(batch: np.ndarray) -> np.ndarray:
    """The model's input batch ``(N, H, W, C)`` under each augmentation, ``(6 N, H, W, C)``:
    the ``N`` images under the first augmentation, then under the second, and so on."""
    copies = [(batch[:, :, ::-1] if flip else batch) * np.asarray(factor, batch.dtype)
              for flip, factor in AUGMENTATIONS]
    return np.concatenate(copies).astype(batch.dtype, copy=False)


def deaugment(maps: np.ndarray, count: int) -> np.ndarray:
    """The average of the maps ``(6 N, K, h, w)`` of :func:`augment`'s batch, each flipped
    back first: ``(N, K, h, w)``."""
    total = np.zeros((count,) + maps.shape[1:], np.float32)
    for a, (flip, _) in enumerate(AUGMENTATIONS):
        part = maps[a * count : (a + 1) * count]
        total += part[..., ::-1] if flip else part
    return total / len(AUGMENTATIONS)


def identity(values: np.ndarray, count: int) -> np.ndarray:
    """The rows of ``values`` ``(6 N, ...)`` that belong to the images as they are."""
    return values[IDENTITY * count : (IDENTITY + 1) * count]


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
