"""Scores of perturbed images: made chunk by chunk, run through the model in batches.

A metric describes its perturbations as a function ``perturb(n, steps)`` that returns the
perturbed versions ``steps`` of image ``n``, ``(len(steps), H, W, C)`` float32, in the
user's image space. :func:`perturbed_scores` asks it for ``batch_size`` images at a time
(perturbations of one image, or of consecutive images, in one batch; the rest in batches
of decreasing powers of two), applies the metric's ``preprocess`` to them, runs them
through the model with one compiled forward pass per batch (:mod:`gradcam.backend`), and
keeps the target's output: the target's probability when the model ends in a softmax,
which is simply its output. At most one batch of perturbed images exists at a time,
however many images and steps there are. A metric whose perturbations are costly on the
CPU (ROAD's imputations) has them made by several threads (``workers``).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
from keras import ops

from gradcam import backend
from gradcam.capture import model_info
from gradcam.checks import check_positive_int
from gradcam.model_input import model_input
from gradcam.metrics.maps import check_maps
from gradcam.targets import ClassNames, OutputSpec, Plan, View, check_classifier, is_target_object, plan, resolve_targets

# The compiled forward of each model, built on first use. Keyed weakly:
# the compiled function holds its model weakly too, so the cache keeps no model alive.
_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FORWARDS_LOCK = threading.Lock()


def _target_outputs(call, x, targets):
    """The model's output for each image's target: ``(B,)`` float32."""
    outputs = ops.cast(call(x), "float32")
    return ops.take_along_axis(outputs, ops.expand_dims(targets, 1), axis=1)[:, 0]


def _plan_outputs(target_plan: Plan):
    """The target's score on each image, for a :class:`~gradcam.targets.Plan` of one
    target, from the model's outputs as they are: ``(B,)`` float32."""

    def score(call, x, *arrays):
        outputs = keras.tree.map_structure(lambda t: ops.cast(t, "float32"), call(x))
        return target_plan.evaluate(View(outputs, outputs), arrays)[0][:, 0]

    return score


def _forward(model, info, targets):
    """The compiled scoring of ``targets`` (class indices or a Plan) on ``model``: one per
    model and kind of target."""
    key = targets.key if isinstance(targets, Plan) else None
    with _FORWARDS_LOCK:
        forwards = _FORWARDS.setdefault(model, {})
        if key not in forwards:
            image = ((None,) + tuple(info.input_shape[1:]), info.input_dtype)
            if key is None:
                forwards[key] = backend.current().compile(model, _target_outputs, [image, ((None,), "int32")])
            else:
                forwards[key] = backend.current().compile(model, _plan_outputs(targets), [image] + targets.signature())
        return forwards[key]


def check_targets(targets, num_classes: int, count: int) -> np.ndarray:
    """One class per image, as int32 ``(count,)``.

    Args:
        targets: a class index or name for every image, or a sequence of ``count`` of
            them (one per image).
        num_classes: the model's number of outputs.
        count: the number of images.

    Returns:
        int32 array ``(count,)``.

    Raises:
        TypeError: a target that is neither an int nor a str.
        ValueError: not one target per image; an index out of range; an unknown name.
    """
    classes = ClassNames(num_classes)
    if isinstance(targets, (str, int, np.integer)) and not isinstance(targets, bool):
        return resolve_targets(targets, classes, count)[:, 0]
    if targets is None or isinstance(targets, bool):
        raise TypeError(f"targets must be a class index or name, or one per image; got {targets!r}.")
    try:
        values = np.asarray(targets, dtype=object)
    except Exception:  # objects numpy cannot convert
        values = None
    if values is None or values.ndim != 1 or len(values) != count:
        shape = None if values is None else values.shape
        raise ValueError(
            f"Expected one target per image: {count} class indices or names, or one for all; "
            f"got {targets!r} (shape {shape})."
        )
    return resolve_targets(values.reshape(count, 1), classes, count)[:, 0]


def check_options(preprocess, batch_size) -> int:
    """Check a metric's ``preprocess`` and ``batch_size``; return the batch size.

    Raises:
        TypeError: ``preprocess`` is neither ``None`` nor callable.
        ValueError: ``batch_size`` is not a positive integer.
    """
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be a function or None; got {preprocess!r}.")
    return check_positive_int(batch_size, "batch_size")


def check_inputs(model, docs, heatmaps, targets, preprocess, batch_size):
    """Check the arguments every perturbation metric takes.

    Returns:
        ``(images, maps, targets, batch_size)``: the images ``(N, H, W, C)`` (never to be
        written to), the maps upsampled to float32 ``(N, H, W)``, int32 targets ``(N,)``
        (or, for a :mod:`gradcam.targets` object, its :class:`~gradcam.targets.Plan`) and
        the batch size.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable; ``docs``
            or ``heatmaps`` is not an array of numbers; a target of another type.
        ValueError: see :func:`~gradcam.metrics.maps.check_maps`, :func:`check_targets`
            and :func:`check_options`; the model is not a built image model; class targets
            for a model that is not a classifier; a target that does not fit the outputs.
    """
    info = model_info(model)
    batch_size = check_options(preprocess, batch_size)
    images, maps = check_maps(docs, heatmaps)
    spec = OutputSpec(info.output_shapes, ClassNames(info.num_classes), False, model.name)
    if is_target_object(targets):
        return images, maps, plan([targets], spec, len(images)), batch_size
    check_classifier(spec, f"class target {targets!r}")
    return images, maps, check_targets(targets, info.num_classes, len(images)), batch_size


# What every perturbation metric's docstring says of the arguments that check_inputs and
# perturbed_scores check: written once, filled in by metric_docstring.
_SHARED_ARGS = """model: a Keras model with one image input: a classifier with one ``(batch, classes)``
            output for class targets, any outputs for :mod:`gradcam.targets` objects.
        docs: images ``(N, H, W, C)`` (or one ``(H, W, C)``), as the caller has them
            (raw when ``preprocess`` is given); never modified.
        heatmaps: maps ``(N, h, w)``, one per image, at any resolution; upsampled
            bilinearly to ``(H, W)``. Never modified.
        targets: the class scored in each image: one index or name for all images, or one
            per image; or one :mod:`gradcam.targets` object (its arrays may hold one row
            per image), scored on the model's outputs as they are.
        preprocess: the model's preprocessing, applied to each batch of {perturbed},
            or ``None`` when ``docs`` are ready for the model. Defaults to ``None``.
        batch_size: how many {perturbed} go through the model at once.
            Defaults to ``32``."""
_SHARED_TYPE_ERRORS = """``model`` is not a Keras model; ``preprocess`` is not callable
            or returns something else than an array of numbers; ``docs`` or ``heatmaps``
            is not an array of numbers; a target is neither an int, a str nor a
            :mod:`gradcam.targets` object."""
_SHARED_VALUE_ERRORS = """wrong shapes (not one map and one target per image); NaN or
            infinite values in ``docs`` or ``heatmaps``; a target out of range;
            ``batch_size`` is not a positive integer; ``preprocess`` changes the batch
            size or returns NaN or infinite values; the images do not fit the model"""


def metric_docstring(perturbed: str):
    """A decorator that writes into a perturbation metric's docstring what all of them share.

    The docstring's ``{args}`` becomes the ``Args:`` entries of ``model``, ``docs``,
    ``heatmaps``, ``targets``, ``preprocess`` and ``batch_size``; ``{type_errors}`` and
    ``{value_errors}`` the ``TypeError`` and ``ValueError`` cases of checking them
    (:func:`check_inputs`) and of running the model (:func:`perturbed_scores`), the latter
    with no final punctuation: the metric adds its own cases after a semicolon, or a full
    stop. Each is written where an entry starts, indented as one; it wraps its own lines.

    Args:
        perturbed: what the metric runs through the model, in the plural, e.g.
            ``"perturbed images"``.

    Returns:
        The decorator: it returns the function itself, its ``__doc__`` completed.
    """

    def complete(function):
        if function.__doc__:  # None under python -OO
            function.__doc__ = function.__doc__.format(
                args=_SHARED_ARGS.format(perturbed=perturbed),
                type_errors=_SHARED_TYPE_ERRORS,
                value_errors=_SHARED_VALUE_ERRORS,
            )
        return function

    return complete


def _batch_sizes(total: int, batch_size: int) -> list[int]:
    """Batches of ``batch_size``, then the rest as decreasing powers of two.

    JAX compiles once per batch shape: splitting the rest so (``45 = 32 + 8 + 4 + 1``)
    bounds the shapes any call can use to ``log2(batch_size) + 2``, all compiled once,
    where padding the rest to ``batch_size`` would waste up to ``batch_size - 1`` passes.
    """
    sizes = [batch_size] * (total // batch_size)
    rest = total % batch_size
    while rest:
        sizes.append(1 << (rest.bit_length() - 1))
        rest -= sizes[-1]
    return sizes


def perturbed_scores(model, perturb, count: int, steps: int, targets, *, preprocess,
                     batch_size: int, workers: int = 1) -> np.ndarray:
    """The target's score on each perturbation of each image.

    Args:
        model: a Keras classifier with one image input and one ``(batch, classes)`` output.
        perturb: ``perturb(n, steps)`` returns perturbations ``steps`` (an int array) of
            image ``n`` as a new float32 array ``(len(steps), H, W, C)``.
        count: the number of images ``N``.
        steps: the number of perturbations of each image ``P``.
        targets: int32 ``(N,)``, the class scored for each image, or the
            :class:`~gradcam.targets.Plan` of one target.
        preprocess: applied to each batch of perturbed images (a float32 array of their own,
            which it may change in place), or ``None``.
        batch_size: how many perturbed images go through the model at once.
        workers: how many threads make a batch's perturbations. With one, ``perturb`` is
            called once per image in the batch, in this thread; with more, once per
            perturbation (``steps`` of length 1), from a pool of threads, so it must be
            thread-safe (and give the same result whatever the order of the calls).
            Defaults to ``1``.

    Returns:
        float32 array ``(N, P)``.

    Raises:
        TypeError: ``preprocess`` returns something else than an array of numbers.
        ValueError: ``preprocess`` changes the batch size or returns NaN or infinite
            values; the images do not have the model's input shape.
    """
    info = model_info(model)
    forward = _forward(model, info, targets)
    to_numpy = backend.current().to_numpy
    total = count * steps
    scores = np.empty(total, np.float32)
    start = 0
    with ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        run = pool.map if workers > 1 else map  # one worker: in this thread
        for size in _batch_sizes(total, batch_size):
            flat = np.arange(start, start + size)
            start += size
            images, indices = np.divmod(flat, steps)
            if workers == 1:
                calls = [(n, indices[images == n]) for n in np.unique(images)]
            else:
                calls = [(n, indices[k : k + 1]) for k, n in enumerate(images)]
            batch = np.concatenate(list(run(lambda call: perturb(*call), calls)))
            batch = batch.astype(np.float32, copy=False)
            batch = model_input(model, batch, preprocess, info.input_shape[1:], info.input_dtype)
            if isinstance(targets, Plan):
                scores[flat] = to_numpy(forward(batch, *targets.take(images)))
            else:
                scores[flat] = to_numpy(forward(batch, targets[images].astype(np.int32)))
    return scores.reshape(count, steps)


def curve_area(curves) -> np.ndarray:
    """The area under each curve by the trapezoid rule, on ``[0, 1]``.

    ``(c[0] / 2 + c[1] + ... + c[S - 1] + c[S] / 2) / S`` for a curve of ``S + 1`` points
    ``c[0..S]`` evenly spaced from 0 to 1.

    Args:
        curves: ``(N, S + 1)`` with ``S >= 1``.

    Returns:
        float32 array ``(N,)``.
    """
    curves = np.asarray(curves, np.float64)
    steps = curves.shape[1] - 1
    inner = curves[:, 1:-1].sum(axis=1)
    return ((curves[:, 0] / 2 + inner + curves[:, -1] / 2) / steps).astype(np.float32)


def check_known_scores(known_scores, points: int, count: int) -> dict:
    """Check scores a caller has already measured: ``{index: (N,) scores}``.

    Args:
        known_scores: ``None``, or a dict from a perturbation's index in ``0..points - 1``
            to the target's ``count`` scores on that perturbation of each image.
        points: the number of perturbations of each image.
        count: the number of images.

    Returns:
        ``{int index: float32 (count,)}``.

    Raises:
        ValueError: an index out of range; not ``count`` finite scores.
    """
    checked = {}
    for index, scores in (known_scores or {}).items():
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < points:
            raise ValueError(f"known_scores' keys must be perturbation indices 0..{points - 1}; got {index!r}.")
        values = np.asarray(scores, np.float32)
        if values.shape != (count,) or not np.isfinite(values).all():
            raise ValueError(
                f"known_scores[{index}] must be {count} finite scores, one per image; got shape {values.shape}."
            )
        checked[int(index)] = values
    return checked


def scores_with_known(model, perturb, count: int, points: int, targets, known_scores, *, preprocess,
                      batch_size: int) -> np.ndarray:
    """:func:`perturbed_scores` of the perturbations not in ``known_scores``.

    Args:
        model, perturb, count, targets, preprocess, batch_size: as for
            :func:`perturbed_scores`.
        points: the number of perturbations of each image ``P``.
        known_scores: ``{index: (N,) scores}`` already measured (:func:`check_known_scores`).

    Returns:
        float32 ``(N, P)``: the known columns as given, the others measured.
    """
    known = check_known_scores(known_scores, points, count)
    todo = np.array([i for i in range(points) if i not in known], np.int64)
    scores = np.empty((count, points), np.float32)
    if len(todo):
        scores[:, todo] = perturbed_scores(
            model, lambda n, indices: perturb(n, todo[indices]), count, len(todo), targets,
            preprocess=preprocess, batch_size=batch_size)
    for index, values in known.items():
        scores[:, index] = values
    return scores
