"""Choose a method by evidence: every method and control, every metric, one page.

``gradcam.report(model, images, ...)`` runs each method, scores its maps with each
metric (sharing the forward passes that several need), adds confidence intervals, paired
tests, sanity checks and controls, and writes ``report.json``, a self-contained
``report.html`` and the per-image ``metrics.csv``; ``gradcam.report`` is
:func:`gradcam.reporting.report`.

Modules: :mod:`~gradcam.reporting.catalogue` (the metrics, methods and controls a report can
have), :mod:`~gradcam.reporting.statistics` (bootstrap intervals, paired tests),
:mod:`~gradcam.reporting.controls` (model-free maps), :mod:`~gradcam.reporting.study` (the
numbers), :mod:`~gradcam.reporting.page` (the HTML page).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gradcam.reporting.catalogue import DEFAULT_CONTROLS, DEFAULT_METHODS, DEFAULT_METRICS, METRICS


def report(model, images, methods=DEFAULT_METHODS, metrics=DEFAULT_METRICS, *, out=None, controls=DEFAULT_CONTROLS,
           targets=None, layer=None, preprocess=None, score: str = "auto", steps: int = 50, baseline=0.0,
           randomisation_steps: int = 5, smooth_samples: int = 10, noise: float = 0.1, seed: int = 0,
           resamples: int = 10000, confidence: float = 0.95, test: str = "wilcoxon", batch_size: int = 32,
           image_shape=None) -> dict:
    """Compare methods on a model and images, with evidence: a report.

    Each method's maps are scored by each metric on every image; each row of the report
    (a method, or a control: ``randomcam``, a centred Gaussian, the
    image's Sobel edges) gets, per metric, the mean of the per-image values (exactly
    the mean of what the :mod:`gradcam.metrics` function returns for those maps), its
    percentile bootstrap confidence interval and the number of images. For each metric
    the best method is tested against the second by a paired test over the images.
    Sanity checks: cascading randomisation of the top ``randomisation_steps`` layers
    (Spearman and SSIM per layer), Smooth MPRT and Efficient MPRT of the fully
    randomised model.

    Forward passes are shared: the classes to explain come from the first method's run;
    the scores of each image, of the all-baseline image and of the blurred image are
    measured once (``known_scores`` of :func:`~gradcam.metrics.deletion` and
    :func:`~gradcam.metrics.insertion`), and one masked image per map serves both average
    drop and increase in confidence.

    Args:
        model: a Keras classifier (a Functional or Sequential one for the sanity checks).
        images: an array ``(N, H, W, C)`` (raw when ``preprocess`` is given), or file
            paths (loaded with :func:`gradcam.image_from_path`; unreadable files are
            listed in the report and skipped).
        methods: names of :data:`gradcam.METHODS`. Defaults to
            ``("gradcam", "gradcam++", "layercam")``.
        metrics: names among ``"deletion"``, ``"insertion"``, ``"average_drop"``,
            ``"increase_in_confidence"``, ``"randomisation"``, ``"smooth_mprt"`` and
            ``"efficient_mprt"``. Defaults to all of them.
        out: a folder to write ``report.json``, ``report.html`` and ``metrics.csv``
            into (created if missing; see :func:`write`), or ``None`` to write nothing.
            Defaults to ``None``.
        controls: among ``"randomcam"``, ``"gaussian"`` and ``"sobel"``. Defaults to all.
        targets: ``None`` (each image's top prediction), one class for all images, or
            one per image. Defaults to ``None``.
        layer: the layer the methods explain. Defaults to ``None`` (automatic).
        preprocess: the model's preprocessing. Defaults to ``None``.
        score: the score the methods explain. Defaults to ``"auto"``.
        steps: deletion and insertion steps. Defaults to ``50``.
        baseline: the value deleted pixels take. Defaults to ``0.0``.
        randomisation_steps: layers randomised in the cascading test. Defaults to ``5``.
        smooth_samples: noisy copies per map in Smooth MPRT. Defaults to ``10``.
        noise: Smooth MPRT's noise, a fraction of each image's range. Defaults to ``0.1``.
        seed: seeds the bootstrap, the noise and the random weights. Defaults to ``0``.
        resamples: bootstrap resamples. Defaults to ``10000``.
        confidence: the intervals' level. Defaults to ``0.95``.
        test: ``"wilcoxon"`` or ``"bootstrap"``. Defaults to ``"wilcoxon"``.
        batch_size: images through the model at once, and studied together: each batch
            of images is studied in turn, and only the intervals, tests and verdict look
            at them all (Smooth MPRT draws its noise per batch). Defaults to ``32``.
        image_shape: ``(height, width)`` files are loaded at; ``None`` takes the model's
            input size (224 x 224 where it has none). Defaults to ``None``.

    Returns:
        The report's numbers, as written to ``report.json`` (see :doc:`/docs/report`).

    Raises:
        ValueError: an unknown method, metric or control; no readable image;
            ``average_drop`` for a model that does not end in a softmax; and what the
            methods and metrics raise for their arguments.

    Example:
        >>> numbers = gradcam.report(model, paths, methods=["gradcam", "layercam"],
        ...                          preprocess=preprocess_input, out="report")  # doctest: +SKIP
        >>> numbers["verdict"][0]  # doctest: +SKIP
        'Deletion (AUC) (lower is better): layercam ranks first with ...'
    """
    from gradcam.reporting.study import run_study  # Keras: only when a report is made

    data = run_study(model, images, methods=methods, metrics=metrics, controls=controls, targets=targets, layer=layer,
                     preprocess=preprocess, score=score, steps=steps, baseline=baseline,
                     randomisation_steps=randomisation_steps, smooth_samples=smooth_samples, noise=noise, seed=seed,
                     resamples=resamples, confidence=confidence, test=test, batch_size=batch_size,
                     image_shape=image_shape, thumbnails=out is not None)
    if out is not None:
        write(data, out)
    return {key: value for key, value in data.items() if not key.startswith("_")}


def write(data, out) -> tuple[Path, Path, Path]:
    """Write ``report.json``, ``report.html`` and ``metrics.csv`` into the folder ``out``.

    ``metrics.csv`` has the columns of ``gradcam evaluate``'s (``path, method, metric,
    target, target_name, value, error``): one row per image, row of the report and
    metric, in that order; an empty value where a metric has none (NaN).

    Args:
        data: what :func:`gradcam.reporting.study.run_study` returns, with the thumbnails.
        out: the folder (created if missing).

    Returns:
        The paths of the three files.
    """
    from gradcam.io.evaluation import METRICS_COLUMNS
    from gradcam.reporting.page import render_page  # matplotlib: only when a page is written

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    numbers = {key: value for key, value in data.items() if not key.startswith("_")}
    json_path, html_path, csv_path = folder / "report.json", folder / "report.html", folder / "metrics.csv"
    json_path.write_text(json.dumps(numbers, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    html_path.write_text(render_page(data), encoding="utf-8")
    with open(csv_path, "w", newline="", encoding="utf-8") as file:
        rows = csv.writer(file)
        rows.writerow(METRICS_COLUMNS)
        for n, image in enumerate(numbers["images"]):
            for row in numbers["rows"]:
                for metric, values in numbers["values"][row["name"]].items():
                    value = values[n]
                    rows.writerow([image["name"], row["name"], metric, image["target"], "",
                                   "" if value is None else repr(value), ""])
    return json_path, html_path, csv_path


__all__ = ["DEFAULT_CONTROLS", "DEFAULT_METHODS", "DEFAULT_METRICS", "METRICS", "report", "write"]
