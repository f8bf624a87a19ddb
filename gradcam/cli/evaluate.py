"""``gradcam evaluate``: stream image files through the engines, score each map with the
perturbation metrics of :mod:`gradcam.metrics`, write ``metrics.csv``
(:func:`gradcam.batch.evaluate_files`) and print the mean of each method and metric.

The checks, the set-up and the run are those shared with ``gradcam explain``
(:func:`gradcam.cli.stream.run_command`).
"""

from __future__ import annotations

import functools
import math

from gradcam.cli.arguments import DEFAULT_METRICS, UsageError
from gradcam.cli.stream import StreamCommand, plural, run_command, run_time, say
from gradcam.io.outputs import EVALUATION_FILES
from gradcam.batch import EvaluationReport, RunSettings, evaluate_files

#: The metrics that take ``steps``.
STEPPED_METRICS = ("deletion", "insertion")
#: The model's forward passes of each metric on one map, given the options: ``steps + 1``
#: images for deletion and insertion, the image and the map-weighted image for average
#: drop and increase in confidence, the image and its nine percentiles for ROAD.
METRIC_PASSES = {
    "deletion": lambda args: args.steps + 1,
    "insertion": lambda args: args.steps + 1,
    "average_drop": lambda args: 2,
    "increase_in_confidence": lambda args: 2,
    "road_morf": lambda args: 10,
    "road_lerf": lambda args: 10,
}

#: The ``--metric`` names of ROAD (:func:`gradcam.metrics.road`), by its order.
ROAD_ORDERS = {"road_morf": "morf", "road_lerf": "lerf"}


def road_mean(model, docs, heatmaps, targets, *, order: str, **options):
    """ROAD in one ``order``, one number per image: its mean score over the default
    percentiles (10% to 90% of the pixels removed), the area under its curve."""
    from gradcam import metrics

    return metrics.road(model, docs, heatmaps, targets, order=order, **options).mean(axis=1)


def metric_names(args, default=DEFAULT_METRICS) -> list[str]:
    """The ``--metric`` names, in order (``default``: the command's,
    :data:`~gradcam.cli.arguments.DEFAULT_METRICS` for ``evaluate``, when none is given).

    Raises:
        UsageError: a name given twice.
    """
    names = list(args.metric or default)
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"--metric: {name!r} is given twice.")
    return names


def metric_functions(args) -> dict:
    """The function of each ``--metric``, with ``--steps`` and ``--metric-batch-size``
    bound: ``metric(model, images, heatmaps, targets, preprocess=...)``.

    Raises:
        UsageError: a name given twice.
    """
    from gradcam import metrics

    batch_size = args.metric_batch_size or args.batch_size
    functions = {}
    for name in metric_names(args):
        options = {"batch_size": batch_size}
        if name in STEPPED_METRICS:
            options["steps"] = args.steps
        if name in ROAD_ORDERS:
            functions[name] = functools.partial(road_mean, order=ROAD_ORDERS[name], **options)
        else:
            functions[name] = functools.partial(getattr(metrics, name), **options)
    return functions


def format_means(means: dict, methods, metrics) -> str:
    """The summary table: one row per method, one column per metric, each the mean over
    the images and targets (``means[(method, metric)]``, NaN where missing).

    Example:
        >>> print(format_means(report.means, ["gradcam"], ["deletion", "insertion"]))
        method      deletion  insertion
        gradcam       0.1235     0.6021
        mean over 2 images (1 target each)
    """
    width = max(len("method"), *(len(m) for m in methods))
    columns = [max(len(metric), 9) for metric in metrics]
    lines = [f"{'method':<{width}}  " + "  ".join(f"{m:>{c}}" for m, c in zip(metrics, columns))]
    for method in methods:
        values = [means.get((method, metric), math.nan) for metric in metrics]
        lines.append(f"{method:<{width}}  " + "  ".join(f"{v:>{c}.4f}" for v, c in zip(values, columns)))
    return "\n".join(lines)


class Evaluate(StreamCommand):
    """``gradcam evaluate``: ``metrics.csv`` and the table of means."""

    name = "evaluate"
    doing = "evaluating"
    recorded_options = ("metric", "steps")
    run_files = EVALUATION_FILES
    overlays = False
    empty_maps_where = "scored as they are in metrics.csv"

    def check(self, args) -> None:
        """Check the ``--metric`` names."""
        metric_names(args)

    def settings(self, args, image_shape, preprocess, targets) -> RunSettings:
        return RunSettings(image_shape=image_shape, preprocess=preprocess, targets=targets,
                           batch_size=args.batch_size, overlays=False, eigen_smooth=args.eigen_smooth,
                           aug_smooth=args.aug_smooth)

    def memory_batch_size(self, args) -> int | None:
        return args.metric_batch_size

    def recorded_defaults(self, args) -> dict:
        return {"metric": metric_names(args)}

    def passes_per_map(self, args) -> int:
        return sum(METRIC_PASSES[name](args) for name in metric_names(args))

    def work(self, args, setup, inputs, folder, progress, journal):
        return evaluate_files(setup.engines, inputs, folder, setup.settings, metric_functions(args),
                              progress=progress, journal=journal)

    def summary(self, args, setup, report: EvaluationReport) -> None:
        names = metric_names(args)
        failed = f"; {len(report.failed)} failed (listed in metrics.csv)" if report.failed else ""
        say(args, f"gradcam: evaluated {report.ok} of {plural(report.total, 'image')} with {', '.join(names)}"
            f"{run_time(report)}{failed}. Values in {args.out}/{EVALUATION_FILES[0]}")
        targets = setup.settings.targets_per_image
        print(format_means(report.means, setup.header["methods"], names))
        print(f"mean over {report.ok} images ({targets} target{'s' if targets > 1 else ''} each)")


def run(args) -> int:
    """``gradcam evaluate``: run the pipeline, print the table, return the exit status.

    Raises:
        UsageError: a bad option, model, layer, target, class-names file or input, an
            output folder in use or in the way, or not enough memory.
    """
    return run_command(Evaluate(), args)
