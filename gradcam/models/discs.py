"""Generated images of bright discs to count: a regression task that trains in seconds.

Each image is a dark, slightly noisy square with between ``min_discs`` and ``max_discs``
bright discs of random radius that neither overlap nor touch the border; the regression
target is how many there are. A small convolutional network learns to count them on two
CPU cores in seconds, and the true discs are known, so one can check that an explanation
of the count points at them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradcam.checks import check_positive_int

__all__ = ["Discs", "make_discs"]


class Discs(NamedTuple):
    """A batch of generated images and what is in them."""

    images: np.ndarray   #: float32 ``(N, size, size, 3)``, grey RGB with values 0..255
    counts: np.ndarray   #: float32 ``(N,)``: the number of discs in each image
    discs: list          #: per image, a float32 array ``(count, 3)`` of ``(y, x, radius)``


def _place(rng, count, size, radii, gap, tries=1000):
    """Centres and radii of ``count`` discs inside the image, ``gap`` pixels apart."""
    placed = []
    for _ in range(tries):
        if len(placed) == count:
            break
        radius = rng.uniform(*radii)
        y, x = rng.uniform(radius + 1, size - radius - 1, size=2)
        if all(np.hypot(y - py, x - px) >= radius + pr + gap for py, px, pr in placed):
            placed.append((y, x, radius))
    else:
        if len(placed) < count:
            raise ValueError(f"Could not place {count} discs in a {size}x{size} image; use a "
                             "larger size or fewer or smaller discs.")
    return np.array(placed, np.float32).reshape(-1, 3)


def make_discs(n, size=40, min_discs=0, max_discs=5, radii=(2.5, 4.5), noise=20.0, seed=0):
    """Generate ``n`` images of non-overlapping bright discs, and how many each holds.

    Discs are drawn with a one-pixel soft edge at brightness 230 on a background of
    brightness 0..``noise`` (uniform noise); the number of discs is uniform in
    ``min_discs .. max_discs``. The same arguments always give the same images.

    Args:
        n: how many images. Must be positive.
        size: image height and width in pixels. Defaults to `40`.
        min_discs: the fewest discs in an image. Defaults to `0`.
        max_discs: the most discs in an image. Defaults to `5`.
        radii: the range of disc radii in pixels. Defaults to `(2.5, 4.5)`.
        noise: the background's largest brightness (0..255). Defaults to `20.0`.
        seed: the random seed. Defaults to `0`.

    Returns:
        :class:`Discs`: the images ``(n, size, size, 3)`` (values 0..255, float32), the
        counts ``(n,)`` and each image's discs as ``(y, x, radius)`` rows.

    Raises:
        ValueError: an argument is out of range, or the discs do not fit in the image.

    Example:
        >>> data = make_discs(2, seed=1)
        >>> data.images.shape, data.counts
        ((2, 40, 40, 3), array([..., ...], dtype=float32))
    """
    n, size = check_positive_int(n, "n"), check_positive_int(size, "size")
    if not (isinstance(min_discs, int) and isinstance(max_discs, int)
            and 0 <= min_discs <= max_discs):
        raise ValueError(f"Expected 0 <= min_discs <= max_discs (integers); received "
                         f"min_discs={min_discs!r}, max_discs={max_discs!r}.")
    if not (len(radii) == 2 and 0 < radii[0] <= radii[1] < size / 2 - 1):
        raise ValueError(f"Expected radii (low, high) with 0 < low <= high < size / 2 - 1 = "
                         f"{size / 2 - 1}; received radii={radii!r}.")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    images = rng.uniform(0, noise, size=(n, size, size)).astype(np.float32)
    counts = rng.integers(min_discs, max_discs + 1, size=n)
    discs = []
    for image, count in zip(images, counts):
        placed = _place(rng, int(count), size, radii, gap=2.0)
        for y, x, radius in placed:
            # 1 inside the disc, 0 outside, linear across a one-pixel edge.
            cover = np.clip(radius + 0.5 - np.hypot(yy - y, xx - x), 0.0, 1.0)
            np.maximum(image, 230.0 * cover, out=image)
        discs.append(placed)
    images = np.repeat(images[..., np.newaxis], 3, axis=-1)
    return Discs(images, counts.astype(np.float32), discs)
