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
from gradcam.methods.factory import build_engine
from gradcam.methods.registry import METHOD_NAMES
from gradcam.metrics.confidence import drop_from_scores, increase_from_scores, masked_scores
from gradcam.metrics.model_randomisation import cascade, spearman, ssim
from gradcam.metrics.perturbation import _check_baseline, blur, deletion, insertion
from gradcam.metrics.sanity_checks import complexity_rise, smoother
from gradcam.metrics.scoring import check_targets, perturbed_scores
from gradcam.reporting.controls import CONTROLS, RANDOM_METHOD
from gradcam.reporting.statistics import TESTS, bootstrap_band, bootstrap_interval, paired_test


@dataclass(frozen=True)
class MetricInfo:
    """How a report shows a metric: its label, which way is better, its family."""

    label: str
    higher_is_better: bool
    sanity: bool = False


#: The metrics a report can compute, by name.
METRICS = {
    "deletion": MetricInfo("Deletion (AUC)", False),
    "insertion": MetricInfo("Insertion (AUC)", True),
    "average_drop": MetricInfo("Average drop", False),
    "increase_in_confidence": MetricInfo("Increase in confidence", True),
    "randomisation": MetricInfo("Randomisation (Spearman, last step)", False, sanity=True),
    "smooth_mprt": MetricInfo("Smooth MPRT (Spearman)", False, sanity=True),
    "efficient_mprt": MetricInfo("Efficient MPRT (complexity rise)", True, sanity=True),
}
DEFAULT_METRICS = tuple(METRICS)
DEFAULT_METHODS = ("gradcam", "gradcam++", "layercam")
DEFAULT_CONTROLS = ("randomcam", "gaussian", "sobel")
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


def run_study(model, images, *, methods=DEFAULT_METHODS, metrics=DEFAULT_METRICS, controls=DEFAULT_CONTROLS,
              targets=None, layer=None, preprocess=None, score: str = "auto", steps: int = 50, baseline=0.0,
              randomisation_steps: int = 5, smooth_samples: int = 10, noise: float = 0.1, seed: int = 0,
              resamples: int = 10000, confidence: float = 0.95, test: str = "wilcoxon", batch_size: int = 32,
              image_shape=None) -> dict:
    """Compute a report's numbers (what :func:`gradcam.reporting.report` writes as ``report.json``).

    It takes the arguments of :func:`gradcam.reporting.report` except ``out``.

    Returns:
        The report as a dict of JSON values (see :doc:`/docs/report` for its schema), with
        the maps and thumbnails' inputs under the private key ``"_arrays"``.
    """
    info = model_info(model)
    methods = _check_names(methods, METHOD_NAMES, "method")
    if not methods:
        raise ValueError("report needs at least one method; got none.")
    metrics = _check_names(metrics, tuple(METRICS), "metric")
    controls = _check_names(controls, DEFAULT_CONTROLS, "control")
    steps = check_positive_int(steps, "steps")
    randomisation_steps = check_positive_int(randomisation_steps, "randomisation_steps")
    seed = check_seed(seed)
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(map(repr, TESTS))}; got {test!r}.")
    if "average_drop" in metrics and info.softmax is None:
        raise ValueError(
            f"average_drop needs a model that ends in a softmax (a probability to lose a share of); "
            f"model {model.name!r} does not. Leave it out: metrics={[m for m in metrics if m != 'average_drop']}."
        )
    if image_shape is None:
        image_shape = tuple(d for d in info.input_shape[1:3]) if None not in info.input_shape[1:3] else (224, 224)
    batch, names, skipped = load_images(images, image_shape)
    count = len(batch)
    counter = PassCounter(preprocess)
    passes = {}

    rows, maps = [], {}
    notes = []
    model_rows = [(name, "method") for name in methods]
    model_rows += [(RANDOM_METHOD, "control")] if RANDOM_METHOD in controls else []
    wanted = None if targets is None else check_targets(targets, info.num_classes, count)[:, None]
    start = counter.count
    top_scores = None
    for name, kind in model_rows:
        engine = build_engine(model, name, layer=layer, score=score, preprocess=counter)
        result = engine.compute(batch, wanted, batch_size)
        if wanted is None:
            wanted = result.targets[:, :1]
        if top_scores is None:
            top_scores = result.probas[:, 0] if result.probas is not None else result.scores[:, 0]
        maps[name] = result.heatmaps[:, 0]
        layer_name = engine.layer if isinstance(getattr(engine, "layer", None), str) else None
        rows.append({"name": name, "kind": kind, "layer": layer_name})
    passes["maps"] = counter.count - start
    for name in controls:
        if name in CONTROLS:
            maps[name] = CONTROLS[name](batch)
            rows.append({"name": name, "kind": "control", "layer": None})
    classes = wanted[:, 0].astype(np.int32)
    row_names = [row["name"] for row in rows]

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
        fill = _check_baseline(baseline, batch.shape[1:])
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
    passes["shared"] = counter.count - start

    values = {name: {} for name in row_names}
    curves = {}
    start = counter.count
    for name in row_names:
        heat = maps[name]
        if "deletion" in metrics:
            area, curve = deletion(model, batch, heat, classes, preprocess=counter, batch_size=batch_size, steps=steps,
                                   baseline=baseline, return_curves=True,
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
            unmasked, masked = masked_scores(model, batch, heat, classes, preprocess=counter, batch_size=batch_size,
                                             known_scores={0: shared["original"]})
            if "average_drop" in metrics:
                values[name]["average_drop"] = drop_from_scores(unmasked, masked)
            if "increase_in_confidence" in metrics:
                values[name]["increase_in_confidence"] = increase_from_scores(unmasked, masked)
    passes["metrics"] = counter.count - start

    # Sanity checks: the methods' maps of randomised copies (one cascade per method serves
    # the three checks); a control's maps do not depend on the model, so its randomised
    # maps are its maps.
    start = counter.count
    sanity = {}
    for row in rows:
        name = row["name"]
        if name in dict(model_rows):
            checks, entry = _sanity_checks(model, batch, classes, name, metrics, layer=layer, preprocess=counter,
                                           score=score, seed=seed, batch_size=batch_size,
                                           randomisation_steps=randomisation_steps, smooth_samples=smooth_samples,
                                           noise=noise)
        else:
            checks, entry = _control_checks(maps[name], metrics)
        values[name].update(checks)
        sanity[name] = entry
    passes["sanity"] = counter.count - start
    passes["total"] = counter.count

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
    comparisons = _compare(values, rows, metrics, test, resamples, seed)
    failed = _sanity_failures(summary, rows, metrics)
    data = {
        "schema": "gradcam.report/1",
        "settings": {
            "model": model.name, "methods": list(methods), "controls": [r["name"] for r in rows if r["kind"] == "control"],
            "metrics": list(metrics), "steps": steps, "baseline": _number(np.mean(baseline)),
            "randomisation_steps": randomisation_steps, "smooth_samples": smooth_samples, "noise": noise,
            "seed": seed, "resamples": resamples, "confidence": confidence, "test": test, "score": score,
        },
        "metrics": {m: {"label": METRICS[m].label, "higher_is_better": METRICS[m].higher_is_better,
                        "sanity_check": METRICS[m].sanity} for m in metrics},
        "images": [
            {"name": names[n], "target": int(classes[n]),
             "score": None if top_scores is None else _number(top_scores[n])}
            for n in range(count)
        ],
        "skipped": skipped,
        "rows": rows,
        "values": {name: {m: _numbers(v) for m, v in by_metric.items()} for name, by_metric in values.items()},
        "summary": {name: {m: {k: (_number(v) if k != "n" else int(v)) for k, v in s.items()}
                           for m, s in by_metric.items()} for name, by_metric in summary.items()},
        "comparisons": comparisons,
        "sanity_failures": failed,
        "curves": bands,
        "randomisation": sanity,
        "forward_passes": passes,
        "notes": notes,
    }
    data["verdict"] = verdict(data)
    data["_arrays"] = {"images": batch, "maps": maps}
    return data


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
    wanted = [m for m in ("randomisation", "smooth_mprt", "efficient_mprt") if m in metrics]
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
        sentences.append(f"Skipped {skipped['path']}: {skipped['error']}.")
    return sentences + list(data["notes"])
