"""The model randomisation test: does a map change when the model's weights do?

Adebayo et al., "Sanity checks for saliency maps" (arXiv 1810.03292), cascading
randomisation: the weights of the model are replaced by random ones layer by layer, from
the top (the classifier) down, each step keeping the layers randomised before it; after
each step the map is computed again and compared with the trained model's map by Spearman
rank correlation. A map that depends on what the model learned loses its correlation
quickly; one that stays correlated shows the image (its edges, say) more than the model.

The test runs on a copy of the model: the user's model keeps its weights.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from gradcam.layers import find_layer, iter_layers
from gradcam.methods.factory import build_engine
from gradcam.methods.registry import check_method_name
from gradcam.model_input import checked_batch
from gradcam.checks import check_positive_int, check_seed
from gradcam.metrics.scoring import check_targets


class RandomisationResult(NamedTuple):
    """What :func:`randomisation` measures, for ``N`` images and ``S`` cascade steps.

    Attributes:
        correlations: float32 ``(N, S)``: Spearman's rank correlation between the trained
            model's map of each image and its map after each step; NaN where either map is
            constant (an all-zero map has no ranking).
        layers: the ``S`` layers randomised, as paths from the outer model
            (``"outer/inner"`` inside nested models), in the order of the steps: step
            ``s`` has randomised ``layers[: s + 1]``.
        heatmaps: float32 ``(N, S + 1, h, w)`` in [0, 1]: the trained model's map
            (index 0), then the map after each step.
        targets: int32 ``(N,)``: the class explained in each image.
    """

    correlations: np.ndarray
    layers: tuple[str, ...]
    heatmaps: np.ndarray
    targets: np.ndarray


def average_ranks(values) -> np.ndarray:
    """The ranks of each row's values, 1 for the smallest; tied values share their
    average rank (``[5, 1, 5, 3]`` -> ``[3.5, 1, 3.5, 2]``).

    Args:
        values: array ``(N, P)``.

    Returns:
        float64 array ``(N, P)``.
    """
    values = np.asarray(values)
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    size = values.shape[1]
    position = np.broadcast_to(np.arange(size), values.shape)
    starts = np.ones(values.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(values.shape, bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, size - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(values.shape, np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def spearman(a, b) -> np.ndarray:
    """Spearman's rank correlation between the rows of ``a`` and ``b``: Pearson's
    correlation of their :func:`average_ranks`.

    Args:
        a: array ``(N, ...)``; each row is flattened.
        b: array of the same shape as ``a``.

    Returns:
        float32 ``(N,)`` in [-1, 1]; NaN where a row of ``a`` or ``b`` is constant.

    Raises:
        ValueError: ``a`` and ``b`` have different shapes.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Cannot correlate arrays of shapes {a.shape} and {b.shape}; expected equal shapes.")
    ranks_a = average_ranks(a.reshape(len(a), -1))
    ranks_b = average_ranks(b.reshape(len(b), -1))
    ranks_a -= ranks_a.mean(axis=1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=1, keepdims=True)
    norms = np.sqrt((ranks_a**2).sum(axis=1) * (ranks_b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (ranks_a * ranks_b).sum(axis=1) / norms
    return np.where(norms > 0, np.clip(correlation, -1.0, 1.0), np.nan).astype(np.float32)


def ssim(a, b, *, window: int = 7, data_range: float = 1.0) -> np.ndarray:
    """The structural similarity index (SSIM) of each pair of maps (Wang et al., "Image
    quality assessment: from error visibility to structural similarity", 2004).

    For every ``w x w`` window that fits in the map (``w = min(window, h, w_map)``), with
    the windows' means ``mu``, sample variances ``s**2`` and sample covariance ``s_ab``
    (divided by ``w * w - 1``; the population ones for a single pixel),
    ``SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a**2 + mu_b**2 + C1)(s_a**2 + s_b**2 + C2))``
    with ``C1 = (0.01 L)**2`` and ``C2 = (0.03 L)**2``, ``L = data_range``; the result is
    the mean over the windows. This is scikit-image's ``structural_similarity`` with a
    uniform window of odd size and ``use_sample_covariance=True``; a map no larger than
    the window is compared as one window.

    Args:
        a: maps ``(N, h, w)``.
        b: maps of the same shape.
        window: the window's side. Defaults to ``7``.
        data_range: the maps' range of values (maps in [0, 1]: ``1``). Defaults to ``1.0``.

    Returns:
        float32 ``(N,)``, at most 1 (identical maps), near 0 for unrelated ones.

    Raises:
        ValueError: ``a`` and ``b`` of different shapes, or not ``(N, h, w)``; ``window``
            not a positive integer.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"Expected two stacks of maps (N, h, w) of one shape; got shapes {a.shape} and {b.shape}.")
    window = check_positive_int(window, "window")
    side_h, side_w = min(window, a.shape[1]), min(window, a.shape[2])
    size = side_h * side_w

    def window_means(x):  # the mean of every full window: (N, h - side_h + 1, w - side_w + 1)
        windows = np.lib.stride_tricks.sliding_window_view(x, (side_h, side_w), axis=(1, 2))
        return windows.mean(axis=(-2, -1))

    mu_a, mu_b = window_means(a), window_means(b)
    correction = size / (size - 1) if size > 1 else 1.0
    var_a = (window_means(a * a) - mu_a**2) * correction
    var_b = (window_means(b * b) - mu_b**2) * correction
    cov = (window_means(a * b) - mu_a * mu_b) * correction
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.mean(axis=(1, 2)).astype(np.float32)


def _copy(model):
    """A Functional or Sequential copy of ``model`` with its weights."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model; got {type(model).__name__}.")
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"randomisation copies the model, and model {model.name!r} has no symbolic inputs "
            "(a subclassed model, or one not built): use a built Functional or Sequential model."
        )
    try:
        copy = keras.models.clone_model(model)
    except Exception as error:  # clone_model refuses models it cannot rebuild
        raise ValueError(
            f"randomisation needs a copy of model {model.name!r}, and keras.models.clone_model "
            f"could not make one ({type(error).__name__}: {error}); use a Functional or "
            "Sequential model."
        ) from error
    copy.set_weights(model.get_weights())
    return copy


def _weighted_layers(model) -> list:
    """The layers with weights (not nested models), top first: ``[(path, layer)]``."""
    found = [
        (ref.path, ref.layer)
        for ref in iter_layers(model)
        if not isinstance(ref.layer, keras.Model) and ref.layer.weights
    ]
    return found[::-1]


def _random_weights(path: str, layer, seeds: np.random.SeedSequence) -> list[np.ndarray]:
    """New weights for ``layer``: a fresh layer of its configuration, built with its
    initialisers, each random one seeded from ``seeds``."""
    config = layer.get_config()
    seeded = [
        value["config"]
        for key, value in config.items()
        if key.endswith("_initializer") and isinstance(value, dict) and "seed" in value.get("config", {})
    ]
    for initializer, value in zip(seeded, seeds.generate_state(len(seeded))):
        initializer["seed"] = int(value % (2**31 - 1))
    fresh = type(layer).from_config(config)
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Cannot randomise layer {path!r}: its input shape is unknown ({error}); use a "
            "Functional or Sequential model whose layers are each called once."
        ) from error
    fresh.build(shape)
    return fresh.get_weights()


class RandomisableCopy:
    """A copy of a model whose layers get random weights from the top down, and get their
    trained weights back: one copy serves several cascades (:func:`cascade`'s ``copy``),
    with one engine per method and each layer's random weights made once per seed.

    Args:
        model: a built Functional or Sequential Keras model (left unchanged).

    Attributes:
        model: the copy.
        steps: the layers with weights, top first: ``[(path, layer)]``.

    Raises:
        TypeError, ValueError: as :func:`randomisation` for a model it cannot copy.
    """

    def __init__(self, model):
        self.model = _copy(model)
        self.steps = _weighted_layers(self.model)
        self._trained = self.model.get_weights()
        self._random: dict[tuple[int, int], list[np.ndarray]] = {}
        self._engines: dict[tuple, object] = {}

    def engine(self, method: str, **options):
        """The copy's engine of ``method`` (:func:`~gradcam.methods.build_engine`'s
        ``options``), built once."""
        key = (method, *sorted(options.items(), key=lambda item: item[0]))
        if key not in self._engines:
            self._engines[key] = build_engine(self.model, method, **options)
        return self._engines[key]

    def reset(self) -> None:
        """Give the copy its trained weights back."""
        self.model.set_weights(self._trained)

    def randomise(self, step: int, seed: int) -> None:
        """Give layer ``step`` (0 for the top one) its random weights, seeded from ``(seed, step)``."""
        path, layer = self.steps[step]
        if (step, seed) not in self._random:
            self._random[step, seed] = _random_weights(path, layer, np.random.SeedSequence([seed, step]))
        layer.set_weights(self._random[step, seed])


def cascade(model, docs, targets=None, *, method: str = "gradcam", layer=None, preprocess=None,
            score: str = "auto", max_steps: int | None = None, seed: int = 0, batch_size: int = 32,
            explain=None, record=None, copy: RandomisableCopy | None = None):
    """The maps of a copy of ``model`` as its layers are randomised from the top down.

    The shared part of :func:`randomisation` and its repaired variants
    (:mod:`gradcam.metrics.sanity_checks`): the model is copied, the classes to explain are
    resolved on the trained copy, then its layers with weights get random weights one at a
    time from the output towards the input (layer ``s`` seeded from ``(seed, s)``), and
    the maps are computed again after each step (or only after the steps in ``record``).

    Args:
        model, docs, targets, method, layer, preprocess, score, max_steps, seed, batch_size:
            as for :func:`randomisation`.
        explain: ``explain(engine, batch, classes, batch_size)`` returns the maps
            ``(N, h, w)`` of the images ``batch`` for the int32 ``classes (N, 1)``;
            ``None`` takes the engine's maps (``engine.heatmaps(...)[:, 0]``). Defaults to
            ``None``.
        record: the steps (0 for the first) after which the maps are computed, ``-1``
            for the last; ``None`` for every step. Steps past the last are ignored. The
            layers are randomised down to ``max_steps`` whatever is recorded. Defaults to
            ``None``.
        copy: a :class:`RandomisableCopy` of ``model`` to randomise (its trained weights
            are given back first), so that several cascades share one copy, its engines
            and its random weights; ``None`` makes one. Defaults to ``None``.

    Returns:
        ``(layers, heatmaps, targets)``: the paths of the ``S`` layers randomised, in
        order; float32 maps ``(N, 1 + R, h, w)`` after the ``R`` recorded steps in order
        (``R = S`` when ``record`` is ``None``), the trained model's first; the int32
        classes ``(N,)``.

    Raises:
        As :func:`randomisation`.
    """
    check_method_name(method)
    if max_steps is not None:
        max_steps = check_positive_int(max_steps, "max_steps")
    seed = check_seed(seed)
    if copy is None:
        copy = RandomisableCopy(model)
    else:
        copy.reset()
    path = find_layer(model, layer).name
    engine = copy.engine(method, layer=path, score=score, preprocess=preprocess)
    batch = checked_batch(docs, name="docs")
    if targets is None:  # each image's top class, from the trained copy
        original = engine.compute(batch, None, batch_size)
        explained, first = original.targets[:, :1], original.heatmaps[:, 0]
    else:
        explained, first = check_targets(targets, engine.classes.num_classes, len(batch))[:, np.newaxis], None
    if explain is None:
        def explain(engine, batch, classes, batch_size):
            return engine.heatmaps(batch, classes, batch_size)[:, 0]
    else:
        first = None  # the caller's own maps
    maps = [explain(engine, batch, explained, batch_size) if first is None else first]
    engine.warn_empty = False  # randomised weights often give all-zero maps (NaN correlations)

    steps = copy.steps[:max_steps]
    if not steps:
        raise ValueError(f"Model {model.name!r} has no layer with weights to randomise.")
    recorded = None if record is None else {len(steps) + s if s < 0 else s for s in record}
    for step in range(len(steps)):
        copy.randomise(step, seed)
        if recorded is None or step in recorded:
            maps.append(explain(engine, batch, explained, batch_size))
    heatmaps = np.stack(maps, axis=1).astype(np.float32)
    return tuple(layer_path for layer_path, _ in steps), heatmaps, explained[:, 0].astype(np.int32)


def randomisation(
    model,
    docs,
    targets=None,
    *,
    method: str = "gradcam",
    layer=None,
    preprocess=None,
    score: str = "auto",
    max_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
) -> RandomisationResult:
    """Cascading model randomisation (Adebayo et al., arXiv 1810.03292): how the maps
    change as the model's weights are replaced by random ones, from the top layer down.

    The model is copied (``keras.models.clone_model`` and its weights: ``model`` itself
    is only read). The maps of the copy are computed, then its layers with weights are
    re-initialised one at a time, from the output towards the input, each step keeping
    the earlier steps' random weights; after each step the maps are computed again, for
    the same classes, at the same layer. A layer gets new weights from its own
    initialisers (``kernel_initializer``, ``bias_initializer``, a batch normalisation's
    ``gamma_initializer`` and moving-statistics initialisers, ...), seeded from ``seed``:
    the same ``seed`` gives the same random weights and the same result.

    Each randomised map is compared with the trained model's map by Spearman's rank
    correlation (tied values get their average rank), at the layer's resolution. A
    constant map (an all-zero one: random weights often leave nothing positive) has no
    ranking: its correlation is NaN, and :class:`~gradcam.EmptyMapWarning` is not issued
    for the randomised models' maps.

    Args:
        model: a built Functional or Sequential Keras model (nested models inside are
            randomised too, layer by layer).
        docs: images ``(N, H, W, C)`` or one ``(H, W, C)``, as for the method's engine:
            raw when ``preprocess`` is given, else ready for the model.
        targets: the class explained in each image: ``None`` (each image's top
            prediction by the trained model), one class index or name for all images, or
            a list of one per image. Defaults to ``None``.
        method: a name of :data:`gradcam.METHODS`. Defaults to ``"gradcam"``.
        layer: the layer to explain, as for :func:`gradcam.explain_prediction`: ``None``
            (automatic), a name, an ``"outer/inner"`` path, an index or a layer of
            ``model``. Defaults to ``None``.
        preprocess: the model's preprocessing, applied to a copy of ``docs``. Defaults
            to ``None``.
        score: the explained score, as for the method's engine: ``"auto"``, ``"logit"``
            or ``"output"``. Defaults to ``"auto"``.
        max_steps: randomise only the top ``max_steps`` layers with weights; ``None``
            randomises them all. Defaults to ``None``.
        seed: a non-negative integer from which each layer's initialiser seeds are
            drawn. Defaults to ``0``.
        batch_size: how many images go through the model at once. Defaults to ``32``.

    Returns:
        A :class:`RandomisationResult`: correlations ``(N, S)``, the layers of the ``S``
        steps, the maps and the explained classes.

    Raises:
        TypeError: ``model`` is not a Keras model; ``docs`` is not a numeric array;
            ``targets`` or ``preprocess`` of another type.
        ValueError: an unknown ``method``; a model that cannot be copied (a subclassed
            model) or has no layer with weights; ``targets`` with another length than
            ``docs``, an unknown class or an index out of range; ``docs`` of the wrong
            shape; ``max_steps``, ``seed`` or ``batch_size`` out of range; as for the
            method's engine, a layer that cannot be explained.

    Example:
        >>> model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
        >>> result = gradcam.metrics.randomisation(
        ...     model, doc, max_steps=3, preprocess=efficientnet_lite.preprocess_input)
        >>> result.layers
        ('predictions', 'top_bn', 'top_conv')
        >>> result.correlations.shape
        (1, 3)
    """
    layers, heatmaps, explained = cascade(
        model, docs, targets, method=method, layer=layer, preprocess=preprocess, score=score,
        max_steps=max_steps, seed=seed, batch_size=batch_size)
    correlations = np.stack([spearman(heatmaps[:, 0], heatmaps[:, s]) for s in range(1, heatmaps.shape[1])], axis=1)
    return RandomisationResult(
        correlations=correlations,
        layers=layers,
        heatmaps=heatmaps,
        targets=explained,
    )
