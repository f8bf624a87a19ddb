"""What every metric does with maps: check them, upsample them to the images, rank their pixels.

A metric receives maps ``(N, h, w)`` at any resolution (a layer's, or the image's) and
images ``(N, H, W, C)``. :func:`check_maps` checks both; :func:`upsample` brings the maps to
``(H, W)`` with the bilinear interpolation of ``keras.ops.image.resize`` (half-pixel
centres, no antialiasing), in float32 (no 8-bit round trip); :func:`rank_pixels` orders
each map's pixels from the most to the least relevant.
"""

from __future__ import annotations

import numpy as np

from gradcam.image import to_batch


def _bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """The ``(size_out, size_in)`` matrix of bilinear interpolation with half-pixel centres.

    Output pixel ``i`` samples the input at ``(i + 0.5) * size_in / size_out - 0.5``,
    clamped to ``[0, size_in - 1]``, and mixes the two input pixels around that point.
    """
    source = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    source = np.clip(source, 0, size_in - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    fraction = source - low
    matrix = np.zeros((size_out, size_in), np.float64)
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1 - fraction)
    np.add.at(matrix, (rows, high), fraction)
    return matrix.astype(np.float32)


def _check_size(size) -> tuple[int, int]:
    try:
        values = tuple(size)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(f"size must be (height, width), two positive integers; got {size!r}.")
    return int(values[0]), int(values[1])


def _check_heatmaps(heatmaps) -> np.ndarray:
    try:
        maps = np.asarray(heatmaps)
    except Exception as error:  # objects numpy cannot convert
        kind = type(heatmaps).__name__
        raise TypeError(f"heatmaps must be an array of numbers; got {kind}: {error}") from None
    if maps.dtype == object or not (np.issubdtype(maps.dtype, np.number) or maps.dtype == np.bool_):
        raise TypeError(f"heatmaps must be an array of numbers; got dtype {maps.dtype}.")
    if maps.ndim != 3 or 0 in maps.shape:
        hint = " (the engines' heatmaps are (N, K, h, w): pass heatmaps[:, k])" if maps.ndim == 4 else ""
        raise ValueError(
            f"Expected heatmaps of shape (N, h, w), one map per image; got shape {maps.shape}{hint}."
        )
    if np.issubdtype(maps.dtype, np.complexfloating):
        raise TypeError(f"heatmaps must be real numbers; got dtype {maps.dtype}.")
    if np.issubdtype(maps.dtype, np.floating):
        finite = np.isfinite(maps)
        if not finite.all():
            bad = sorted({int(n) for n in np.nonzero(~finite.all(axis=(1, 2)))[0]})
            raise ValueError(
                f"heatmaps {bad[:10]} contain NaN or infinite values; expected finite maps "
                "(an empty map is all zero)."
            )
    return maps


def upsample(heatmaps, size) -> np.ndarray:
    """Resize maps to ``size`` with bilinear interpolation, half-pixel centres, in float32.

    The same interpolation as ``keras.ops.image.resize(maps[..., None], size,
    interpolation="bilinear", antialias=False)``: output pixel ``(i, j)`` samples the map
    at ``((i + 0.5) * h / H - 0.5, (j + 0.5) * w / W - 0.5)``, clamped to the map's edges.
    It is separable, so it runs as two small matrix products per map, on the CPU, with no
    8-bit round trip. Maps already of that size are returned as float32 unchanged.

    Args:
        heatmaps: maps ``(N, h, w)``, any real dtype.
        size: ``(H, W)``, the images' height and width.

    Returns:
        float32 array ``(N, H, W)`` (a new array: ``heatmaps`` is never modified).

    Raises:
        TypeError: ``heatmaps`` is not an array of real numbers.
        ValueError: ``heatmaps`` is not ``(N, h, w)`` or holds NaN or infinite values;
            ``size`` is not two positive integers.

    Example:
        >>> upsample(np.array([[[0.0, 1.0]]]), (1, 4))
        array([[[0.  , 0.25, 0.75, 1.  ]]], dtype=float32)
    """
    maps = _check_heatmaps(heatmaps)
    height, width = _check_size(size)
    maps = maps.astype(np.float32)  # always a copy
    if maps.shape[1:] == (height, width):
        return maps
    rows = _bilinear_weights(maps.shape[1], height)
    columns = _bilinear_weights(maps.shape[2], width)
    # Two matrix products (numpy's einsum of the three takes about 100 times as long).
    return (rows @ maps @ columns.T).astype(np.float32, copy=False)


def rank_pixels(maps) -> np.ndarray:
    """Each map's pixels from the most to the least relevant, as row-major indices.

    Pixels are sorted by descending value; pixels of equal value keep their row-major
    order (a stable sort), so the ranking of a map with ties, an all-zero map included,
    is fixed: ``[[1, 0], [1, 0]]`` ranks ``0, 2, 1, 3``.

    Args:
        maps: ``(N, H, W)`` real-valued maps, NaN-free (as :func:`upsample` returns).

    Returns:
        int64 array ``(N, H * W)``: ``ranked[n, r]`` is the row-major index
        ``row * W + column`` of the pixel of rank ``r`` (0 = the most relevant).

    Raises:
        TypeError: ``maps`` is not an array of real numbers.
        ValueError: ``maps`` is not ``(N, H, W)`` or holds NaN or infinite values.
    """
    maps = _check_heatmaps(maps)
    flat = maps.reshape(len(maps), -1)
    # argsort of the negated values, stable: descending, ties by ascending index. Negating
    # an unsigned or boolean map would wrap around, so those are widened first.
    values = flat.astype(np.float64) if not np.issubdtype(flat.dtype, np.floating) else flat
    return np.argsort(-values, axis=1, kind="stable")


def check_maps(docs, heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """Check a metric's images and maps; return them as arrays, the maps at the images' size.

    Args:
        docs: images ``(N, H, W, C)`` (or one ``(H, W, C)``), finite numbers.
        heatmaps: maps ``(N, h, w)``, one per image, at any resolution.

    Returns:
        ``(docs, maps)``: ``docs`` as a numpy array ``(N, H, W, C)`` (a view of the
        caller's array where possible: never write to it), and the maps upsampled to
        ``(N, H, W)`` float32 (a new array).

    Raises:
        TypeError: ``docs`` or ``heatmaps`` is not an array of numbers.
        ValueError: wrong ranks; NaN or infinite values; not one map per image.
    """
    images = to_batch(docs, name="docs")
    maps = _check_heatmaps(heatmaps)
    if len(maps) != len(images):
        raise ValueError(
            f"Expected one map per image: docs has {len(images)} images of shape "
            f"{images.shape[1:]}, heatmaps has {len(maps)} maps of shape {maps.shape[1:]}."
        )
    return images, upsample(maps, images.shape[1:3])
