"""Localisation metrics: does a map point at the object, given its bounding boxes?

No model runs: these metrics compare maps with boxes drawn by people. The maps are first
upsampled to the image's size (:func:`~gradcam.metrics.maps.upsample`, bilinear, half-pixel
centres, in float32).

A box is ``(x0, y0, x1, y1)`` in pixels of the image, ``x`` the column and ``y`` the row,
``(0, 0)`` the top left corner, and ``x1``, ``y1`` exclusive, as in numpy slices: the box
covers rows ``y0 .. y1 - 1`` and columns ``x0 .. x1 - 1``, i.e. ``image[y0:y1, x0:x1]``.
Each image has one box or several (several instances of the class): a map counts as
pointing at the object when it points at any of them.
"""

from __future__ import annotations

import numpy as np

from gradcam.image import check_image_shape
from gradcam.metrics.maps import upsample


def _check_shape(image_shape) -> tuple[int, int]:
    if image_shape is None:
        raise ValueError("image_shape must be (height, width) with two positive integers; got None.")
    return check_image_shape(image_shape)


def _check_boxes(boxes, count: int, image_shape: tuple[int, int]) -> list[np.ndarray]:
    """``boxes`` as one float64 array ``(B, 4)`` per image, each box checked."""
    height, width = image_shape
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
        boxes = list(boxes)
    try:
        per_image = list(boxes)
    except TypeError:
        raise TypeError(f"boxes must be one box (x0, y0, x1, y1) or a list of boxes per image; got {boxes!r}.") from None
    if len(per_image) != count:
        raise ValueError(f"boxes has {len(per_image)} entries for {count} maps; expected one entry per image.")
    checked = []
    for n, entry in enumerate(per_image):
        try:
            array = np.asarray(entry, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"boxes[{n}] must hold numbers (x0, y0, x1, y1); got {entry!r}.") from None
        if array.ndim == 1:
            array = array[np.newaxis]
        if array.ndim != 2 or array.shape[1] != 4 or len(array) == 0:
            raise ValueError(
                f"boxes[{n}] must be one box (x0, y0, x1, y1) or a list of them; got shape {np.shape(entry)}."
            )
        for box in array:
            x0, y0, x1, y1 = box
            inside = np.isfinite(box).all() and 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            if not inside:
                raise ValueError(
                    f"boxes[{n}] has the box {tuple(box.tolist())}; expected (x0, y0, x1, y1) with "
                    f"0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} (x1, y1 exclusive) "
                    f"for images of shape {image_shape}."
                )
        checked.append(array)
    return checked


def _box_mask(boxes: np.ndarray, image_shape: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    """Boolean ``(H, W)``: the pixels inside any of ``boxes``, each grown by ``grow`` px
    on every side. A pixel is inside when its row and column indices are."""
    rows = np.arange(image_shape[0])[:, np.newaxis]
    columns = np.arange(image_shape[1])[np.newaxis, :]
    mask = np.zeros(image_shape, bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (rows >= y0 - grow) & (rows < y1 + grow) & (columns >= x0 - grow) & (columns < x1 + grow)
    return mask


def _prepare(heatmaps, boxes, image_shape):
    shape = _check_shape(image_shape)
    maps = upsample(heatmaps, shape)
    return maps, _check_boxes(boxes, len(maps), shape), shape


def pointing_game(heatmaps, boxes, image_shape, tolerance: float = 15) -> np.ndarray:
    """The pointing game (Zhang et al., arXiv 1608.00507): does each map's maximum lie on
    the object?

    Each map is upsampled to ``image_shape``; its maximum is the first pixel of largest
    value in row-major order (a map with several equal maxima points at the top-most,
    then left-most, of them). It is a hit when that pixel lies within one of the image's
    boxes grown by ``tolerance`` pixels on every side (rows ``y0 - tolerance`` to ``y1 +
    tolerance``, ``y1 + tolerance`` excluded, and the same for columns). A map with no
    positive value (all zero: it points nowhere) is a miss. The mean of the result is the
    pointing game's accuracy.

    Args:
        heatmaps: maps ``(N, h, w)``, one per image, at any resolution.
        boxes: for each image, one box ``(x0, y0, x1, y1)`` in pixels (``x1`` and ``y1``
            exclusive) or a list of boxes; an array ``(N, 4)`` gives one box per image.
        image_shape: ``(height, width)`` of the images the boxes were drawn on.
        tolerance: how many pixels each box is grown by, a non-negative number.
            Defaults to ``15`` (the paper's).

    Returns:
        float32 ``(N,)``: 1 for a hit, 0 for a miss.

    Raises:
        TypeError: ``heatmaps`` or ``boxes`` does not hold numbers.
        ValueError: ``heatmaps`` is not ``(N, h, w)`` or holds NaN or infinite values;
            ``image_shape`` is not two positive integers; not one entry of ``boxes`` per
            map; a box that is empty, reversed or outside the image; a negative
            ``tolerance``.

    Example:
        >>> heatmaps = np.array([[[0, 0.5], [1, 0]]])   # the maximum at row 1, column 0
        >>> pointing_game(heatmaps, [(0, 2, 2, 4)], image_shape=(4, 4), tolerance=0)
        array([1.], dtype=float32)
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) or not (
        0 <= tolerance < np.inf
    ):
        raise ValueError(f"tolerance must be a non-negative number of pixels; got {tolerance!r}.")
    maps, per_image, shape = _prepare(heatmaps, boxes, image_shape)
    hits = np.zeros(len(maps), np.float32)
    for n, (heatmap, image_boxes) in enumerate(zip(maps, per_image)):
        if not (heatmap > 0).any():
            continue
        row, column = np.unravel_index(np.argmax(heatmap), shape)
        hits[n] = _box_mask(image_boxes, shape, float(tolerance))[row, column]
    return hits


def energy_pointing_game(heatmaps, boxes, image_shape) -> np.ndarray:
    """The energy-based pointing game (Wang et al., Score-CAM, arXiv 1910.01279): the share
    of each map's mass that lies on the object.

    Each map is upsampled to ``image_shape``; the result is the sum of its values inside
    the image's boxes (their union, where boxes overlap) divided by the sum of all its
    values. A map that is all zero has no mass, and none on the object: its share is 0.

    Args:
        heatmaps: non-negative maps ``(N, h, w)``, one per image, at any resolution.
        boxes: for each image, one box ``(x0, y0, x1, y1)`` in pixels (``x1`` and ``y1``
            exclusive) or a list of boxes; an array ``(N, 4)`` gives one box per image.
        image_shape: ``(height, width)`` of the images the boxes were drawn on.

    Returns:
        float32 ``(N,)`` in [0, 1].

    Raises:
        TypeError: ``heatmaps`` or ``boxes`` does not hold numbers.
        ValueError: ``heatmaps`` is not ``(N, h, w)``, holds NaN, infinite or negative
            values; ``image_shape`` is not two positive integers; not one entry of
            ``boxes`` per map; a box that is empty, reversed or outside the image.

    Example:
        >>> heatmaps = np.array([[[1.0, 3.0], [0.0, 0.0]]])
        >>> energy_pointing_game(heatmaps, [(1, 0, 2, 1)], image_shape=(2, 2))
        array([0.75], dtype=float32)
    """
    maps, per_image, shape = _prepare(heatmaps, boxes, image_shape)
    negative = sorted({int(n) for n in np.nonzero((maps < 0).any(axis=(1, 2)))[0]})
    if negative:
        raise ValueError(f"heatmaps {negative[:10]} have negative values; expected maps of non-negative values.")
    shares = np.zeros(len(maps), np.float32)
    for n, (heatmap, image_boxes) in enumerate(zip(maps, per_image)):
        total = heatmap.sum(dtype=np.float64)
        if total > 0:
            shares[n] = heatmap[_box_mask(image_boxes, shape)].sum(dtype=np.float64) / total
    return shares
