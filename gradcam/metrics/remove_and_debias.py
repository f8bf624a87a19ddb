"""ROAD, RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", arXiv 2202.00449): the score once a share of the map's pixels is
removed and filled in by noisy linear imputation, which gives the model no hint of where
the removed pixels were."""

from __future__ import annotations

import functools
import os

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from gradcam.checks import check_positive_int
from gradcam.metrics.maps import rank_pixels
from gradcam.metrics.scoring import check_inputs, metric_docstring, perturbed_scores

ORDERS = ("morf", "lerf")
#: The paper's weights of a removed pixel's neighbours: 1/6 for the four that share an
#: edge, 1/12 for the four diagonal ones, as ``(row offset, column offset, weight)``.
NEIGHBOURS = tuple(
    (dy, dx, 1 / 12 if dy and dx else 1 / 6) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx
)


def dissection_order(height: int, width: int, leaf: int = 64) -> np.ndarray:
    """The pixels of a ``(height, width)`` grid in a geometric nested-dissection order.

    The grid is cut in two by its middle row (or column, if it is wider than tall); each
    half is ordered in the same way, the first half then the second, and the cut comes
    last; blocks of at most ``leaf`` pixels are left whole. Eliminating the pixels in
    this order keeps the factors of the imputation's system sparse (the fill-in of a grid's
    nested dissection is ``O(n log n)``).

    Args:
        height: the grid's height.
        width: the grid's width.
        leaf: the largest block left uncut (on 224x224 images, 16 to 64 are equally fast
            and 256 is 1.5x slower). Defaults to ``64``.

    Returns:
        int64 ``(height * width,)``: the row-major indices of the pixels, in that order.
    """
    parts = []

    def cut(block):
        if block.size <= leaf:
            parts.append(block.ravel())
            return
        if block.shape[0] < block.shape[1]:
            block = block.T
        middle = block.shape[0] // 2
        cut(block[:middle])
        cut(block[middle + 1 :])
        parts.append(block[middle])

    cut(np.arange(height * width).reshape(height, width))
    return np.concatenate(parts)


@functools.lru_cache(maxsize=8)
def _grid_system(height: int, width: int):
    """``(order, matrix)`` for an image's size, made once per size.

    ``order`` is :func:`dissection_order`; ``matrix`` the imputation's equations with every
    pixel removed, CSR ``(H * W, H * W)`` by row-major index: ``sum_j w_ij`` on the
    diagonal, ``-w_ij`` for each neighbour ``j`` inside the image. A removed set's system is
    the submatrix of its pixels.
    """
    index = np.arange(height * width).reshape(height, width)
    rows, columns, weights = [index.ravel()], [index.ravel()], []
    total = np.zeros((height, width))
    for dy, dx, weight in NEIGHBOURS:
        inside = (slice(max(0, -dy), height - max(0, dy)), slice(max(0, -dx), width - max(0, dx)))
        moved = (slice(max(0, dy), height - max(0, -dy)), slice(max(0, dx), width - max(0, -dx)))
        rows.append(index[inside].ravel())
        columns.append(index[moved].ravel())
        weights.append(np.full(rows[-1].size, -weight))
        total[inside] += weight
    values = np.concatenate([total.ravel()] + weights)
    size = (height * width, height * width)
    matrix = scipy.sparse.csr_matrix((values, (np.concatenate(rows), np.concatenate(columns))), shape=size)
    order = dissection_order(height, width)
    order.flags.writeable = False
    return order, matrix


def impute(image, removed) -> np.ndarray:
    """Fill the removed pixels of an image by linear imputation, without noise.

    Each removed pixel takes the weighted mean of its neighbours inside the image
    (:data:`NEIGHBOURS`), removed ones included, so the values of all removed pixels are
    the solution of one sparse linear system, solved for every channel at once: for each
    removed pixel ``i``, ``(sum_j w_ij) x_i - sum_{j removed} w_ij x_j = sum_{j kept}
    w_ij x_j``.

    Args:
        image: ``(H, W, C)``.
        removed: bool ``(H, W)``, ``True`` where a pixel is removed; at least one pixel
            must be kept.

    Returns:
        float64 ``(H, W, C)``, a new array: the kept pixels as they were, the removed
        ones imputed.

    Raises:
        ValueError: every pixel is removed.
    """
    height, width, channels = image.shape
    filled = np.array(image, np.float64).reshape(-1, channels)
    order, grid = _grid_system(height, width)
    unknown = order[np.asarray(removed, bool).reshape(-1)[order]]  # in nested-dissection order
    if len(unknown) == 0:
        return filled.reshape(image.shape)
    if len(unknown) == height * width:
        raise ValueError(
            f"impute needs at least one kept pixel; all {len(unknown)} pixels of the "
            f"{(height, width)} image are removed."
        )
    equations = grid[unknown]
    known = filled.copy()
    known[unknown] = 0
    # The system is symmetric positive definite (diagonally dominant, and every group of
    # removed pixels touches a kept one): no pivoting, and the nested-dissection order as
    # it is (measured on 224x224 images: 20-40% faster than a minimum-degree ordering).
    factors = scipy.sparse.linalg.splu(
        equations[:, unknown].tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0, options={"SymmetricMode": True}
    )
    filled[unknown] = factors.solve(-(equations @ known))
    return filled.reshape(image.shape)


def _check_percentiles(percentiles) -> np.ndarray:
    try:
        values = np.asarray(percentiles, np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 1 or len(values) == 0 or not ((values >= 0) & (values < 100)).all():
        raise ValueError(
            f"percentiles must be a non-empty sequence of numbers in [0, 100) (the share of "
            f"pixels removed, in percent); got {percentiles!r}."
        )
    return values


@metric_docstring("imputed images")
def road(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32,
         percentiles=(10, 20, 30, 40, 50, 60, 70, 80, 90), order: str = "morf", noise: float = 0.01,
         seed: int = 0, workers: int | None = None):
    """ROAD: the target's score with a share of the pixels removed and imputed.

    For each percentile ``p``, the ``k = floor(p * H * W / 100)`` pixels ranked first
    (``order="morf"``, most relevant first) or last (``order="lerf"``, least relevant
    first) in the map's ranking are removed: the map is upsampled bilinearly to the image
    and its pixels ranked by :func:`~gradcam.metrics.maps.rank_pixels` (descending value,
    ties by row-major index; the paper's code breaks ties with a small random offset).
    The removed pixels are filled in by the paper's noisy linear imputation: each takes
    the weighted mean of its eight neighbours inside the image (weight 1/6 for those that
    share an edge, 1/12 for the diagonal ones), removed neighbours included, which is a
    sparse linear system solved per image and percentile (:func:`impute`), plus Gaussian
    noise of standard deviation ``noise`` times the image's value range (its maximum
    minus its minimum over all channels: the paper's 0.01 on images in [0, 1]). The
    result is the target's score on each imputed image. Removing the most relevant pixels
    should make the score fall fast (MoRF: lower is better), the least relevant slowly
    (LeRF: higher is better).

    ``p`` is the share of pixels removed in both orders, as the paper plots them (the
    paper's code, for LeRF, removes ``1 - p`` instead). The noise is drawn from
    ``numpy.random.default_rng((seed, n, i))`` for image ``n`` and percentile ``i``: the
    result depends on neither the batch size, nor the other images, nor ``workers``.

    The imputations take most of the time (a 224x224 image's nine default percentiles
    take about 0.6 s of one CPU core); ``workers`` threads make a batch's imputations at
    once (the sparse solver runs outside Python's global interpreter lock).

    Args:
        {args}
        percentiles: the shares of pixels removed, in percent, each in [0, 100).
            Defaults to ``(10, 20, 30, 40, 50, 60, 70, 80, 90)``.
        order: ``"morf"`` (remove the most relevant pixels) or ``"lerf"`` (the least
            relevant). Defaults to ``"morf"``.
        noise: the imputation noise's standard deviation, as a fraction of each image's
            value range; ``0`` for none. Defaults to ``0.01``.
        seed: the seed of the noise. Defaults to ``0``.
        workers: how many threads impute at once, or ``None`` for one per CPU
            (``os.cpu_count()``). Defaults to ``None``.

    Returns:
        float32 array ``(N, len(percentiles))``: the score of image ``n`` with
        ``percentiles[i]`` percent of its pixels removed at ``[n, i]``.

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors};
            ``percentiles`` not in [0, 100); ``order`` unknown; ``noise`` negative or not
            finite; ``seed`` not a non-negative integer; ``workers`` not a positive integer
            or ``None``.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))}; got {order!r}.")
    shares = _check_percentiles(percentiles)
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)) or not (
        np.isfinite(noise) and noise >= 0
    ):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    workers = (os.cpu_count() or 1) if workers is None else check_positive_int(workers, "workers")
    images, maps, targets, batch_size = check_inputs(model, docs, heatmaps, targets, preprocess, batch_size)
    count, height, width = maps.shape
    ranked = rank_pixels(maps)
    if order == "lerf":
        ranked = ranked[:, ::-1]
    removed_counts = np.floor(shares * (height * width) / 100).astype(np.int64)

    def perturb(n, steps):
        image = images[n].astype(np.float64)
        spread = noise * float(image.max() - image.min())
        out = np.empty((len(steps), height, width, image.shape[-1]), np.float32)
        for row, i in enumerate(steps):
            removed = np.zeros(height * width, bool)
            removed[ranked[n, : removed_counts[i]]] = True
            filled = impute(image, removed.reshape(height, width)).reshape(-1, image.shape[-1])
            if spread > 0:
                rng = np.random.default_rng((int(seed), int(n), int(i)))
                filled[removed] += rng.normal(0.0, spread, (int(removed.sum()), image.shape[-1]))
            out[row] = filled.reshape(image.shape)
        return out

    return perturbed_scores(
        model, perturb, count, len(shares), targets, preprocess=preprocess, batch_size=batch_size,
        workers=workers,
    )
