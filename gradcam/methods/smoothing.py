"""The smoothing options every method takes: ``eigen_smooth`` and ``aug_smooth``.

``eigen_smooth`` replaces the sum over channels of a method's weighted activations by
their first principal component (:func:`first_component`),
as pytorch-grad-cam's ``eigen_smooth=True`` does. ``aug_smooth`` is test-time
augmentation: each image is explained as it is and horizontally flipped, each multiplied
by 0.9, 1.0 and 1.1 (pytorch-grad-cam's default ``ttach`` transforms), the six maps are
flipped back and averaged. The six copies of a batch go through the model in one call;
for the methods that need one forward and backward pass, the copies are made and their
maps averaged inside the compiled computation (:func:`augmented`), so that only the
images go to the device and only the averaged maps come back.
"""

from __future__ import annotations

from keras import ops

#: The augmentations of ``aug_smooth``, ``(flip, factor)`` in the order of ttach's product.
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))
#: The augmentation whose scores and outputs are reported: the image as it is.
IDENTITY = AUGMENTATIONS.index((False, 1.0))


def augment(batch):
    """The model's input batch ``(N, H, W, C)`` under each augmentation, ``(6 N, H, W, C)``:
    the ``N`` images under the first augmentation, then under the second, and so on.

    Args:
        batch: an array or a backend tensor ``(N, H, W, C)``.

    Returns:
        A backend tensor of ``batch``'s dtype (each factor is cast to it).
    """
    batch = ops.convert_to_tensor(batch)
    flipped = ops.flip(batch, axis=2)
    copies = [(flipped if flip else batch) * ops.cast(factor, batch.dtype) for flip, factor in AUGMENTATIONS]
    return ops.concatenate(copies, axis=0)


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
