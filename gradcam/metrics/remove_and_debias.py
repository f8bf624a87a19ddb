"""ROAD, RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", arXiv 2202.00449): the score once a share of the map's pixels is
removed and filled in by noisy linear imputation, which gives the model no hint of where
the removed pixels were."""

from __future__ import annotations

import functools
import os

import keras.ops as ops
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from gradcam import backend
from gradcam.checks import check_positive_int
from gradcam.metrics.maps import rank_pixels
from gradcam.metrics.scoring import check_inputs, metric_docstring, perturbed_scores

ORDERS = ("morf", "lerf")
#: How :func:`road` solves the imputation's system: ``"direct"`` (:func:`impute`),
#: ``"iterative"`` (:func:`impute_iteratively`), or ``"auto"``.
SOLVERS = ("auto", "direct", "iterative")
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


def _neighbour_sums(values):
    """``sum_j w_ij v_j`` over the neighbours ``j`` inside the image of every pixel ``i``
    of ``values`` ``(S, H, W, C)`` (outside the image counts as zero)."""
    height, width = values.shape[1], values.shape[2]
    padded = ops.pad(values, [[0, 0], [1, 1], [1, 1], [0, 0]])
    total = 0
    for dy, dx, weight in NEIGHBOURS:
        total = total + weight * padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width, :]
    return total


def _conjugate_gradients(images, removed, tolerance, iterations):
    """The imputation of ``images`` ``(S, H, W, C)`` where ``removed`` ``(S, H, W)`` is 1,
    by conjugate gradients on :func:`impute`'s system, one per image and channel at once."""
    removed = ops.expand_dims(removed, -1)
    # The system for the values less the mean of the kept pixels (whose solution is the
    # mean less): smaller numbers, so float32 loses less of the detail CG has to find.
    mean = ops.sum(images * (1 - removed), axis=(1, 2), keepdims=True) / ops.maximum(
        ops.sum(1 - removed, axis=(1, 2), keepdims=True), 1
    )
    kept = (images - mean) * (1 - removed)
    weights = _neighbour_sums(ops.ones_like(removed[:1]))  # sum_j w_ij, (1, H, W, 1)

    def apply(values):  # the system's matrix on values that are zero at the kept pixels
        return removed * (weights * values - _neighbour_sums(values))

    def dot(a, b):
        return ops.sum(a * b, axis=(1, 2), keepdims=True)

    right = removed * _neighbour_sums(kept)
    solution = ops.zeros_like(right)  # the mean of the kept pixels
    residual = right
    squared = dot(residual, residual)
    bound = tolerance**2 * dot(right, right)

    def going(i, solution, residual, direction, squared):
        return ops.logical_and(i < iterations, ops.any(squared > bound))

    def step(i, solution, residual, direction, squared):
        product = apply(direction)
        curvature = dot(direction, product)
        alpha = ops.where(curvature > 0, squared / ops.where(curvature > 0, curvature, 1), 0)
        solution = solution + alpha * direction
        residual = residual - alpha * product
        new = dot(residual, residual)
        beta = ops.where(squared > 0, new / ops.where(squared > 0, squared, 1), 0)
        return i + 1, solution, residual, residual + beta * direction, new

    loop = (ops.convert_to_tensor(0, "int32"), solution, residual, residual, squared)
    _, solution, _, _, _ = ops.while_loop(going, step, loop)
    return images * (1 - removed) + (mean + solution) * removed


@functools.lru_cache(maxsize=8)
def _compiled_solver(height: int, width: int, channels: int):
    """:func:`_conjugate_gradients`, compiled once per image size."""
    signature = [
        ((None, height, width, channels), "float32"),
        ((None, height, width), "float32"),
        ((), "float32"),
        ((), "int32"),
    ]
    return backend.current().compile_function(_conjugate_gradients, signature)


def impute_iteratively(images, removed, tolerance: float = 1e-5, iterations: int | None = None) -> np.ndarray:
    """Fill the removed pixels of many images at once by linear imputation, without noise,
    solving :func:`impute`'s system by conjugate gradients on the Keras backend's device.

    The same values as :func:`impute`, to the solver's tolerance, from a computation written
    in ``keras.ops`` and compiled once per image size (``jax.jit``, ``tf.function``; PyTorch
    runs it eagerly): each iteration applies the system's matrix as a weighted sum of every
    pixel's eight neighbours, for all images and channels at once, which suits a GPU. The
    system is symmetric positive definite, so conjugate gradients converge; each image and
    channel is its own system, and the iterations stop once every residual is below
    ``tolerance`` times its right-hand side's norm, or after ``iterations``. On a CPU the
    direct solve (:func:`impute`) is faster.

    Args:
        images: ``(S, H, W, C)``, or one ``(H, W, C)``.
        removed: bool ``(S, H, W)`` (or ``(H, W)`` with one image), ``True`` where a pixel
            is removed; each image keeps at least one pixel.
        tolerance: the relative residual at which the iterations stop, a number in
            (0, 1). With ``1e-5``, the imputations of a 224x224 photo's nine ROAD
            percentiles are within ``6e-5`` of the pixel range of the direct solve's
            (``benchmarks/road.py``), after 400 to 800 iterations. Defaults to ``1e-5``.
        iterations: the most iterations, a positive integer, or ``None`` for
            ``4 * (H + W)`` (the iterations grow with the width of the removed regions).
            Defaults to ``None``.

    Returns:
        float32 ``(S, H, W, C)`` (or ``(H, W, C)``), a new array: the kept pixels as they
        were, the removed ones imputed.

    Raises:
        ValueError: ``images`` is not 3-D or 4-D, or ``removed`` not of its shape
            without the channels; every pixel of an image is removed; ``tolerance`` not
            in (0, 1); ``iterations`` not a positive integer or ``None``.
    """
    images, mask = np.asarray(images, np.float32), np.asarray(removed, bool)
    if images.ndim not in (3, 4) or mask.shape != images.shape[:-1]:
        raise ValueError(
            f"impute_iteratively takes images (S, H, W, C) and removed pixels (S, H, W), or one "
            f"(H, W, C) and (H, W); got images of shape {images.shape} and removed of shape {mask.shape}."
        )
    single = images.ndim == 3
    if single:
        images, mask = images[None], mask[None]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) or not (
        0 < tolerance < 1
    ):
        raise ValueError(f"tolerance must be a number in (0, 1); got {tolerance!r}.")
    height, width, channels = images.shape[1:]
    iterations = 4 * (height + width) if iterations is None else check_positive_int(iterations, "iterations")
    full = mask.reshape(len(mask), -1).all(axis=1)
    if full.any():
        raise ValueError(
            f"impute_iteratively needs at least one kept pixel per image; all {height * width} pixels "
            f"of image {int(np.argmax(full))} are removed."
        )
    solve = _compiled_solver(height, width, channels)
    filled = solve(images, mask.astype(np.float32), np.float32(tolerance), np.int32(iterations))
    filled = backend.current().to_numpy(filled)
    return filled[0] if single else filled


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
         seed: int = 0, workers: int | None = None, solver: str = "auto"):
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

    The imputations take most of the time. ``solver`` chooses how the systems are solved:
    ``"direct"``, a sparse factorisation per image and percentile on the CPU
    (:func:`impute`; a 224x224 image's nine default percentiles take about 0.6 s of one
    CPU core), with ``workers`` threads making a batch's imputations at once (the sparse
    solver runs outside Python's global interpreter lock); ``"iterative"``, conjugate
    gradients in ``keras.ops`` on the Keras backend's device, for all the percentiles of
    about ``batch_size`` images at once (:func:`impute_iteratively`; the same values to
    1e-4 of the pixel range, in float32; ``workers`` is not used); ``"auto"``, the
    iterative solve when Keras places tensors on a GPU or another accelerator, else the
    direct one. The benchmark ``benchmarks/road.py`` times both.

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
            (``os.cpu_count()``); the direct solver's. Defaults to ``None``.
        solver: ``"auto"``, ``"direct"`` or ``"iterative"``, as above. Defaults to
            ``"auto"``.

    Returns:
        float32 array ``(N, len(percentiles))``: the score of image ``n`` with
        ``percentiles[i]`` percent of its pixels removed at ``[n, i]``.

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors};
            ``percentiles`` not in [0, 100); ``order`` unknown; ``noise`` negative or not
            finite; ``seed`` not a non-negative integer; ``workers`` not a positive integer
            or ``None``; ``solver`` unknown.
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
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(map(repr, SOLVERS))}; got {solver!r}.")
    if solver == "auto":
        solver = "iterative" if backend.current().on_accelerator() else "direct"
    images, maps, targets, batch_size = check_inputs(model, docs, heatmaps, targets, preprocess, batch_size)
    count, height, width = maps.shape
    ranked = rank_pixels(maps)
    if order == "lerf":
        ranked = ranked[:, ::-1]
    removed_counts = np.floor(shares * (height * width) / 100).astype(np.int64)

    def removed_pixels(n, i):  # bool (H * W,)
        removed = np.zeros(height * width, bool)
        removed[ranked[n, : removed_counts[i]]] = True
        return removed

    if solver == "direct":

        def imputed(n, steps):  # (len(steps), H * W, C)
            return np.stack([impute(images[n], removed_pixels(n, i).reshape(height, width)) for i in steps]).reshape(
                len(steps), height * width, -1
            )

    else:
        imputed = _imputed_in_groups(images, removed_pixels, len(shares), batch_size)
        workers = 1  # one solve for several images at a time, in this thread

    def perturb(n, steps):
        image = images[n]
        spread = noise * float(image.max() - image.min())
        filled = imputed(n, steps).astype(np.float64)
        for row, i in enumerate(steps):
            if spread > 0:
                removed = removed_pixels(n, i)
                rng = np.random.default_rng((int(seed), int(n), int(i)))
                filled[row, removed] += rng.normal(0.0, spread, (int(removed.sum()), image.shape[-1]))
        return filled.reshape((len(steps),) + image.shape).astype(np.float32)

    return perturbed_scores(
        model, perturb, count, len(shares), targets, preprocess=preprocess, batch_size=batch_size,
        workers=workers,
    )


def _imputed_in_groups(images, removed_pixels, steps, batch_size):
    """``imputed(n, steps)`` for :func:`road`'s iterative solver: every imputation of a group
    of images (about one model batch of them) in one :func:`impute_iteratively` call, made
    when the first of them is asked for; called for the images in order, from one thread."""
    group = max(1, -(-batch_size // steps))
    count, height, width, channels = images.shape
    held = {}

    def imputed(n, wanted):
        if n not in held:
            held.clear()
            members = np.arange(n // group * group, min(n // group * group + group, count))
            removed = np.zeros((group, steps, height * width), bool)  # a short last group: nothing removed
            for row, m in enumerate(members):
                for i in range(steps):
                    removed[row, i] = removed_pixels(m, i)
            sources = np.repeat(images[np.resize(members, group)], steps, axis=0)
            filled = impute_iteratively(sources, removed.reshape(-1, height, width))
            for row, m in enumerate(members):
                held[m] = filled[row * steps : (row + 1) * steps].reshape(steps, height * width, channels)
        return held[n][np.asarray(wanted)]

    return imputed
