"""Controls: maps that know nothing of the model, for a method to beat.

A method whose maps score no better than a centred blob or the image's edges has not shown
that it explains the model. Each control is a function from images ``(N, H, W, C)`` to
maps ``(N, H, W)`` float32 in [0, 1]; :data:`CONTROLS` lists them by name. The random
channel weights control (``randomcam``, :data:`RANDOM_METHOD`) is a method of the model,
run as the methods are.
"""

from __future__ import annotations

import numpy as np

from gradcam.image import to_batch

#: The width of :func:`gaussian_map`'s blob, as a fraction of the image's height and width.
GAUSSIAN_SIGMA = 0.25
#: The name of the random channel weights method in :data:`gradcam.METHODS`.
RANDOM_METHOD = "randomcam"


def gaussian_map(images, sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """A centred Gaussian blob, the same for every image: "the object is in the middle".

    Pixel ``(y, x)`` of an ``H x W`` image has the normalised offsets
    ``u = (y + 0.5) / H - 0.5`` and ``v = (x + 0.5) / W - 0.5`` from the centre and the
    value ``exp(-(u**2 + v**2) / (2 sigma**2))``, divided by the map's maximum.

    Args:
        images: ``(N, H, W, C)`` or one ``(H, W, C)``; only their size is read.
        sigma: the blob's standard deviation, as a fraction of the image's sides.
            Defaults to ``0.25``.

    Returns:
        float32 ``(N, H, W)`` in (0, 1].

    Raises:
        ValueError: ``sigma`` is not a positive number.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)) or not 0 < sigma < np.inf:
        raise ValueError(f"sigma must be a positive number (a fraction of the image's sides); got {sigma!r}.")
    batch = to_batch(images, name="images")
    count, height, width = batch.shape[:3]
    u = (np.arange(height) + 0.5) / height - 0.5
    v = (np.arange(width) + 0.5) / width - 0.5
    blob = np.exp(-(u[:, None] ** 2 + v[None, :] ** 2) / (2 * float(sigma) ** 2))
    blob /= blob.max()
    return np.broadcast_to(blob.astype(np.float32), (count, height, width)).copy()


def sobel_map(images) -> np.ndarray:
    """The magnitude of each image's Sobel gradient: "the map shows the edges".

    The image's channels are averaged; the result, extended by reflection about its edge
    pixels, is convolved with the 3x3 Sobel kernels ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]``
    and its transpose, and the map is ``sqrt(gx**2 + gy**2)`` divided by its maximum
    (an image without edges gives an all-zero map).

    Args:
        images: ``(N, H, W, C)`` or one ``(H, W, C)``, in any range.

    Returns:
        float32 ``(N, H, W)`` in [0, 1].
    """
    gray = to_batch(images, name="images").astype(np.float64).mean(axis=3)
    padded = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="reflect" if min(gray.shape[1:]) > 1 else "edge")
    height, width = gray.shape[1:]

    def at(dy, dx):  # the neighbour (dy, dx) of every pixel
        return padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    gx = at(-1, -1) + 2 * at(0, -1) + at(1, -1) - at(-1, 1) - 2 * at(0, 1) - at(1, 1)
    gy = at(-1, -1) + 2 * at(-1, 0) + at(-1, 1) - at(1, -1) - 2 * at(1, 0) - at(1, 1)
    magnitude = np.sqrt(gx**2 + gy**2)
    peaks = magnitude.max(axis=(1, 2), keepdims=True)
    return np.divide(magnitude, peaks, out=np.zeros_like(magnitude), where=peaks > 0).astype(np.float32)


#: The model-free controls, by name.
CONTROLS = {"gaussian": gaussian_map, "sobel": sobel_map}
