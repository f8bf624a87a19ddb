"""Generated images with a shortcut: a shape to classify and a coloured marker that gives
the answer away.

Each image is a dark, slightly noisy square holding one grey object, a ring (class 0)
or a cross (class 1), and, in one of its four corners, a small coloured square, the
*marker*: red for class 0, blue for class 1. In the training data the marker agrees with
the class, so a model can learn either the shape or the colour of a few pixels, and the
colour is much the easier; on test images whose marker is swapped (the other class's
colour), a model that took the shortcut is wrong, one that learned the shapes is not.
Where the object lies is known (:attr:`Shortcut.masks`), so one can check, and train,
where the explanations point.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from gradcam.checks import check_positive_int

__all__ = ["CLASS_NAMES", "MARKER_COLOURS", "Shortcut", "make_shortcut"]

#: The classes' names, by label: the object's shape.
CLASS_NAMES = ("ring", "cross")
#: The marker's RGB colour for each class, by label.
MARKER_COLOURS = ((230.0, 30.0, 30.0), (30.0, 30.0, 230.0))


class Shortcut(NamedTuple):
    """A batch of generated images, their classes and where the object and marker are."""

    images: np.ndarray   #: float32 ``(N, size, size, 3)``, RGB with values 0..255
    labels: np.ndarray   #: int32 ``(N,)``: the object's class, 0 (ring) or 1 (cross)
    markers: np.ndarray  #: int32 ``(N,)``: the class whose colour the marker has
    corners: np.ndarray  #: int32 ``(N, 2)``: the marker's top-left pixel ``(y, x)``
    objects: np.ndarray  #: float32 ``(N, 3)``: the object's centre and outer radius ``(y, x, radius)``
    masks: np.ndarray    #: float32 ``(N, size, size)``: 1 within ``radius + 1`` of the object's centre, else 0


def _ring(distance_y, distance_x, radius, width):
    """Cover (0..1, a one-pixel soft edge) of a ring of outer ``radius``."""
    distance = np.hypot(distance_y, distance_x)
    return np.clip(np.minimum(radius + 0.5 - distance, distance - (radius - width) + 0.5), 0.0, 1.0)


def _cross(distance_y, distance_x, radius, width):
    """Cover of a plus sign whose arms reach ``radius`` from the centre."""
    along = np.clip(radius + 0.5 - np.maximum(np.abs(distance_y), np.abs(distance_x)), 0.0, 1.0)
    across = np.clip(width / 2 + 0.5 - np.minimum(np.abs(distance_y), np.abs(distance_x)), 0.0, 1.0)
    return along * across


_SHAPES = (_ring, _cross)


def make_shortcut(n, size=32, agreement=1.0, marker_size=4, radii=(5.0, 8.0), width=2.0, brightness=200.0, noise=30.0,
                  seed=0):
    """Generate ``n`` images of a ring or a cross with a class-coloured marker in a corner.

    The class is uniform over ``CLASS_NAMES``; the object (of the given ``brightness``, a
    one-pixel soft edge, outer radius uniform in ``radii``, strokes ``width`` pixels wide) lies at a
    random place that keeps one pixel from the border and two from the marker; the
    marker, a ``marker_size`` square one pixel from the border in a random corner, has the
    colour of the image's class (``MARKER_COLOURS``) with probability ``agreement`` and the
    other class's otherwise; the background is uniform noise of brightness 0..``noise``.
    The same arguments always give the same images.

    Args:
        n: how many images, a positive integer.
        size: image height and width in pixels, at least ``2 * (marker_size + radii[1]) +
            6``. Defaults to `32`.
        agreement: the probability that an image's marker has its own class's colour, in
            [0, 1]: 1 for training data with the shortcut, 0 for test images whose marker
            is always swapped. Defaults to `1.0`.
        marker_size: the marker's side in pixels, a positive integer. Defaults to `4`.
        radii: the range ``(low, high)`` of the objects' outer radii in pixels. Defaults to
            `(5.0, 8.0)`.
        width: the width of the objects' strokes in pixels, at least 1. Defaults to `2.0`.
        brightness: the objects' brightness (0..255). Defaults to `200.0`.
        noise: the background's largest brightness (0..255). Defaults to `30.0`.
        seed: the random seed. Defaults to `0`.

    Returns:
        :class:`Shortcut`: the images ``(n, size, size, 3)`` (values 0..255, float32), the
        labels and marker classes ``(n,)``, the markers' top-left pixels ``(n, 2)`` and the
        objects' centres and radii ``(n, 3)`` and masks ``(n, size, size)`` (1 on the disc of
        the object's outer radius plus one pixel, which holds the whole object and does not
        touch the marker).

    Raises:
        ValueError: an argument is out of range (the message names it and echoes it), or
            the object and marker do not fit in the image.

    Example:
        >>> train = make_shortcut(1000, seed=0)
        >>> swapped = make_shortcut(200, agreement=0.0, seed=1)
        >>> swapped.images.shape, bool((swapped.markers != swapped.labels).all())
        ((200, 32, 32, 3), True)
    """
    n, size = check_positive_int(n, "n"), check_positive_int(size, "size")
    marker_size = check_positive_int(marker_size, "marker_size")
    if not (isinstance(agreement, (int, float, np.integer, np.floating)) and 0 <= agreement <= 1):
        raise ValueError(f"agreement must be a probability in [0, 1]; got {agreement!r}.")
    if not (len(radii) == 2 and 0 < radii[0] <= radii[1]):
        raise ValueError(f"Expected radii (low, high) with 0 < low <= high; received radii={radii!r}.")
    if not (isinstance(width, (int, float)) and 1 <= width <= radii[0]):
        raise ValueError(f"Expected width between 1 and radii[0] = {radii[0]}; received width={width!r}.")
    for name, level in (("brightness", brightness), ("noise", noise)):
        if not (isinstance(level, (int, float)) and 0 <= level <= 255):
            raise ValueError(f"{name} must be a brightness in [0, 255]; got {level!r}.")
    if size < 2 * (marker_size + radii[1]) + 6:
        raise ValueError(f"A {size}x{size} image cannot hold an object of radius {radii[1]} beside a marker of "
                         f"{marker_size} pixels; use size >= {math.ceil(2 * (marker_size + radii[1]) + 6)}.")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n).astype(np.int32)
    markers = np.where(rng.uniform(size=n) < agreement, labels, 1 - labels).astype(np.int32)
    far = size - 1 - marker_size
    corners = rng.choice(np.array([1, far]), size=(n, 2)).astype(np.int32)
    images = np.repeat(rng.uniform(0, noise, size=(n, size, size, 1)).astype(np.float32), 3, axis=-1)
    masks = np.zeros((n, size, size), np.float32)
    objects = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for image, mask, label, marker, (y0, x0) in zip(images, masks, labels, markers, corners):
        radius = rng.uniform(*radii)
        while True:  # a centre that keeps the object off the border and away from the marker
            y, x = rng.uniform(radius + 1, size - radius - 1, size=2)
            gap_y = max(y0 - (y + radius), (y - radius) - (y0 + marker_size))
            gap_x = max(x0 - (x + radius), (x - radius) - (x0 + marker_size))
            if max(gap_y, gap_x) >= 2:
                break
        cover = _SHAPES[label](yy - y, xx - x, radius, width)
        np.maximum(image, brightness * cover[..., np.newaxis], out=image)
        mask[:] = np.hypot(yy - y, xx - x) <= radius + 1
        objects.append((y, x, radius))
        image[y0:y0 + marker_size, x0:x0 + marker_size] = MARKER_COLOURS[marker]
    return Shortcut(images, labels, markers, corners, np.array(objects, np.float32).reshape(n, 3), masks)
