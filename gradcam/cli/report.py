"""``gradcam report``: which method to trust, on the user's model and image files.

The images are studied ``--batch-size`` at a time (:class:`gradcam.reporting.study.Study`):
each image's values, curves, sanity checks and thumbnails are recorded in the run's
journal as soon as its batch is done, and ``report.html``, ``report.json`` and
``metrics.csv`` are written from all the records at the end
(:func:`gradcam.reporting.study.summarise`, :func:`gradcam.reporting.write`), so an
interrupted run resumes (``--resume``) without studying its finished images again and
gives the report an uninterrupted run gives.

The batches are cut from the whole list of inputs, not from those left: a resumed run
studies the same batches, so that Smooth MPRT, whose noise is drawn per batch, gives the
same values. The checks, the set-up and the run are those shared with ``gradcam explain``
(:func:`gradcam.cli.stream.run_command`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from gradcam.batch import RunReport, RunSettings
from gradcam.checks import one_line
from gradcam.cli.arguments import UsageError
from gradcam.cli.evaluate import format_means, metric_names
from gradcam.cli.messages import plural, say
from gradcam.cli.stream import StreamCommand, compile_engines, run_command, run_time
from gradcam.reporting.catalogue import DEFAULT_CONTROLS, DEFAULT_METRICS

#: The files a report writes in ``--out``.
REPORT_FILES = ("report.html", "report.json", "metrics.csv")
#: The sanity checks' default settings (those of :func:`gradcam.report`).
RANDOMISATION_STEPS, SMOOTH_SAMPLES = 5, 10


def report_metrics(args) -> list[str]:
    """The ``--metric`` names (all the report's when none is given).

    Raises:
        UsageError: a name given twice.
    """
    return metric_names(args, DEFAULT_METRICS)


def passes_per_image(args, methods: int) -> int:
    """The model's forward passes a report makes per image, about: each method's map and
    ``randomcam``'s; the image, the all-baseline and the blurred image once; per row
    (methods and controls) deletion's and insertion's inner steps and one masked image;
    per method and ``randomcam``, the sanity checks' maps (the cascade's steps, Smooth
    MPRT's noisy copies before and after, Efficient MPRT's last map)."""
    metrics = report_metrics(args)
    rows, models = methods + len(DEFAULT_CONTROLS), methods + 1
    per_row = (args.steps - 1) * sum(m in metrics for m in ("deletion", "insertion"))
    per_row += any(m in metrics for m in ("average_drop", "increase_in_confidence"))
    sanity = RANDOMISATION_STEPS * ("randomisation" in metrics) + 2 * SMOOTH_SAMPLES * ("smooth_mprt" in metrics)
    sanity += "efficient_mprt" in metrics
    return models + 3 + rows * per_row + models * sanity


@dataclass
class ReportRun(RunReport):
    """What a report's run did: a :class:`~gradcam.batch.RunReport`, and the report's
    numbers (``None`` when no image could be read)."""

    data: dict | None = None


def image_name(item) -> str:
    """An input's name in the report: its path inside the folder given, ``"sub/cat.jpg"``."""
    return item.name + os.path.splitext(item.path)[1]


class Report(StreamCommand):
    """``gradcam report``: ``report.html``, ``report.json`` and ``metrics.csv``.

    Attributes:
        study: the report's :class:`~gradcam.reporting.study.Study`, made by
            :meth:`prepare` during the set-up.
    """

    name = "report"
    doing = "studying"
    recorded_options = ("metric", "steps", "batch_size")
    run_files = REPORT_FILES
    overlays = False
    empty_maps_where = "scored as they are in the report"

    def check(self, args) -> None:
        """Check the ``--metric`` names, and that ``--target`` names at most one class."""
        report_metrics(args)
        if args.target and len(args.target) > 1:
            raise UsageError(f"--target: a report explains one class per image; got {len(args.target)} "
                             f"({', '.join(map(repr, args.target))}). Run one report per class.")

    def settings(self, args, image_shape, preprocess, targets) -> RunSettings:
        if targets and not isinstance(targets[0], (int, str)):
            raise UsageError(f"--target {args.target[0]!r}: a report explains a class (an index or a name).")
        return RunSettings(image_shape=image_shape, preprocess=preprocess, targets=targets,
                           batch_size=args.batch_size, overlays=False)

    def prepare(self, args, engines, image_shape, settings, targets) -> None:
        """Make the report's :class:`~gradcam.reporting.study.Study` and compile its engines.

        The study's engines make every map: on the copy of the model that the sanity
        checks randomise, each method's is compiled once for the maps and the checks. The
        set-up's engines (on the model itself) give the run its model, layer and classes
        and are never run, so each method is compiled once, not twice.

        Raises:
            UsageError: a ``--metric`` the model cannot give (``average_drop`` without a
                softmax).
        """
        from gradcam.reporting.study import Study, study_settings

        engine = engines[0]
        try:
            with_flags = study_settings(engine.model, methods=[e.name for e in engines], metrics=report_metrics(args),
                                        layer=engine.layer, score=args.score, steps=args.steps,
                                        batch_size=args.batch_size, image_shape=image_shape,
                                        randomisation_steps=RANDOMISATION_STEPS, smooth_samples=SMOOTH_SAMPLES)
        except ValueError as error:
            raise UsageError(f"--metric: {one_line(error)}") from None
        self.study = Study(engine.model, with_flags, preprocess=settings.preprocess, thumbnails=True)
        compile_engines(self.study.engines.values(), image_shape)

    def recorded_defaults(self, args) -> dict:
        return {"metric": report_metrics(args)}

    def passes_per_map(self, args) -> int:
        methods = len(args.method or ["gradcam"])
        return math.ceil((passes_per_image(args, methods) - methods) / methods)

    def work(self, args, setup, inputs, folder, progress, journal) -> ReportRun:
        from gradcam.image import image_from_path
        from gradcam.reporting import write
        from gradcam.reporting.study import summarise
        from gradcam.targets import resolve_targets

        start = time.perf_counter()
        engine, study = setup.engines[0], self.study
        model = engine.model
        target = setup.settings.targets[0] if setup.settings.targets else None
        classes = None if target is None else int(resolve_targets(target, engine.classes, 1)[0, 0])
        recorded = {record["path"] for record in journal.read_records()}
        resumed = len(journal.done)
        for first in range(0, len(inputs), args.batch_size):
            batch = inputs[first : first + args.batch_size]
            if all(item.path in recorded for item in batch):
                continue
            docs, readable, errors = [], [], {}
            for item in batch:
                try:
                    docs.append(image_from_path(item.path, image_shape=setup.settings.image_shape)[0])
                    readable.append(item)
                except (OSError, ValueError) as error:
                    errors[item.path] = f"{type(error).__name__}: {one_line(error)}"
            records, passes = [], dict(study.passes)
            if readable:
                targets = None if classes is None else np.full(len(readable), classes, np.int32)
                records = study.images(np.stack(docs), [image_name(item) for item in readable], targets)
            passes = {part: study.passes[part] - passes[part] for part in passes}
            by_path = dict(zip((item.path for item in readable), records))
            for item in batch:
                if item.path in recorded:
                    continue
                if item.path in errors:
                    journal.append({"path": item.path, "status": "failed", "error": errors[item.path]})
                    progress.message(f"gradcam: skipped: {item.path}: {errors[item.path]}")
                else:
                    journal.append({"path": item.path, "status": "ok", "batch": first, "passes": passes,
                                    "report": by_path[item.path]})
                progress.update(1, failed=item.path in errors)
        records = list(journal.records([item.path for item in inputs]))
        failed = [(record["path"], record["error"]) for record in records if record["status"] != "ok"]
        studied = [record for record in records if record["status"] == "ok"]
        if not studied:
            return ReportRun(total=len(inputs), failed=failed, seconds=time.perf_counter() - start, resumed=resumed)
        passes = {}
        for record in studied:  # each batch's passes once
            passes[record["batch"]] = record["passes"]
        total = {part: sum(batch[part] for batch in passes.values()) for part in study.passes}
        data = summarise(study.settings, study.rows, model.name, [record["report"] for record in studied], total,
                         [{"path": path, "error": error} for path, error in failed])
        for written in write(data, folder.temporary):  # complete files only, then in place
            os.replace(written, os.path.join(folder.path, written.name))
        journal.remove()
        return ReportRun(total=len(inputs), failed=failed, seconds=time.perf_counter() - start, resumed=resumed,
                         data=data)

    def summary(self, args, setup, report: ReportRun) -> None:
        data = report.data
        failed = f"; {len(report.failed)} could not be read (listed in the report)" if report.failed else ""
        if data is None:
            say(args, f"gradcam: no image of {plural(report.total, 'image')} could be read; no report written.")
            return
        say(args, f"gradcam: studied {report.ok} of {plural(report.total, 'image')}{run_time(report)}{failed}. "
            f"Report in {os.path.join(args.out, REPORT_FILES[0])}")
        for sentence in data["verdict"]:
            print(f"- {sentence}")
        rows = [row["name"] for row in data["rows"]]
        means = {(name, metric): math.nan if value["mean"] is None else value["mean"]
                 for name, by_metric in data["summary"].items() for metric, value in by_metric.items()}
        print(format_means(means, rows, list(data["metrics"])))
        print(f"mean over {report.ok} images")


def run(args) -> int:
    """``gradcam report``: study the images, write the report, print its verdict and table.

    Raises:
        UsageError: a bad option, model, layer, target, class-names file or input, an
            output folder in use or in the way, or not enough memory.
    """
    return run_command(Report(), args)
