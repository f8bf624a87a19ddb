"""Deletion and insertion (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation
of Black-box Models", arXiv 1806.07421): the score as a map's pixels go, or come back, in
rank order."""

from __future__ import annotations

import numpy as np

from gradcam.checks import check_positive_int
from gradcam.metrics.maps import rank_pixels
from gradcam.metrics.scoring import check_inputs, curve_area, metric_docstring, scores_with_known

#: RISE's blur for insertion: a Gaussian of this kernel size and sigma.
BLUR_KERNEL_SIZE = 11
BLUR_SIGMA = 5.0


def blur(image) -> np.ndarray:
    """RISE's blurred image: a Gaussian of kernel size 11 and sigma 5, reflect-padded.

    Each channel is convolved, separably, with the normalised kernel
    ``g(x) = exp(-x**2 / (2 * 5**2))`` for ``x = -5..5``; the image is extended by
    reflection about its edge pixels (``numpy.pad(..., mode="reflect")``, which reflects
    again where an image is narrower than the kernel's reach).

    Args:
        image: ``(H, W, C)``.

    Returns:
        float32 ``(H, W, C)``, a new array.
    """
    offsets = np.arange(BLUR_KERNEL_SIZE) - BLUR_KERNEL_SIZE // 2
    kernel = np.exp(-(offsets**2) / (2 * BLUR_SIGMA**2))
    kernel /= kernel.sum()
    reach = BLUR_KERNEL_SIZE // 2
    height, width = image.shape[:2]
    padded = np.pad(np.asarray(image, np.float64), ((reach, reach), (reach, reach), (0, 0)), mode="reflect")
    rows = sum(k * padded[i : i + height] for i, k in enumerate(kernel))
    return sum(k * rows[:, i : i + width] for i, k in enumerate(kernel)).astype(np.float32)


def _check_baseline(baseline, shape) -> np.ndarray:
    try:
        value = np.asarray(baseline, np.float32)
        np.broadcast_to(value, shape)
    except (TypeError, ValueError):
        value = None
    if value is None or not np.isfinite(value).all():
        raise ValueError(
            f"baseline must be a finite number, or an array that broadcasts to one image "
            f"{shape} (height, width, channels); got {baseline!r}."
        )
    return value


def _original(images, n):
    """Image ``n`` as it is, in float32: where insertion ends and deletion starts."""
    return images[n].astype(np.float32)


def _curves(model, docs, heatmaps, targets, preprocess, batch_size, steps, start, end, known_scores):
    """Scores of ``where(rank < k_i, end(n), start(n))`` for ``k_i = round(i H W / steps)``."""
    steps = check_positive_int(steps, "steps")
    images, maps, targets, batch_size = check_inputs(model, docs, heatmaps, targets, preprocess, batch_size)
    count, height, width = maps.shape
    # position[n, y, x]: the rank of pixel (y, x) in map n (0 = the most relevant).
    ranked = rank_pixels(maps)
    position = np.empty_like(ranked)
    np.put_along_axis(position, ranked, np.arange(height * width), axis=1)
    position = position.reshape(count, height, width, 1)
    changed = np.round(np.arange(steps + 1) * (height * width) / steps).astype(np.int64)
    cache = {}

    def perturb(n, indices):
        if cache.get("n") != n:
            cache.update(n=n, start=start(images, n), end=end(images, n))
        chosen = position[n][None] < changed[indices][:, None, None, None]
        return np.where(chosen, cache["end"], cache["start"]).astype(np.float32, copy=False)

    curves = scores_with_known(
        model, perturb, count, steps + 1, targets, known_scores, preprocess=preprocess, batch_size=batch_size
    )
    return curve_area(curves), curves


def _result(area, curves, return_curves):
    return (area, curves) if return_curves else area


@metric_docstring("perturbed images")
def deletion(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32, steps: int = 100,
             baseline=0.0, return_curves: bool = False, known_scores=None):
    """Deletion: the target's score as the map's pixels are removed, most relevant first.

    For ``i = 0..steps``, the first ``k_i = round(i * H * W / steps)`` pixels in the map's
    ranking (:func:`~gradcam.metrics.maps.rank_pixels` of the map upsampled to the image:
    descending value, ties by row-major index) are set to ``baseline`` in every channel;
    ``round`` is Python's (halves to even). The curve is the target's score on each of the
    ``steps + 1`` images (``c[0]`` on the image itself, ``c[steps]`` on the all-baseline
    image) and the result its area by the trapezoid rule,
    ``(c[0] / 2 + c[1] + ... + c[steps - 1] + c[steps] / 2) / steps``. A faithful map
    makes the score fall fast: lower is better.

    The images are perturbed in the caller's image space, then ``preprocess`` is applied,
    ``batch_size`` perturbed images at a time (never all ``N * (steps + 1)`` at once). The
    score is the target's output: its probability when the model ends in a softmax.

    Args:
        {args}
        steps: the number of deletion steps; the model runs ``steps + 1`` times per
            image. Defaults to ``100``.
        baseline: the value removed pixels take: a number, or an array that broadcasts to
            one image ``(H, W, C)`` (e.g. a colour per channel). Defaults to ``0.0``.
        return_curves: also return the curves. Defaults to ``False``.
        known_scores: curve points already measured, ``{{i: scores (N,)}}``, that are not
            measured again: ``c[0]`` is the score on the image itself and ``c[steps]`` on
            the all-baseline image, whatever the map, so a caller that scores several
            maps of the same images passes them once measured. Defaults to ``None``.

    Returns:
        float32 array ``(N,)``, the area under each image's curve; with
        ``return_curves=True``, ``(area, curves)`` with float32 curves ``(N, steps + 1)``.

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors};
            ``steps`` is not a positive integer; ``baseline`` is not finite or does not
            broadcast to an image; ``known_scores`` with an index out of ``0..steps`` or
            not one finite score per image.

    Example:
        >>> cam = gradcam.GradCAM(model, preprocess=preprocess_input)
        >>> maps = cam.heatmaps(docs, targets=[281])[:, 0]
        >>> deletion(model, docs, maps, 281, preprocess=preprocess_input)  # doctest: +SKIP
        array([0.12, ...], dtype=float32)
    """

    def removed(images, n):
        return np.broadcast_to(_check_baseline(baseline, images.shape[1:]), images.shape[1:])

    area, curves = _curves(model, docs, heatmaps, targets, preprocess, batch_size, steps, _original, removed,
                          known_scores)
    return _result(area, curves, return_curves)


@metric_docstring("perturbed images")
def insertion(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32, steps: int = 100,
              return_curves: bool = False, known_scores=None):
    """Insertion: the target's score as the map's pixels come back into a blurred image.

    The start is the image blurred as RISE blurs it (:func:`blur`: a Gaussian of kernel
    size 11 and sigma 5, reflect-padded, per channel). For ``i = 0..steps``, the first
    ``k_i = round(i * H * W / steps)`` pixels in the map's ranking (as for
    :func:`deletion`) take the original image's values in every channel; the curve is the
    target's score on each of the ``steps + 1`` images (``c[0]`` on the blurred image,
    ``c[steps]`` on the image itself) and the result its area by the trapezoid rule,
    ``(c[0] / 2 + c[1] + ... + c[steps - 1] + c[steps] / 2) / steps``. A faithful map
    makes the score rise fast: higher is better.

    Args:
        {args}
        steps: the number of insertion steps; the model runs ``steps + 1`` times per
            image. Defaults to ``100``.
        return_curves: also return the curves. Defaults to ``False``.
        known_scores: curve points already measured, ``{{i: scores (N,)}}``, that are not
            measured again: ``c[0]`` is the score on the blurred image and ``c[steps]`` on
            the image itself, whatever the map. Defaults to ``None``.

    Returns:
        float32 array ``(N,)``, the area under each image's curve; with
        ``return_curves=True``, ``(area, curves)`` with float32 curves ``(N, steps + 1)``.

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors};
            ``steps`` is not a positive integer; ``known_scores`` with an index out of
            ``0..steps`` or not one finite score per image.
    """

    def blurred(images, n):
        return blur(images[n])

    area, curves = _curves(model, docs, heatmaps, targets, preprocess, batch_size, steps, blurred, _original,
                          known_scores)
    return _result(area, curves, return_curves)
