"""The numbers of a report: every method and control, every metric, with intervals and tests.

:func:`run_study` computes the maps of each method, scores them with each metric, and
shares what several of them need: the classes to explain (from the first method's run),
and the target's score on each image itself, on the all-baseline image (deletion's end)
and on the blurred image (insertion's start), measured once per image and passed to every
deletion, insertion and masked-image metric as ``known_scores``. The masked image's score
serves both average drop and increase in confidence. Every image that goes into the model
is counted (:class:`PassCounter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradcam.capture import model_info
from gradcam.checks import check_positive_int, check_seed
from gradcam.image import image_from_path, to_batch
from gradcam.layers import find_layer
from gradcam.methods.factory import build_engine
from gradcam.methods.registry import METHOD_NAMES
from gradcam.metrics.confidence import drop_from_scores, increase_from_scores, masked_scores
from gradcam.metrics.model_randomisation import RandomisableCopy, cascade, spearman, ssim
from gradcam.metrics.perturbation import _check_baseline, blur, deletion, insertion
from gradcam.metrics.sanity_checks import complexity_rise, smoother
from gradcam.metrics.scoring import check_targets, perturbed_scores
from gradcam.reporting.catalogue import DEFAULT_CONTROLS, DEFAULT_METHODS, DEFAULT_METRICS, METRICS
from gradcam.reporting.controls import CONTROLS, RANDOM_METHOD
from gradcam.reporting.statistics import TESTS, bootstrap_band, bootstrap_interval, paired_test


#: A method fails the randomisation checks when its maps' mean rank correlation with the
#: trained model's maps stays at or above this after randomisation.
SANITY_CORRELATION = 0.5


class PassCounter:
    """A ``preprocess`` that counts the images it prepares for the model.

    Every engine and metric applies ``preprocess`` once to each image it runs through
    the model; wrapping the user's function (or none) in this counts the forward passes.

    Args:
        preprocess: the user's preprocessing, or ``None``.
    """

    def __init__(self, preprocess=None):
        self.preprocess = preprocess
        self.count = 0

    def __call__(self, batch):
        self.count += len(batch)
        return batch if self.preprocess is None else self.preprocess(batch)


def load_images(images, image_shape) -> tuple[np.ndarray, list[str], list[dict]]:
    """The images as one batch, their names, and the files that could not be read.

    Args:
        images: an array ``(N, H, W, C)`` (or one image), or a sequence of file paths.
        image_shape: ``(height, width)`` files are loaded at.

    Returns:
        ``(batch, names, skipped)``; ``skipped`` lists ``{"path", "error"}``.

    Raises:
        ValueError: no image (an empty sequence, or no file readable).
    """
    if isinstance(images, (str, Path)):
        images = [images]
    if isinstance(images, np.ndarray) or (isinstance(images, (list, tuple)) and images and not isinstance(images[0], (str, Path))):
        batch = to_batch(np.asarray(images) if not isinstance(images, np.ndarray) else images, name="images")
        return batch, [f"image {n}" for n in range(len(batch))], []
    loaded, names, skipped = [], [], []
    for path in images:
        try:
            loaded.append(image_from_path(path, image_shape=image_shape)[0])
            names.append(Path(path).name)
        except (OSError, ValueError) as error:
            skipped.append({"path": str(path), "error": f"{type(error).__name__}: {error}"})
    if not loaded:
        listed = "; ".join(f"{s['path']} ({s['error']})" for s in skipped) or "no path given"
        raise ValueError(f"report needs at least one readable image; {listed}.")
    return np.stack(loaded), names, skipped


def _check_names(names, known, what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown {what} {unknown[0]!r}; expected some of {', '.join(map(repr, known))}.")
    if len(set(names)) != len(names):
        raise ValueError(f"Each {what} may be named once; got {list(names)}.")
    return names


def _number(value):
    """A JSON number: ``None`` for NaN and infinities."""
    value = float(value)
    return value if math.isfinite(value) else None


def _numbers(values) -> list:
    return [_number(v) for v in np.asarray(values, np.float64).ravel()]


@dataclass(frozen=True)
class StudySettings:
    """A report's settings, checked (:func:`study_settings`): the arguments of
    :func:`gradcam.reporting.report` except ``model``, ``images``, ``targets``,
    ``preprocess`` and ``out``."""

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    controls: tuple[str, ...]
    layer: object
    score: str
    steps: int
    baseline: object
    randomisation_steps: int
    smooth_samples: int
    noise: float
    seed: int
    resamples: int
    confidence: float
    test: str
    batch_size: int
    image_shape: tuple[int, int]


def study_settings(model, *, methods=DEFAULT_METHODS, metrics=DEFAULT_METRICS, controls=DEFAULT_CONTROLS,
                   layer=None, score: str = "auto", steps: int = 50, baseline=0.0, randomisation_steps: int = 5,
                   smooth_samples: int = 10, noise: float = 0.1, seed: int = 0, resamples: int = 10000,
                   confidence: float = 0.95, test: str = "wilcoxon", batch_size: int = 32,
                   image_shape=None) -> StudySettings:
    """Check a report's settings for ``model`` (the arguments of :func:`gradcam.reporting.report`).

    Returns:
        The :class:`StudySettings`; ``image_shape`` is the model's input size where it is
        ``None`` (224 x 224 where the model has none).

    Raises:
        ValueError: an unknown method, metric, control or test; no method; a step count,
            seed or batch size that is not a positive integer; ``average_drop`` for a
            model that does not end in a softmax.
    """
    info = model_info(model)
    methods = _check_names(methods, METHOD_NAMES, "method")
    if not methods:
        raise ValueError("report needs at least one method; got none.")
    metrics = _check_names(metrics, tuple(METRICS), "metric")
    controls = _check_names(controls, DEFAULT_CONTROLS, "control")
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(map(repr, TESTS))}; got {test!r}.")
    if "average_drop" in metrics and info.softmax is None:
        raise ValueError(
            f"average_drop needs a model that ends in a softmax (a probability to lose a share of); "
            f"model {model.name!r} does not. Leave it out: metrics={[m for m in metrics if m != 'average_drop']}."
        )
    if image_shape is None:
        image_shape = tuple(d for d in info.input_shape[1:3]) if None not in info.input_shape[1:3] else (224, 224)
    return StudySettings(
        methods=methods, metrics=metrics, controls=controls, layer=layer, score=score,
        steps=check_positive_int(steps, "steps"), baseline=baseline,
        randomisation_steps=check_positive_int(randomisation_steps, "randomisation_steps"),
        smooth_samples=smooth_samples, noise=noise, seed=check_seed(seed), resamples=resamples,
        confidence=confidence, test=test, batch_size=check_positive_int(batch_size, "batch_size"),
        image_shape=tuple(image_shape))


#: The sanity checks, which randomise a copy of the model.
SANITY_METRICS = ("randomisation", "smooth_mprt", "efficient_mprt")
#: The parts of a report's forward passes (:attr:`Study.passes`), ``total`` aside.
PASS_PARTS = ("maps", "shared", "metrics", "sanity")


class Study:
    """A report's study, fed a batch of images at a time (:meth:`images`) and summarised
    at the end (:func:`summarise`).

    Every number of a report is one per image, computed on that image's batch: its
    class, its maps, its metric values and curves, its sanity checks. Only the
    intervals, the tests and the verdict look at all the images, in :func:`summarise`.
    The engines are built once, on the one copy of the model that the sanity checks
    randomise (:class:`~gradcam.metrics.model_randomisation.RandomisableCopy`, given its
    trained weights back for each batch), so each method is compiled once and each
    layer's random weights are made once; the passes the engines and the metrics make
    are counted (:attr:`passes`).

    Smooth MPRT draws its noise for a batch at a time
    (:func:`~gradcam.metrics.sanity_checks.smoother`): its values depend on how the
    images are batched, the other numbers do not.

    Args:
        model: the Keras classifier.
        settings: the checked :class:`StudySettings`.
        preprocess: the model's preprocessing, or ``None``. Defaults to ``None``.
        thumbnails: whether each image's record holds its gallery's thumbnails
            (:func:`gradcam.reporting.page.thumbnails`). Defaults to ``False``.

    Attributes:
        copy: the model's :class:`~gradcam.metrics.model_randomisation.RandomisableCopy`,
            or ``None`` when the report has no sanity check.
        engines: the engine of each method and of ``randomcam``, by name.
        rows: per row of the report (each method, then each control): ``name``, ``kind``
            and ``layer``.
        passes: the forward passes made so far, by :data:`PASS_PARTS`.

    Example:
        >>> study = Study(model, study_settings(model), preprocess=preprocess_input)
        >>> records = study.images(batch, ["a.jpg", "b.jpg"]) + study.images(more, ["c.jpg"])
        >>> data = summarise(study.settings, study.rows, model.name, records, study.passes)
    """

    def __init__(self, model, settings: StudySettings, preprocess=None, thumbnails: bool = False):
        self.model = model
        self.settings = settings
        self.counter = PassCounter(preprocess)
        self.thumbnails = thumbnails
        self.passes = dict.fromkeys(PASS_PARTS, 0)
        methods = [(name, "method") for name in settings.methods]
        methods += [(RANDOM_METHOD, "control")] if RANDOM_METHOD in settings.controls else []
        # The sanity checks randomise one copy of the model, whose engines (with its trained
        # weights given back) also make the maps: one engine per method, compiled once.
        self.copy = RandomisableCopy(model) if set(SANITY_METRICS) & set(settings.metrics) else None
        if self.copy is None:
            self.engines = {name: build_engine(model, name, layer=settings.layer, score=settings.score,
                                               preprocess=self.counter) for name, _ in methods}
        else:
            layer = find_layer(model, settings.layer).name
            self.engines = {name: self.copy.engine(name, layer=layer, score=settings.score, preprocess=self.counter)
                            for name, _ in methods}
        self.rows = [{"name": name, "kind": kind, "layer": _layer_name(self.engines[name])} for name, kind in methods]
        self.rows += [{"name": name, "kind": "control", "layer": None} for name in settings.controls
                      if name in CONTROLS]

    def _count(self, part: str, start: int) -> None:
        """Add the passes made since the counter read ``start`` to ``part``."""
        self.passes[part] += self.counter.count - start

    def images(self, batch, names, targets=None) -> list[dict]:
        """Study a batch of images: one record per image.

        Args:
            batch: the images ``(N, H, W, C)`` (raw when the study has a ``preprocess``).
            names: their names (file names), one per image.
            targets: ``None`` (each image's top prediction) or int32 classes ``(N,)``.
                Defaults to ``None``.

        Returns:
            Per image, a dict of JSON values: ``name``, ``target``, ``score``, ``values``
            (``values[row][metric]``), ``curves`` (``curves[metric][row]``, the deletion
            and insertion curves), ``randomisation`` (per row, as in ``report.json`` for
            this image alone) and, with ``thumbnails``, ``thumbnails`` (``"photo"`` and
            one per row: ``data:`` URIs).
        """
        settings, metrics, counter = self.settings, self.settings.metrics, self.counter
        model, batch_size, steps = self.model, settings.batch_size, settings.steps
        count = len(batch)
        wanted = None if targets is None else np.asarray(targets, np.int32)[:, None]
        maps, top_scores = {}, None
        if self.copy is not None:
            self.copy.reset()
        start = counter.count
        for name, engine in self.engines.items():
            result = engine.compute(batch, wanted, batch_size)
            if wanted is None:
                wanted = result.targets[:, :1]
            if top_scores is None:
                top_scores = result.probas[:, 0] if result.probas is not None else result.scores[:, 0]
            maps[name] = result.heatmaps[:, 0]
        self._count("maps", start)
        for name in settings.controls:
            if name in CONTROLS:
                maps[name] = CONTROLS[name](batch)
        classes = wanted[:, 0].astype(np.int32)
        row_names = [row["name"] for row in self.rows]

        # The scores every map shares: the image, the all-baseline image, the blurred image.
        start = counter.count
        shared_needed = []
        if any(m in metrics for m in ("deletion", "average_drop", "increase_in_confidence", "insertion")):
            shared_needed.append("original")
        if "deletion" in metrics:
            shared_needed.append("baseline")
        if "insertion" in metrics:
            shared_needed.append("blurred")
        shared = {}
        if shared_needed:
            fill = _check_baseline(settings.baseline, batch.shape[1:])
            makers = {
                "original": lambda n: batch[n].astype(np.float32),
                "baseline": lambda n: np.broadcast_to(fill, batch.shape[1:]).astype(np.float32),
                "blurred": lambda n: blur(batch[n]),
            }

            def perturb(n, indices):
                return np.stack([makers[shared_needed[i]](n) for i in indices])

            measured = perturbed_scores(model, perturb, count, len(shared_needed), classes, preprocess=counter,
                                        batch_size=batch_size)
            shared = {name: measured[:, i] for i, name in enumerate(shared_needed)}
        self._count("shared", start)

        values = {name: {} for name in row_names}
        curves = {}
        start = counter.count
        for name in row_names:
            heat = maps[name]
            if "deletion" in metrics:
                area, curve = deletion(model, batch, heat, classes, preprocess=counter, batch_size=batch_size,
                                       steps=steps, baseline=settings.baseline, return_curves=True,
                                       known_scores={0: shared["original"], steps: shared["baseline"]})
                values[name]["deletion"] = area
                curves.setdefault("deletion", {})[name] = curve
            if "insertion" in metrics:
                area, curve = insertion(model, batch, heat, classes, preprocess=counter, batch_size=batch_size,
                                        steps=steps, return_curves=True,
                                        known_scores={0: shared["blurred"], steps: shared["original"]})
                values[name]["insertion"] = area
                curves.setdefault("insertion", {})[name] = curve
            if "average_drop" in metrics or "increase_in_confidence" in metrics:
                unmasked, masked = masked_scores(model, batch, heat, classes, preprocess=counter,
                                                 batch_size=batch_size, known_scores={0: shared["original"]})
                if "average_drop" in metrics:
                    values[name]["average_drop"] = drop_from_scores(unmasked, masked)
                if "increase_in_confidence" in metrics:
                    values[name]["increase_in_confidence"] = increase_from_scores(unmasked, masked)
        self._count("metrics", start)

        # Sanity checks: the methods' maps of randomised copies (one cascade per method serves
        # the three checks); a control's maps do not depend on the model, so its randomised
        # maps are its maps.
        start = counter.count
        sanity = {}
        for name in row_names:
            if name in self.engines:
                checks, sanity[name] = _sanity_checks(
                    model, batch, classes, name, metrics, copy=self.copy, layer=settings.layer, preprocess=counter,
                    score=settings.score, seed=settings.seed, batch_size=batch_size,
                    randomisation_steps=settings.randomisation_steps, smooth_samples=settings.smooth_samples,
                    noise=settings.noise)
            else:
                checks, sanity[name] = _control_checks(maps[name], metrics)
            values[name].update(checks)
        self._count("sanity", start)

        records = []
        for n in range(count):
            record = {
                "name": names[n], "target": int(classes[n]), "score": _number(top_scores[n]),
                "values": {name: {m: _number(v[n]) for m, v in by_metric.items()} for name, by_metric in values.items()},
                "curves": {metric: {name: _numbers(curve[n]) for name, curve in by_row.items()}
                           for metric, by_row in curves.items()},
                "randomisation": {name: _image_entry(entry, n) for name, entry in sanity.items()},
            }
            if self.thumbnails:
                from gradcam.reporting.page import thumbnails  # matplotlib: only when a page is made

                record["thumbnails"] = thumbnails(batch[n], {name: maps[name][n] for name in row_names})
            records.append(record)
        return records


def _layer_name(engine) -> str | None:
    layer = getattr(engine, "layer", None)
    return layer if isinstance(layer, str) else None


def _image_entry(entry: dict, n: int) -> dict:
    """Image ``n``'s part of a row's sanity-check entry."""
    found = {}
    if "randomisation" in entry:
        found["randomisation"] = {"layers": entry["randomisation"]["layers"],
                                  **{key: [column[n] for column in entry["randomisation"][key]]
                                     for key in ("spearman", "ssim")}}
    if "efficient_mprt" in entry:
        found["efficient_mprt"] = {key: column[n] for key, column in entry["efficient_mprt"].items()}
    return found


def _row_entry(records, name: str) -> dict:
    """A row's sanity-check entry of ``report.json``, from the images' records."""
    entries = [record["randomisation"][name] for record in records]
    found = {}
    if entries and "randomisation" in entries[0]:
        first = entries[0]["randomisation"]
        found["randomisation"] = {
            "layers": first["layers"],
            **{key: [[entry["randomisation"][key][s] for entry in entries] for s in range(len(first[key]))]
               for key in ("spearman", "ssim")}}
    if entries and "efficient_mprt" in entries[0]:
        found["efficient_mprt"] = {key: [entry["efficient_mprt"][key] for entry in entries]
                                   for key in entries[0]["efficient_mprt"]}
    return found


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def summarise(settings: StudySettings, rows, model_name: str, records, passes, skipped=()) -> dict:
    """A report's numbers, from the records of its images.

    Args:
        settings: the report's :class:`StudySettings`.
        rows: the report's rows (:attr:`Study.rows`): ``name``, ``kind`` and ``layer``
            of each method, then of each control.
        model_name: the model's name, for the report's settings.
        records: the images' records (:meth:`Study.images`), in the report's order.
        passes: the forward passes by :data:`PASS_PARTS` (:attr:`Study.passes`, or the
            sum over the studies that made the records).
        skipped: the files that could not be read: ``{"path", "error"}``. Defaults to ``()``.

    Returns:
        The report as a dict of JSON values (see :doc:`/docs/report` for its schema), with
        the gallery's thumbnails (where the records hold them) under the private key
        ``"_thumbnails"``.

    Raises:
        ValueError: no record.

    Example:
        >>> data = summarise(study.settings, study.rows, model.name, records, study.passes)
    """
    metrics = settings.metrics
    records = list(records)
    if not records:
        listed = "; ".join(f"{s['path']} ({s['error']})" for s in skipped) or "no image given"
        raise ValueError(f"report needs at least one readable image; {listed}.")
    row_names = [row["name"] for row in rows]
    values = {name: {m: _array([record["values"][name][m] for record in records]) for m in metrics}
              for name in row_names}
    curves = {metric: {name: np.array([[np.nan if v is None else v for v in record["curves"][metric][name]]
                                       for record in records]) for name in row_names}
              for metric in records[0]["curves"]}
    passes = dict(passes)
    passes["total"] = sum(passes[part] for part in PASS_PARTS)
    seed, confidence, resamples = settings.seed, settings.confidence, settings.resamples
    summary = {
        name: {metric: bootstrap_interval(values[name][metric], confidence=confidence, resamples=resamples,
                                          seed=seed)._asdict() for metric in metrics}
        for name in row_names
    }
    bands = {
        metric: {name: dict(zip(("mean", "low", "high"), map(_numbers, bootstrap_band(
            curve, confidence=confidence, resamples=resamples, seed=seed)))) for name, curve in by_row.items()}
        for metric, by_row in curves.items()
    }
    comparisons = _compare(values, rows, metrics, settings.test, resamples, seed)
    failed = _sanity_failures(summary, rows, metrics)
    data = {
        "schema": "gradcam.report/1",
        "settings": {
            "model": model_name, "methods": list(settings.methods),
            "controls": [r["name"] for r in rows if r["kind"] == "control"],
            "metrics": list(metrics), "steps": settings.steps, "baseline": _number(np.mean(settings.baseline)),
            "randomisation_steps": settings.randomisation_steps, "smooth_samples": settings.smooth_samples,
            "noise": settings.noise, "seed": seed, "resamples": resamples, "confidence": confidence,
            "test": settings.test, "score": settings.score,
        },
        "metrics": {m: {"label": METRICS[m].label, "higher_is_better": METRICS[m].higher_is_better,
                        "sanity_check": METRICS[m].sanity} for m in metrics},
        "images": [{"name": record["name"], "target": record["target"], "score": record["score"]}
                   for record in records],
        "skipped": list(skipped),
        "rows": rows,
        "values": {name: {m: _numbers(v) for m, v in by_metric.items()} for name, by_metric in values.items()},
        "summary": {name: {m: {k: (_number(v) if k != "n" else int(v)) for k, v in s.items()}
                           for m, s in by_metric.items()} for name, by_metric in summary.items()},
        "comparisons": comparisons,
        "sanity_failures": failed,
        "curves": bands,
        "randomisation": {name: _row_entry(records, name) for name in row_names},
        "forward_passes": passes,
        "notes": [],
    }
    data["verdict"] = verdict(data)
    if all("thumbnails" in record for record in records):
        data["_thumbnails"] = [record["thumbnails"] for record in records]
    return data


def run_study(model, images, *, targets=None, preprocess=None, thumbnails: bool = False, **options) -> dict:
    """Compute a report's numbers (what :func:`gradcam.reporting.report` writes as ``report.json``).

    The images are studied ``batch_size`` at a time (:class:`Study`), then summarised
    (:func:`summarise`).

    Args:
        model, images, targets, preprocess: as for :func:`gradcam.reporting.report`.
        thumbnails: whether to make the gallery's thumbnails (for the page). Defaults to
            ``False``.
        **options: the other arguments of :func:`gradcam.reporting.report` except
            ``out`` (:func:`study_settings`).

    Returns:
        The report as a dict of JSON values (see :doc:`/docs/report` for its schema), with
        the thumbnails, when made, under the private key ``"_thumbnails"``.
    """
    settings = study_settings(model, **options)
    batch, names, skipped = load_images(images, settings.image_shape)
    classes = None if targets is None else check_targets(targets, model_info(model).num_classes, len(batch))
    study = Study(model, settings, preprocess=preprocess, thumbnails=thumbnails)
    records = []
    for start in range(0, len(batch), settings.batch_size):
        part = slice(start, start + settings.batch_size)
        records += study.images(batch[part], names[part], None if classes is None else classes[part])
    return summarise(settings, study.rows, model.name, records, study.passes, skipped)


def _randomisation_entry(layers, heatmaps) -> tuple[np.ndarray, dict]:
    """The cascading test's correlations with the first map, and its entry of the JSON."""
    correlations = np.stack([spearman(heatmaps[:, 0], heatmaps[:, s]) for s in range(heatmaps.shape[1])], 1)
    similarity = np.stack([ssim(heatmaps[:, 0], heatmaps[:, s]) for s in range(heatmaps.shape[1])], 1)
    return correlations[:, -1], {
        "layers": ["(trained)", *layers],
        "spearman": [_numbers(column) for column in correlations.T],
        "ssim": [_numbers(column) for column in similarity.T],
    }


def _sanity_checks(model, batch, classes, method, metrics, *, randomisation_steps, smooth_samples, noise,
                   **common) -> tuple[dict, dict]:
    """The sanity checks of one method, from one cascade down to the fully randomised model.

    The maps are recorded after the first ``randomisation_steps`` steps (the cascading
    test) and after the last (Efficient MPRT), and smoothed before the first step and
    after the last (Smooth MPRT): the same maps, from the same random weights and noise,
    as :func:`~gradcam.metrics.randomisation`, :func:`~gradcam.metrics.smooth_mprt`
    (``every_step=False``) and :func:`~gradcam.metrics.efficient_mprt` compute apart.
    """
    wanted = [m for m in SANITY_METRICS if m in metrics]
    if not wanted:
        return {}, {}
    record = set(range(randomisation_steps)) if "randomisation" in metrics else set()
    record |= {-1} if {"smooth_mprt", "efficient_mprt"} & set(metrics) else set()
    smooth = smoother(smooth_samples, noise, common["seed"]) if "smooth_mprt" in metrics else None
    state = {}

    def explain(engine, images, targets, batch_size):
        if smooth is not None and not state:  # the trained model's smoothed maps
            state.update(engine=engine, call=(images, targets, batch_size), trained=smooth(engine, images, targets,
                                                                                          batch_size))
        return engine.heatmaps(images, targets, batch_size)[:, 0]

    layers, heatmaps, _ = cascade(model, batch, classes, method=method, explain=explain, record=record, **common)
    # heatmaps: the trained model's maps, then those after the recorded steps in order: the
    # first randomisation_steps steps, then (where not among them) the last.
    values, entry = {}, {}
    if "randomisation" in metrics:
        shown = min(randomisation_steps, len(layers))
        values["randomisation"], entry["randomisation"] = _randomisation_entry(layers[:shown],
                                                                               heatmaps[:, : shown + 1])
    if "smooth_mprt" in metrics:  # the engine's copy of the model is now fully randomised
        values["smooth_mprt"] = spearman(state["trained"], smooth(state["engine"], *state["call"]))
    if "efficient_mprt" in metrics:
        rise, before, after = complexity_rise(heatmaps[:, 0], heatmaps[:, -1])
        values["efficient_mprt"] = rise
        entry["efficient_mprt"] = {"complexity": _numbers(before), "randomised_complexity": _numbers(after)}
    return values, entry


def _control_checks(heat, metrics) -> tuple[dict, dict]:
    """A model-free control's sanity checks: its maps are the same for any weights."""
    values, entry = {}, {}
    if "randomisation" in metrics:
        values["randomisation"], entry["randomisation"] = _randomisation_entry((), heat[:, None])
    if "smooth_mprt" in metrics:
        values["smooth_mprt"] = spearman(heat, heat)
    if "efficient_mprt" in metrics:
        values["efficient_mprt"] = complexity_rise(heat, heat)[0]
    return values, entry


def _better(metric: str, a: float, b: float) -> bool:
    return a > b if METRICS[metric].higher_is_better else a < b


def _compare(values, rows, metrics, test, resamples, seed) -> dict:
    """Per metric: the best method, the runner-up among the methods, their paired test,
    and the controls each method does not beat (mean no better than the control's)."""
    methods = [r["name"] for r in rows if r["kind"] == "method"]
    controls = [r["name"] for r in rows if r["kind"] == "control"]
    found = {}
    for metric in metrics:
        means = {name: np.nanmean(values[name][metric]) if np.isfinite(values[name][metric]).any() else np.nan
                 for name in methods + controls}
        ranked = sorted((m for m in methods if np.isfinite(means[m])), key=lambda m: means[m],
                        reverse=METRICS[metric].higher_is_better)
        entry = {"ranking": ranked, "best": ranked[0] if ranked else None, "runner_up": None, "test": None,
                 "difference": None, "p_value": None, "n": 0}
        if len(ranked) > 1:
            result = paired_test(values[ranked[0]][metric], values[ranked[1]][metric], test=test,
                                 resamples=resamples, seed=seed)
            entry.update(runner_up=ranked[1], test=result.test, difference=_number(result.difference),
                         p_value=_number(result.p_value), n=result.n)
        entry["not_beating_controls"] = {
            m: [c for c in controls if np.isfinite(means[c]) and not _better(metric, means[m], means[c])]
            for m in methods
        }
        found[metric] = entry
    return found


def _sanity_failures(summary, rows, metrics) -> dict:
    """The rows that fail a sanity check, with the check's name and mean."""
    failed = {}
    for row in rows:
        name, reasons = row["name"], []
        for metric in ("randomisation", "smooth_mprt"):
            mean = summary[name].get(metric, {}).get("mean") if metric in metrics else None
            if mean is not None and np.isfinite(mean) and mean >= SANITY_CORRELATION:
                reasons.append(metric)
        if "efficient_mprt" in metrics:
            mean = summary[name]["efficient_mprt"]["mean"]
            if mean is not None and np.isfinite(mean) and mean <= 0:
                reasons.append("efficient_mprt")
        if reasons:
            failed[name] = reasons
    return failed


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _ranking_sentence(data, metric: str, entry: dict) -> str:
    info, label = data["metrics"][metric], data["metrics"][metric]["label"]
    direction = f"{label} ({'higher' if info['higher_is_better'] else 'lower'} is better)"
    if entry["best"] is None:
        return f"{label}: no method has a value on these images."
    mean = data["summary"][entry["best"]][metric]["mean"]
    if entry["runner_up"] is None:
        return f"{direction}: {entry['best']} scores {_fmt(mean)}."
    if not entry["difference"]:
        return f"{direction}: {entry['best']} and {entry['runner_up']} tie at {_fmt(mean)} over {entry['n']} images."
    significant = entry["p_value"] is not None and entry["p_value"] < 0.05
    return (
        f"{direction}: {entry['best']} ranks first with {_fmt(mean)}, "
        f"{_fmt(abs(entry['difference']))} {'above' if info['higher_is_better'] else 'below'} "
        f"{entry['runner_up']} over {entry['n']} images; the difference is "
        f"{'significant' if significant else 'not significant'} ({entry['test']}, p = {_fmt(entry['p_value'])})."
    )


def verdict(data) -> list[str]:
    """The report's conclusions in sentences, from its numbers.

    One sentence per metric (which method ranks first, by how much over the second,
    and whether the paired test finds the difference significant at the 5% level), one
    per method that does not beat a control, one per row that fails a sanity check.
    """
    sentences = []
    for metric, entry in data["comparisons"].items():
        info = data["metrics"][metric]
        sentences.append(_ranking_sentence(data, metric, entry))
        for method, controls in entry["not_beating_controls"].items():
            if controls and not info["sanity_check"]:
                sentences.append(f"On {info['label']}, {method} does not beat the control"
                                 f"{'s' if len(controls) > 1 else ''} {', '.join(controls)}.")
    labels = {m: data["metrics"][m]["label"] for m in data["metrics"]}
    for name, reasons in data["sanity_failures"].items():
        kind = next(r["kind"] for r in data["rows"] if r["name"] == name)
        sentences.append(f"{name} ({kind}) fails the sanity check{'s' if len(reasons) > 1 else ''} "
                         f"{', '.join(labels[r] for r in reasons)}: its maps do not depend enough on the model's weights.")
    for skipped in data["skipped"]:
        sentences.append(f"Skipped {skipped['path']}: {skipped['error'].rstrip('.')}.")
    return sentences + list(data["notes"])
