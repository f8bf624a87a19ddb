"""ROAD, RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", arXiv 2202.00449): the score once a share of the map's pixels is
removed and filled in by noisy linear imputation, which gives the model no hint of where
the removed pixels were."""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from gradcam.metrics.maps import rank_pixels
from gradcam.metrics.scoring import check_inputs, perturbed_scores

ORDERS = ("morf", "lerf")
#: The paper's weights of a removed pixel's neighbours: 1/6 for the four that share an
#: edge, 1/12 for the four diagonal ones, as ``(row offset, column offset, weight)``.
NEIGHBOURS = tuple(
    (dy, dx, 1 / 12 if dy and dx else 1 / 6) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx
)


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
    """
    height, width, channels = image.shape
    filled = np.array(image, np.float64).reshape(-1, channels)
    unknown = np.flatnonzero(removed)
    if len(unknown) == 0:
        return filled.reshape(image.shape)
    variable = np.full(height * width, -1, np.int64)
    variable[unknown] = np.arange(len(unknown))
    rows, columns = np.divmod(unknown, width)
    total = np.zeros(len(unknown))
    right = np.zeros((len(unknown), channels))
    entries = []
    for dy, dx, weight in NEIGHBOURS:
        y, x = rows + dy, columns + dx
        inside = np.flatnonzero((y >= 0) & (y < height) & (x >= 0) & (x < width))
        neighbour = y[inside] * width + x[inside]
        total[inside] += weight
        linked = variable[neighbour]
        free = linked >= 0
        entries.append((inside[free], linked[free]))
        right[inside[~free]] += weight * filled[neighbour[~free]]
    equations = np.concatenate([e[0] for e in entries] + [np.arange(len(unknown))])
    variables = np.concatenate([e[1] for e in entries] + [np.arange(len(unknown))])
    off_diagonal = [np.full(len(e[0]), -weight) for e, (_, _, weight) in zip(entries, NEIGHBOURS)]
    coefficients = np.concatenate(off_diagonal + [total])
    size = (len(unknown), len(unknown))
    system = scipy.sparse.csc_matrix((coefficients, (equations, variables)), shape=size)
    # The system is symmetric: a minimum-degree ordering of A + A^T fills in about half as
    # much as spsolve's default column ordering (measured: 2x faster on 224x224 images).
    factors = scipy.sparse.linalg.splu(system, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
    solution = factors.solve(right)
    filled[unknown] = solution.reshape(len(unknown), channels)
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


def road(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32,
         percentiles=(10, 20, 30, 40, 50, 60, 70, 80, 90), order: str = "morf", noise: float = 0.01,
         seed: int = 0):
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
    result depends on neither the batch size nor the other images.

    Args:
        model: a Keras classifier with one image input and one ``(batch, classes)`` output.
        docs: images ``(N, H, W, C)`` (or one ``(H, W, C)``), as the caller has them
            (raw when ``preprocess`` is given); never modified.
        heatmaps: maps ``(N, h, w)``, one per image, at any resolution; upsampled
            bilinearly to ``(H, W)``. Never modified.
        targets: the class scored in each image: one index or name for all images, or one
            per image.
        preprocess: the model's preprocessing, applied to each batch of imputed images,
            or ``None`` when ``docs`` are ready for the model. Defaults to ``None``.
        batch_size: how many imputed images go through the model at once.
            Defaults to ``32``.
        percentiles: the shares of pixels removed, in percent, each in [0, 100).
            Defaults to ``(10, 20, 30, 40, 50, 60, 70, 80, 90)``.
        order: ``"morf"`` (remove the most relevant pixels) or ``"lerf"`` (the least
            relevant). Defaults to ``"morf"``.
        noise: the imputation noise's standard deviation, as a fraction of each image's
            value range; ``0`` for none. Defaults to ``0.01``.
        seed: the seed of the noise. Defaults to ``0``.

    Returns:
        float32 array ``(N, len(percentiles))``: the score of image ``n`` with
        ``percentiles[i]`` percent of its pixels removed at ``[n, i]``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable;
            ``docs`` or ``heatmaps`` is not an array of numbers; a target is neither an
            int nor a str.
        ValueError: wrong shapes (not one map and one target per image); NaN or infinite
            values in ``docs`` or ``heatmaps``; a target out of range; ``batch_size`` is
            not a positive integer; ``percentiles`` not in [0, 100); ``order`` unknown;
            ``noise`` negative or not finite; ``seed`` not a non-negative integer;
            ``preprocess`` changes the batch size or the images do not fit the model.
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
        model, perturb, count, len(shares), targets, preprocess=preprocess, batch_size=batch_size
    )
