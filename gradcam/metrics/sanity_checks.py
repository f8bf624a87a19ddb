"""The repaired model randomisation tests of Hedström et al., "Sanity Checks Revisited: An
Exploration to Repair the Model Parameter Randomisation Test" (2024): Smooth MPRT and
Efficient MPRT.

The cascading test (:func:`~gradcam.metrics.randomisation`) compares a map with the maps
of ever more randomised copies of the model. Two things blur its verdict: noise in the
maps (a gradient map of a random model is noisy, and noise alone lowers a correlation) and
the choice of a similarity measure. Smooth MPRT averages each map over noisy copies of the
input before comparing; Efficient MPRT compares no pair of maps at all, and measures
instead how much more complex (higher entropy) a map becomes when the whole model is
randomised. Both run on a copy of the model: the user's model keeps its weights.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradcam.checks import check_positive_int, check_seed
from gradcam.metrics.model_randomisation import RandomisationResult, cascade, spearman


class EfficientMPRTResult(NamedTuple):
    """What :func:`efficient_mprt` measures, for ``N`` images.

    Attributes:
        rise: float32 ``(N,)``: the relative rise in the map's complexity,
            ``(H_random - H) / H``; NaN where the trained model's map has no complexity
            (``H = 0``: a constant map).
        complexity: float32 ``(N,)``: ``H``, the trained model's map's discrete entropy.
        randomised_complexity: float32 ``(N,)``: ``H_random``, the fully randomised
            model's.
        layers: the layers randomised, top first.
        heatmaps: float32 ``(N, 2, h, w)``: the trained model's map, then the fully
            randomised model's.
        targets: int32 ``(N,)``: the class explained in each image.
    """

    rise: np.ndarray
    complexity: np.ndarray
    randomised_complexity: np.ndarray
    layers: tuple[str, ...]
    heatmaps: np.ndarray
    targets: np.ndarray


def discrete_entropy(maps, bins: int = 100) -> np.ndarray:
    """The entropy of each map's histogram: how spread its values are.

    The values of map ``n`` are counted in ``bins`` equal bins from its minimum to its
    maximum (``numpy.histogram(map, bins)``: a constant map's values all fall in one bin);
    with ``p`` the bins' shares of the pixels, the entropy is ``-sum(p log p)`` in nats
    over the bins with ``p > 0`` (the complexity measure of Efficient MPRT). A map of
    four distinct values in four bins has ``log 4``; a constant map has 0.

    Args:
        maps: ``(N, h, w)``.
        bins: the number of bins. Defaults to ``100``.

    Returns:
        float32 ``(N,)``.

    Raises:
        ValueError: ``bins`` is not a positive integer.
    """
    bins = check_positive_int(bins, "bins")
    maps = np.asarray(maps, np.float64)
    entropies = []
    for values in maps.reshape(len(maps), -1):
        counts, _ = np.histogram(values, bins=bins)
        shares = counts[counts > 0] / counts.sum()
        entropies.append(-(shares * np.log(shares)).sum() + 0.0)
    return np.asarray(entropies, np.float32)


def complexity_rise(maps, randomised_maps, bins: int = 100) -> tuple:
    """Efficient MPRT's relative rise in complexity, ``(H_random - H) / H``, per image.

    Args:
        maps: the trained model's maps ``(N, h, w)``.
        randomised_maps: the randomised model's maps, the same shape.
        bins: the histograms' number of bins. Defaults to ``100``.

    Returns:
        ``(rise, H, H_random)``, float32 arrays ``(N,)``; the rise is NaN where ``H = 0``.
    """
    before, after = discrete_entropy(maps, bins), discrete_entropy(randomised_maps, bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        rise = np.where(before > 0, (after - before) / np.where(before > 0, before, 1), np.nan)
    return rise.astype(np.float32), before, after


def smoother(samples: int, noise: float, seed: int):
    """Smooth MPRT's maps: an ``explain`` for :func:`~gradcam.metrics.model_randomisation.cascade`.

    The returned ``explain(engine, batch, classes, batch_size)`` averages the engine's
    maps over ``samples`` copies of the images: the images themselves, then
    ``samples - 1`` copies with Gaussian noise of standard deviation
    ``noise * (max - min)`` of each image's values, drawn once, on the first call, from
    ``numpy.random.default_rng(seed)`` as ``standard_normal((samples - 1, *batch.shape))``;
    later calls reuse the same copies.

    Args:
        samples: the number of copies, the images included.
        noise: the noise's standard deviation as a fraction of each image's range.
        seed: the noise's seed.

    Returns:
        The ``explain`` function.

    Raises:
        ValueError: ``samples`` is not a positive integer; ``noise`` is negative or not
            finite; ``seed`` is not a non-negative integer.
    """
    samples = check_positive_int(samples, "samples")
    noise = _check_noise(noise)
    rng = np.random.default_rng(check_seed(seed))
    copies = {}

    def smoothed(engine, batch, classes, batch_size):
        if "noisy" not in copies:
            images = batch.astype(np.float32)
            spread = (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))[:, None, None, None]
            draws = rng.standard_normal((samples - 1, *images.shape), dtype=np.float32)
            copies["noisy"] = [images] + [images + noise * spread * draw for draw in draws]
        total = sum(engine.heatmaps(copy, classes, batch_size)[:, 0].astype(np.float64) for copy in copies["noisy"])
        return (total / samples).astype(np.float32)

    return smoothed


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not 0 <= noise < np.inf:
        raise ValueError(f"noise must be a non-negative number (a fraction of each image's range); got {noise!r}.")
    return float(noise)


def smooth_mprt(model, docs, targets=None, *, method: str = "gradcam", layer=None, preprocess=None,
                score: str = "auto", samples: int = 50, noise: float = 0.1, max_steps: int | None = None,
                every_step: bool = True, seed: int = 0, batch_size: int = 32) -> RandomisationResult:
    """Smooth MPRT (Hedström et al., 2024): the cascading randomisation test of maps
    averaged over noisy copies of each image.

    Each map is the mean of the method's maps of ``samples`` copies of the image: the
    image itself, and ``samples - 1`` copies with Gaussian noise of standard deviation
    ``noise * (max - min)`` of that image's values (in the caller's image space, before
    ``preprocess``), drawn from ``numpy.random.default_rng(seed)``; the same noisy
    copies serve the trained model and every randomised one. The model is then
    randomised as by :func:`~gradcam.metrics.randomisation` (a copy, from the top layer
    down, each layer's weights from its own initialisers seeded from ``seed``), and each
    smoothed map compared with the trained model's smoothed map by Spearman's rank
    correlation. Quantus 0.6 takes ``samples=50, noise=0.1`` (the paper's ImageNet
    setting). Lower is better: a map that depends on the model loses its correlation.

    Args:
        model: a built Functional or Sequential Keras model.
        docs: images ``(N, H, W, C)`` or one ``(H, W, C)``: raw when ``preprocess`` is
            given, else ready for the model.
        targets: ``None`` (each image's top prediction), one class for all images or
            one per image. Defaults to ``None``.
        method: a name of :data:`gradcam.METHODS`. Defaults to ``"gradcam"``.
        layer: the layer to explain, as for :func:`gradcam.explain_prediction`.
            Defaults to ``None``.
        preprocess: the model's preprocessing. Defaults to ``None``.
        score: the explained score (``"auto"``, ``"logit"`` or ``"output"``).
            Defaults to ``"auto"``.
        samples: the number of copies each map is averaged over (the image itself
            included). Defaults to ``50``.
        noise: the noise's standard deviation, as a fraction of each image's range of
            values; ``0`` gives the plain test. Defaults to ``0.1``.
        max_steps: randomise only the top ``max_steps`` layers with weights; ``None``
            randomises them all. Defaults to ``None``.
        every_step: compare after every step; ``False`` compares only the last step's
            (with ``max_steps=None``, the fully randomised model's) maps. Defaults to
            ``True``.
        seed: seeds the noise and the random weights. Defaults to ``0``.
        batch_size: how many images go through the model at once. Defaults to ``32``.

    Returns:
        A :class:`~gradcam.metrics.RandomisationResult` of the smoothed maps:
        correlations ``(N, S)`` (``S = 1`` with ``every_step=False``), the layers
        randomised, the smoothed maps ``(N, S + 1, h, w)`` and the classes.

    Raises:
        TypeError: as :func:`~gradcam.metrics.randomisation`.
        ValueError: as :func:`~gradcam.metrics.randomisation`; ``samples`` is not a
            positive integer; ``noise`` is negative or not finite.
    """
    layers, heatmaps, explained = cascade(
        model, docs, targets, method=method, layer=layer, preprocess=preprocess, score=score, max_steps=max_steps,
        seed=seed, batch_size=batch_size, explain=smoother(samples, noise, seed),
        record=None if every_step else (-1,))
    correlations = np.stack([spearman(heatmaps[:, 0], heatmaps[:, s]) for s in range(1, heatmaps.shape[1])], axis=1)
    return RandomisationResult(correlations=correlations, layers=layers, heatmaps=heatmaps, targets=explained)


def efficient_mprt(model, docs, targets=None, *, method: str = "gradcam", layer=None, preprocess=None,
                   score: str = "auto", bins: int = 100, seed: int = 0, batch_size: int = 32) -> EfficientMPRTResult:
    """Efficient MPRT (Hedström et al., 2024): how much more complex a map becomes when
    the whole model is randomised.

    The maps of the trained model and of a copy whose layers with weights have all been
    randomised (as by :func:`~gradcam.metrics.randomisation`, from the top down, seeded
    from ``seed``) are compared by their complexity: the :func:`discrete_entropy` of
    their histogram of ``bins`` bins, ``H`` and ``H_random``. The result is the relative
    rise ``(H_random - H) / H`` (Quantus 0.6's ``EfficientMPRT`` with its defaults: no
    normalisation, 100 bins). Higher is better: a map that explains the model turns into
    noise, of high entropy, when the model is random; a map that shows the image keeps
    its structure.

    Args:
        model: a built Functional or Sequential Keras model.
        docs: images ``(N, H, W, C)`` or one ``(H, W, C)``.
        targets: ``None`` (each image's top prediction), one class for all images or
            one per image. Defaults to ``None``.
        method: a name of :data:`gradcam.METHODS`. Defaults to ``"gradcam"``.
        layer: the layer to explain. Defaults to ``None``.
        preprocess: the model's preprocessing. Defaults to ``None``.
        score: the explained score. Defaults to ``"auto"``.
        bins: the histogram's number of bins. Defaults to ``100``.
        seed: seeds the random weights. Defaults to ``0``.
        batch_size: how many images go through the model at once. Defaults to ``32``.

    Returns:
        An :class:`EfficientMPRTResult`.

    Raises:
        TypeError: as :func:`~gradcam.metrics.randomisation`.
        ValueError: as :func:`~gradcam.metrics.randomisation`; ``bins`` is not a
            positive integer.
    """
    bins = check_positive_int(bins, "bins")
    layers, heatmaps, explained = cascade(
        model, docs, targets, method=method, layer=layer, preprocess=preprocess, score=score, seed=seed,
        batch_size=batch_size, record=(-1,))
    rise, before, after = complexity_rise(heatmaps[:, 0], heatmaps[:, 1], bins)
    return EfficientMPRTResult(
        rise=rise, complexity=before, randomised_complexity=after, layers=layers, heatmaps=heatmaps,
        targets=explained)
