"""The Ray tasks that read and decode image files for :func:`~gradcam.ray.explain_images`.

This module imports only what decoding needs (no Keras, no command line): each reading
task runs in a Ray worker process that imports it.
"""

from __future__ import annotations

import numpy as np

from gradcam.image import doc_from_image, load_image

#: CPUs a task reading and decoding image files reserves.
READ_CPUS = 0.25


def read_files(batch: dict, image_size=None) -> dict:
    """Decode the files of a ``"path"`` column as :func:`gradcam.load_image` does.

    Args:
        batch: a dict of numpy arrays with a ``"path"`` column.
        image_size: ``(height, width)`` to resize to as :func:`gradcam.image_from_path`
            does (bilinear, 8-bit RGB), or ``None`` to keep each file's size.

    Returns:
        The batch with an ``"image"`` column of 8-bit RGB arrays: one ``(N, H, W, 3)``
        array when all have one size, else an object array of ``(H, W, 3)`` arrays.
    """
    images = []
    for path in batch["path"]:
        image = load_image(str(path))
        images.append(np.asarray(image) if image_size is None
                      else doc_from_image(image, image_size)[0].astype(np.uint8))
    if len({image.shape for image in images}) == 1:
        return {**batch, "image": np.stack(images)}
    column = np.empty(len(images), dtype=object)  # images of several sizes: one array each
    for i, image in enumerate(images):
        column[i] = image
    return {**batch, "image": column}
