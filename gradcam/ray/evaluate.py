"""Evaluating and reporting on Ray: a report's per-image records, batch by batch, in a
pool of :class:`Evaluator` actors; :func:`evaluate_images` returns them as metric rows,
:func:`report` gathers them into :func:`gradcam.report`'s files.

Metrics are forward-pass bound (a deletion curve of 50 steps is 50 passes per map), so
spreading the images over actors is how an evaluation scales. Each actor builds one
:class:`gradcam.reporting.study.Study` and studies its batches with it; the statistics,
the verdict and the page come from :mod:`gradcam.reporting` alone.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import ray
import ray.data

from gradcam.checks import check_positive_int
from gradcam.models.registry import DEFAULT_MODEL, builtin_image_size, image_shape_for
from gradcam.ray.arguments import checked
from gradcam.ray.explain import ACTOR_CPUS, _actor_pool, _check_concurrency, _first_actors, _source_dataset
from gradcam.ray.explain import _source_paths
from gradcam.ray.explainer import _build_model, _preprocess_function, model_image

#: The columns of :func:`evaluate_images`'s rows besides the source's: those of
#: ``gradcam evaluate``'s ``metrics.csv`` but ``path`` (a column of the source).
ROW_COLUMNS = ("method", "metric", "target", "target_name", "value", "error")
#: The metrics :func:`evaluate_images` computes unless told (those of
#: :data:`gradcam.reporting.DEFAULT_METRICS` that are not sanity checks).
DEFAULT_EVALUATE_METRICS = ("deletion", "insertion", "average_drop", "increase_in_confidence")


class Evaluator:
    """A callable class for ``ray.data.Dataset.map_batches``: a report's study of a batch of
    images (:meth:`gradcam.reporting.study.Study.images`), the model and the
    :class:`~gradcam.reporting.study.Study` (its engines, so each method compiles once)
    built once per actor.

    It takes a batch (a dict of numpy arrays, ``batch_format="numpy"``) with an
    ``"image"`` column, converted to the model's size as :class:`~gradcam.ray.Explainer`
    converts it. With ``output="rows"`` it returns one row per image, row of the report
    (method or control) and metric, with the batch's other columns (``"path"``...) and
    :data:`ROW_COLUMNS`: ``method``, ``metric``, ``target`` (int64, the class scored),
    ``target_name`` (its name where the model's classes have names, else ``""``),
    ``value`` (float64, NaN where the metric has none) and ``error`` (``""``). With
    ``output="records"`` it returns one row per batch, a ``"records"`` column holding a
    pickled dict: ``"records"`` (the images' records, named by their files), ``"paths"``
    (the batch's ``"path"`` column, where it has one), ``"passes"`` (the forward passes
    this batch made), ``"settings"`` and ``"rows"`` (the study's) and ``"model"`` (the
    model's name), what :func:`report` gathers.

    Args:
        model: a built-in model's name, a ``.keras`` file's path, or a function returning
            a Keras model (see :class:`~gradcam.ray.Explainer`). Defaults to
            ``"efficientnet_lite0"``.
        methods: names of :data:`gradcam.METHODS`. Defaults to
            ``("gradcam", "gradcam++", "layercam")``.
        metrics: names of :data:`gradcam.reporting.METRICS`. Defaults to
            :data:`DEFAULT_EVALUATE_METRICS`.
        controls: among ``"randomcam"``, ``"gaussian"`` and ``"sobel"``. Defaults to ``()``.
        targets: ``None`` (each image's top prediction) or one class index or name for
            every image. Defaults to ``None``.
        target_column: the name of a column holding each image's class (index or name),
            or ``None``. Defaults to ``None``.
        layer: the layer the methods explain. Defaults to ``None`` (automatic).
        score: the score the methods explain. Defaults to ``"auto"``.
        preprocess: as for :class:`~gradcam.ray.Explainer`. Defaults to ``"auto"``.
        image_size: ``(height, width)`` for the model, or ``None`` for its input size.
            Defaults to ``None``.
        output: ``"rows"`` or ``"records"``. Defaults to ``"rows"``.
        thumbnails: whether the records hold the gallery's thumbnails (for the page).
            Defaults to ``False``.
        batch_size: images through the model at once. Defaults to ``32``.
        **options: :func:`gradcam.report`'s ``steps``, ``baseline``,
            ``randomisation_steps``, ``smooth_samples``, ``noise``, ``seed``,
            ``resamples``, ``confidence`` and ``test``.

    Raises:
        TypeError: ``model`` or ``targets`` of another type.
        ValueError: an unknown method, metric, control, model or preprocessing; a bad
            option; ``average_drop`` for a model without a softmax; a batch without the
            ``"image"`` column or ``target_column``.
    """

    def __init__(self, model=DEFAULT_MODEL, methods=None, metrics=DEFAULT_EVALUATE_METRICS, controls=(),
                 targets=None, target_column=None, layer=None, score: str = "auto", preprocess="auto",
                 image_size=None, output: str = "rows", thumbnails: bool = False, batch_size: int = 32, **options):
        from gradcam import hub
        from gradcam.capture import model_info
        from gradcam.reporting.study import DEFAULT_METHODS, Study, study_settings
        from gradcam.targets import ClassNames

        size = checked(model, "gradcam", score, preprocess, image_size)
        _check_output(output)
        self._model, builtin = _build_model(model, size)
        self._view = lambda picture: hub.picture_view(self._model, picture)
        self._image_shape = image_shape_for(self._model, size)
        self._classes = ClassNames(model_info(self._model).num_classes)
        self._targets, self._target_column, self._output = targets, target_column, output
        settings = study_settings(self._model, methods=DEFAULT_METHODS if methods is None else methods,
                                  metrics=metrics, controls=controls, layer=layer, score=score, batch_size=batch_size,
                                  image_shape=self._image_shape, **options)
        self._study = Study(self._model, settings, preprocess=_preprocess_function(preprocess, builtin),
                            thumbnails=thumbnails)

    def __call__(self, batch: dict) -> dict:
        """Study one batch.

        Args:
            batch: a dict of numpy arrays with an ``"image"`` column (see
                :class:`~gradcam.ray.Explainer`).

        Returns:
            The rows or records (see the class).
        """
        from gradcam.metrics.scoring import check_targets

        if "image" not in batch:
            raise ValueError(f"The batch has no 'image' column; its columns: {', '.join(map(repr, batch))}.")
        images = np.stack([model_image(image, self._image_shape, self._view) for image in batch["image"]])
        targets = self._targets
        if self._target_column is not None:
            if self._target_column not in batch:
                raise ValueError(f"target_column {self._target_column!r} is not a column of the batch; its "
                                 f"columns: {', '.join(map(repr, batch))}.")
            targets = [v.item() if isinstance(v, np.generic) else v for v in batch[self._target_column]]
        classes = None if targets is None else check_targets(targets, self._classes.num_classes, len(images))
        paths = [str(path) for path in batch["path"]] if "path" in batch else []
        names = [Path(path).name for path in paths] or [f"image {n}" for n in range(len(images))]
        study, before = self._study, dict(self._study.passes)
        records = study.images(images, names, classes)
        if self._output == "rows":
            return self._rows(batch, records)
        found = {"records": records, "paths": paths, "settings": study.settings, "rows": study.rows,
                 "model": self._model.name, "passes": {part: study.passes[part] - before[part] for part in before}}
        return {"records": np.array([pickle.dumps(found)], dtype=object)}

    def _rows(self, batch: dict, records: list[dict]) -> dict:
        """One row per image, report row and metric, in that order."""
        kept = {name: np.asarray(column) for name, column in batch.items() if name != "image"}
        picks, columns = [], {name: [] for name in ROW_COLUMNS}
        for n, record in enumerate(records):
            for row, by_metric in record["values"].items():
                for metric, value in by_metric.items():
                    picks.append(n)
                    columns["method"].append(row)
                    columns["metric"].append(metric)
                    columns["target"].append(record["target"])
                    columns["target_name"].append(self._classes.name(record["target"]) or "")
                    columns["value"].append(np.nan if value is None else value)
                    columns["error"].append("")
        picks = np.asarray(picks, np.int64)
        return {**{name: column[picks] for name, column in kept.items()},
                "method": np.asarray(columns["method"], dtype=object),
                "metric": np.asarray(columns["metric"], dtype=object),
                "target": np.asarray(columns["target"], np.int64),
                "target_name": np.asarray(columns["target_name"], dtype=object),
                "value": np.asarray(columns["value"], np.float64),
                "error": np.asarray(columns["error"], dtype=object)}


def _check_output(output) -> None:
    if output not in ("rows", "records"):
        raise ValueError(f"output must be 'rows' or 'records'; got {output!r}.")


def _check_study(methods, metrics, controls, targets, target_column, options) -> None:
    """Check, in the script, what the actors would refuse late: names and options."""
    from gradcam.checks import check_seed
    from gradcam.methods.registry import METHOD_NAMES
    from gradcam.reporting.statistics import TESTS
    from gradcam.reporting.study import DEFAULT_CONTROLS, METRICS, _check_names

    if not _check_names(methods, METHOD_NAMES, "method"):
        raise ValueError("An evaluation needs at least one method; got none.")
    _check_names(metrics, tuple(METRICS), "metric")
    _check_names(controls, DEFAULT_CONTROLS, "control")
    if not (targets is None or isinstance(targets, str)
            or (isinstance(targets, (int, np.integer)) and not isinstance(targets, bool))):
        raise TypeError(f"evaluate_images scores one class per image: targets must be None, a class index or a "
                        f"class name (or target_column= a column of classes); got {targets!r}.")
    if targets is not None and target_column is not None:
        raise ValueError(f"Give targets or target_column, not both; got targets={targets!r} and "
                         f"target_column={target_column!r}.")
    for name in ("steps", "randomisation_steps", "smooth_samples"):
        if name in options:
            check_positive_int(options[name], name)
    if "seed" in options:
        check_seed(options["seed"])
    if options.get("test", "wilcoxon") not in TESTS:
        raise ValueError(f"test must be one of {', '.join(map(repr, TESTS))}; got {options['test']!r}.")


def _measure_dataset(source, model, *, methods, metrics, controls, targets, target_column, layer, score, preprocess,
                     image_size, batch_size, concurrency, num_gpus, output, options, thumbnails=False):
    """The dataset of :class:`Evaluator` outputs over ``source``: its arguments checked
    first, files read by Ray tasks as :func:`~gradcam.ray.explain_images` reads them."""
    size = checked(model, "gradcam", score, preprocess, image_size)
    check_positive_int(batch_size, "batch_size")
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or not num_gpus >= 0:
        raise ValueError(f"num_gpus must be a number of GPUs, 0 or more; got {num_gpus!r}.")
    _check_concurrency(concurrency)
    _check_study(methods, metrics, controls, targets, target_column, options)
    source = _source_paths(source)
    if not ray.is_initialized():
        ray.init()
    actors = _first_actors(concurrency, num_gpus)
    dataset = _source_dataset(source, size or builtin_image_size(model), batch_size, actors)
    settings = dict(model=model, methods=methods, metrics=metrics, controls=controls, targets=targets,
                    target_column=target_column, layer=layer, score=score, preprocess=preprocess,
                    image_size=size, output=output, thumbnails=thumbnails, batch_size=batch_size, **options)
    measured = dataset.map_batches(
        Evaluator, fn_constructor_kwargs=settings, batch_size=batch_size, batch_format="numpy",
        compute=_actor_pool(concurrency, actors), num_cpus=ACTOR_CPUS, num_gpus=num_gpus or None)
    return measured, source


def evaluate_images(source, model=DEFAULT_MODEL, *, methods=("gradcam", "gradcam++", "layercam"),
                    metrics=DEFAULT_EVALUATE_METRICS, controls=(), targets=None, target_column=None, layer=None,
                    score: str = "auto", preprocess="auto", image_size=None, steps: int = 50, baseline=0.0,
                    randomisation_steps: int = 5, smooth_samples: int = 10, noise: float = 0.1, seed: int = 0,
                    batch_size: int = 32, concurrency=None, num_gpus: float = 0) -> ray.data.Dataset:
    """Evaluate methods on a whole set of images on Ray: a ``ray.data.Dataset`` of per-image
    metric values.

    Files and datasets are read as :func:`~gradcam.ray.explain_images` reads them, by
    tasks of :data:`~gradcam.ray.READ_CPUS` CPUs; a pool of :class:`Evaluator` actors of
    :data:`~gradcam.ray.ACTOR_CPUS` CPUs each (so that reading tasks still run beside them
    on two CPUs) computes each method's maps and scores them with each metric, as
    :func:`gradcam.report` does (the forward passes several metrics need made once per
    batch). Each value equals what the :mod:`gradcam.metrics` function returns for that
    image and map.

    Smooth MPRT's noise is drawn per batch (as :func:`gradcam.metrics.smooth_mprt` draws it
    for the images it is given), so its values depend on ``batch_size``; every other
    metric's do not.

    Args:
        source: a folder, an image file, a list of them, or a ``ray.data.Dataset`` with an
            ``"image"`` column.
        model: a built-in model's name, a ``.keras`` file's path, or a function returning
            a Keras model, built in each actor. Defaults to ``"efficientnet_lite0"``.
        methods: names of :data:`gradcam.METHODS`. Defaults to
            ``("gradcam", "gradcam++", "layercam")``.
        metrics: names of :data:`gradcam.reporting.METRICS`. Defaults to
            :data:`DEFAULT_EVALUATE_METRICS`.
        controls: control maps scored as rows too, among ``"randomcam"``, ``"gaussian"``
            and ``"sobel"``. Defaults to ``()``.
        targets: ``None`` (each image's top prediction, as explained by the first method)
            or one class index or name for every image. Defaults to ``None``.
        target_column: the name of a column of ``source`` holding each image's class (an
            index or a name), e.g. its label. Defaults to ``None``.
        layer: the layer the methods explain. Defaults to ``None`` (automatic).
        score: ``"auto"``, ``"logit"`` or ``"output"``. Defaults to ``"auto"``.
        preprocess: as for :class:`~gradcam.ray.Explainer`. Defaults to ``"auto"``.
        image_size: ``(height, width)`` for the model, or ``None`` for its input size.
            Defaults to ``None``.
        steps: deletion and insertion steps. Defaults to ``50``.
        baseline: the value deleted pixels take. Defaults to ``0.0``.
        randomisation_steps: layers randomised in the cascading test. Defaults to ``5``.
        smooth_samples: noisy copies per map in Smooth MPRT. Defaults to ``10``.
        noise: Smooth MPRT's noise, a fraction of each image's range. Defaults to ``0.1``.
        seed: seeds the noise and the random weights. Defaults to ``0``.
        batch_size: images per batch (and per model call). Defaults to ``32``.
        concurrency: the number of actors, ``(min, max)``, or ``None`` for one per node
            (see :func:`~gradcam.ray.explain_images`). Defaults to ``None``.
        num_gpus: GPUs each actor reserves. Defaults to ``0``.

    Returns:
        A lazy ``ray.data.Dataset`` with one row per image, report row (method, then
        control) and metric: the source's columns but ``"image"`` (files give
        ``"path"``), and :data:`ROW_COLUMNS` (those of ``gradcam evaluate``'s
        ``metrics.csv``).

    Raises:
        TypeError: ``source`` or ``model`` of another type.
        ValueError: an unknown method, metric, control, model name, score or
            preprocessing; ``targets`` with ``target_column``; a bad option,
            ``batch_size``, ``concurrency`` or ``num_gpus``; no image file in ``source``.

    Example:
        >>> rows = evaluate_images("photos/", methods=["gradcam", "layercam"], concurrency=2)
        >>> rows.groupby(["method", "metric"]).mean("value").take_all()  # doctest: +SKIP
    """
    options = dict(steps=steps, baseline=baseline, randomisation_steps=randomisation_steps,
                   smooth_samples=smooth_samples, noise=noise, seed=seed)
    rows, _ = _measure_dataset(source, model, methods=methods, metrics=metrics, controls=controls, targets=targets,
                               target_column=target_column, layer=layer, score=score, preprocess=preprocess,
                               image_size=image_size, batch_size=batch_size, concurrency=concurrency,
                               num_gpus=num_gpus, output="rows", options=options)
    return rows


def _order(parts: list[dict], source) -> np.ndarray:
    """The images' order: the files' order for files, by path for a dataset with paths,
    else as the batches came."""
    paths = [path for part in parts for path in part["paths"]]
    count = sum(len(part["records"]) for part in parts)
    if len(paths) != count:
        return np.arange(count)
    if isinstance(source, list):
        position = {os.fspath(path): n for n, path in enumerate(source)}
        return np.argsort([position.get(path, len(position)) for path in paths], kind="stable")
    return np.argsort(paths, kind="stable")


def report(source, model=DEFAULT_MODEL, *, methods=("gradcam", "gradcam++", "layercam"), metrics=None,
           out=None, controls=("randomcam", "gaussian", "sobel"), targets=None, target_column=None, layer=None,
           score: str = "auto", preprocess="auto", image_size=None, steps: int = 50, baseline=0.0,
           randomisation_steps: int = 5, smooth_samples: int = 10, noise: float = 0.1, seed: int = 0,
           resamples: int = 10000, confidence: float = 0.95, test: str = "wilcoxon", batch_size: int = 32,
           concurrency=None, num_gpus: float = 0) -> dict:
    """:func:`gradcam.report` on Ray: the images' records made by actors, gathered into one report.

    The images are studied as :func:`evaluate_images` studies them; their records (each
    image's metric values, deletion and insertion curves, sanity-check correlations and,
    with ``out``, the gallery's thumbnails) come back to this process, which computes the
    intervals, tests, verdict and page with :func:`gradcam.reporting.study.summarise` and
    :func:`gradcam.reporting.write`, and writes the same ``report.json``,
    ``report.html`` and ``metrics.csv`` as :func:`gradcam.report`. With files, the images
    keep the order of the files found; with a dataset, that of its ``"path"`` column where
    it has one (else the order the batches arrive in). The numbers equal
    :func:`gradcam.report`'s on the same images with the same ``batch_size`` (Smooth
    MPRT's noise is drawn per batch, in both).

    Everything gathered is kept in this process's memory (with ``out``, each image's
    thumbnails too): for very large image sets, use
    :func:`evaluate_images` and aggregate its rows with Ray.

    Args:
        source: a folder, an image file, a list of them, or a ``ray.data.Dataset`` with an
            ``"image"`` column.
        model: as for :func:`evaluate_images`. Defaults to ``"efficientnet_lite0"``.
        methods: names of :data:`gradcam.METHODS`. Defaults to
            ``("gradcam", "gradcam++", "layercam")``.
        metrics: names of :data:`gradcam.reporting.METRICS`, or ``None`` for all of them.
            Defaults to ``None``.
        out: a folder for ``report.json``, ``report.html`` and ``metrics.csv`` (created if
            missing), or ``None`` to write nothing. Defaults to ``None``.
        controls: among ``"randomcam"``, ``"gaussian"`` and ``"sobel"``. Defaults to all.
        targets: as for :func:`evaluate_images`. Defaults to ``None``.
        target_column: as for :func:`evaluate_images`. Defaults to ``None``.
        layer: the layer the methods explain. Defaults to ``None`` (automatic).
        score: ``"auto"``, ``"logit"`` or ``"output"``. Defaults to ``"auto"``.
        preprocess: as for :class:`~gradcam.ray.Explainer`. Defaults to ``"auto"``.
        image_size: ``(height, width)`` for the model, or ``None``. Defaults to ``None``.
        steps: as for :func:`gradcam.report`. Defaults to ``50``.
        baseline: as for :func:`gradcam.report`. Defaults to ``0.0``.
        randomisation_steps: as for :func:`gradcam.report`. Defaults to ``5``.
        smooth_samples: as for :func:`gradcam.report`. Defaults to ``10``.
        noise: as for :func:`gradcam.report`. Defaults to ``0.1``.
        seed: as for :func:`gradcam.report`. Defaults to ``0``.
        resamples: bootstrap resamples. Defaults to ``10000``.
        confidence: the intervals' level. Defaults to ``0.95``.
        test: ``"wilcoxon"`` or ``"bootstrap"``. Defaults to ``"wilcoxon"``.
        batch_size: images per batch. Defaults to ``32``.
        concurrency: as for :func:`evaluate_images`. Defaults to ``None``.
        num_gpus: as for :func:`evaluate_images`. Defaults to ``0``.

    Returns:
        The report's numbers, as written to ``report.json`` (see :doc:`/docs/report`).

    Raises:
        TypeError: ``source`` or ``model`` of another type.
        ValueError: as for :func:`evaluate_images`; a bad ``resamples``, ``confidence``
            or ``test``; ``average_drop`` for a model without a softmax (from the actors).

    Example:
        >>> numbers = gradcam.ray.report("photos/", methods=["gradcam", "layercam"], out="report",
        ...                              concurrency=4)  # doctest: +SKIP
        >>> numbers["verdict"][0]  # doctest: +SKIP
    """
    from gradcam.reporting import write
    from gradcam.reporting.study import DEFAULT_METRICS, PASS_PARTS, summarise

    check_positive_int(resamples, "resamples")
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a float in (0, 1); got {confidence!r}.")
    options = dict(steps=steps, baseline=baseline, randomisation_steps=randomisation_steps,
                   smooth_samples=smooth_samples, noise=noise, seed=seed, resamples=resamples,
                   confidence=confidence, test=test)
    measured, paths = _measure_dataset(
        source, model, methods=methods, metrics=DEFAULT_METRICS if metrics is None else metrics, controls=controls,
        targets=targets, target_column=target_column, layer=layer, score=score, preprocess=preprocess,
        image_size=image_size, batch_size=batch_size, concurrency=concurrency, num_gpus=num_gpus,
        output="records", options=options, thumbnails=out is not None)
    parts = [pickle.loads(row["records"]) for row in measured.iter_rows()]
    if not parts:
        raise ValueError("report needs at least one image; the source has none.")
    records = [record for part in parts for record in part["records"]]
    records = [records[n] for n in _order(parts, paths)]
    if not any(part["paths"] for part in parts):  # named by their place in the report
        for n, record in enumerate(records):
            record["name"] = f"image {n}"
    first = parts[0]  # every actor's study has the same settings, rows and model
    passes = {part: sum(p["passes"][part] for p in parts) for part in PASS_PARTS}
    data = summarise(first["settings"], first["rows"], first["model"], records, passes)
    if out is not None:
        write(data, out)
    return {key: value for key, value in data.items() if not key.startswith("_")}
