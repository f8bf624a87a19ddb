"""The smoothing options every method takes: ``eigen_smooth`` and ``aug_smooth``.

``eigen_smooth`` replaces the sum over channels of a method's weighted activations by
their first principal component (:func:`first_component`),
as pytorch-grad-cam's ``eigen_smooth=True`` does. ``aug_smooth`` is test-time
augmentation: each image is explained as it is and horizontally flipped, each multiplied
by 0.9, 1.0 and 1.1 (pytorch-grad-cam's default ``ttach`` transforms; an integer image is
rounded and clipped back to its dtype, :func:`scaled`), the six maps are flipped back and
averaged. The six copies of a batch are made and their maps averaged inside the method's
one compiled computation (:func:`augmented`), so that only the images go to the device
and only the averaged maps come back.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

#: The augmentations of ``aug_smooth``, ``(flip, factor)`` in the order of ttach's product.
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))
#: The augmentation whose scores and outputs are reported: the image as it is.
IDENTITY = AUGMENTATIONS.index((False, 1.0))


def augment(batch):
    """The model's input batch ``(N, H, W, C)`` under each augmentation, ``(6 N, H, W, C)``:
    the ``N`` images under the first augmentation, then under the second, and so on.

    Each copy keeps the batch's dtype (:func:`scaled`): a model with an integer input
    (``uint8`` or ``int32`` images) gets integer copies, scaled in float32, rounded and
    clipped to its dtype's range.

    Args:
        batch: an array or a backend tensor ``(N, H, W, C)``.

    Returns:
        A backend tensor of ``batch``'s dtype.
    """
    batch = ops.convert_to_tensor(batch)
    flipped = ops.flip(batch, axis=2)
    return ops.concatenate([scaled(flipped if flip else batch, factor) for flip, factor in AUGMENTATIONS], axis=0)


def scaled(images, factor: float):
    """``images`` multiplied by ``factor``, in their own dtype.

    A floating-point batch is multiplied by the factor cast to its dtype. An integer batch
    is multiplied in float32, rounded to the nearest integer (halves to even, as every
    backend's ``round`` does) and clipped to its dtype's range, then cast back: the image
    the model would get from a picture that much darker or brighter, stored as it stores
    its pictures. Rounding keeps every pixel at the integer nearest its scaled value
    (casting alone would truncate, so ``9 * 1.1`` would stay ``9``), and clipping
    saturates a pixel brightened past the range (``250 * 1.1`` gives ``255`` in
    ``uint8``) instead of letting it wrap around to a dark one. pytorch-grad-cam's
    augmentations promote an integer image to floats, which a model with an integer
    input does not take. A factor of 1 returns ``images`` as they are.

    Args:
        images: a backend tensor ``(N, H, W, C)``.
        factor: the brightness factor (0.9, 1.0 or 1.1 for ``aug_smooth``).

    Returns:
        A backend tensor of ``images``' dtype and shape.

    Example:
        >>> keras.ops.convert_to_numpy(scaled(np.array([[[[9, 250]]]], np.uint8), 1.1))
        array([[[[ 10, 255]]]], dtype=uint8)
    """
    if factor == 1.0:
        return images
    dtype = keras.backend.standardize_dtype(images.dtype)
    if "int" not in dtype:
        return images * ops.cast(factor, dtype)
    low, high = _float32_range(dtype)
    values = ops.round(ops.cast(images, "float32") * factor)
    return ops.cast(ops.clip(values, low, high), dtype)


def _float32_range(dtype: str) -> tuple[float, float]:
    """The range of an integer dtype, as float32 values inside it (``int32``'s largest,
    2**31 - 1, is not a float32: the largest float32 below it stands for it)."""
    info = np.iinfo(dtype)
    low, high = np.float32(info.min), np.float32(info.max)
    if int(high) > info.max:
        high = np.nextafter(high, np.float32(0))
    return float(low), float(high)


def deaugment(maps, count, width=-1):
    """The average of the maps ``(6 N, K, h, w)`` of :func:`augment`'s batch, each flipped
    back first: ``(N, K, h, w)``.

    Args:
        maps: an array or a backend tensor ``(6 N, ...)``.
        count: ``N`` (a tensor inside a computation compiled for any batch size).
        width: the axis of ``maps`` along which the flipped copies are flipped back
            (``-2`` for per-pixel maps ``(6 N, K, H, W, C)``). Defaults to ``-1``.

    Returns:
        A float32 backend tensor ``(N, ...)``.
    """
    maps = ops.cast(maps, "float32")
    total = None
    for a, (flip, _) in enumerate(AUGMENTATIONS):
        part = maps[a * count : (a + 1) * count]
        part = ops.flip(part, axis=width) if flip else part
        total = part if total is None else total + part
    return total / len(AUGMENTATIONS)


def identity(values, count):
    """The rows of ``values`` ``(6 N, ...)`` that belong to the images as they are."""
    return values[IDENTITY * count : (IDENTITY + 1) * count]


def repeated(values):
    """``values`` ``(N, ...)``, one row per image (such as its targets), repeated for each
    augmented copy of :func:`augment`'s batch: ``(6 N, ...)``."""
    return ops.tile(values, (len(AUGMENTATIONS),) + (1,) * (len(values.shape) - 1))


def augmented(run, averaged=None):
    """A compiled computation of one batch, with ``aug_smooth``.

    Args:
        run: ``run(call, x, *arrays)``, the computation of the batch ``x`` ``(N, H, W, C)``
            (``call`` runs the model), with ``arrays`` of one row per image (the targets);
            each of its results has one row per image.
        averaged: which results are maps, averaged over the copies: their positions among
            the results, each with the axis of its width (see :func:`deaugment`). Defaults
            to ``None``: ``{0: -1}``, the first result, maps ``(N, K, h, w)``.

    Returns:
        The same computation on :func:`augment`'s copies of ``x``, with the arrays
        :func:`repeated` for them: the maps of the copies averaged (:func:`deaugment`), the
        other results those of the images as they are (:func:`identity`). Written with
        ``keras.ops``, to be compiled as one computation.
    """
    averaged = {0: -1} if averaged is None else averaged

    def run_augmented(call, x, *arrays):
        count = ops.shape(x)[0]
        results = run(call, augment(x), *(repeated(a) for a in arrays))
        return tuple(deaugment(values, count, averaged[i]) if i in averaged else identity(values, count)
                     for i, values in enumerate(results))

    return run_augmented


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
