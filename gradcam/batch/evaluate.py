"""Scoring the explanations of image files with metrics (:func:`evaluate_files`): each
metric on each map in the calling thread (the metrics run the model); the recording
thread writes ``metrics.csv``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np

from gradcam.batch.run import _engine_list, _Pipeline
from gradcam.batch.settings import EvaluationReport, RunSettings
from gradcam.checks import one_line
from gradcam.io.evaluation import MetricsWriter
from gradcam.io.inputs import Input
from gradcam.io.journal import RunJournal
from gradcam.io.outputs import OutputFolder

if TYPE_CHECKING:
    from gradcam.methods.base import Method


class _Evaluating(_Pipeline):
    """A run of :func:`evaluate_files`: after the engines, each metric on each map, in the
    calling thread (the metrics run the model); the recording thread writes the values."""

    keeps_images = True

    def __init__(self, engines, inputs, folder: OutputFolder, settings: RunSettings, metrics, progress, timer,
                 journal, paths):
        super().__init__(engines, inputs, settings, progress, timer)
        self.metrics = dict(metrics)
        self.files = MetricsWriter(folder, list(self.metrics), journal=journal, paths=paths)

    def after_engine(self, chunk, images, results) -> list[np.ndarray | None]:
        """Each metric on each map of the chunk's explained images: float32
        ``(maps, metrics)`` per explained entry, ``None`` for a failed one."""
        if results is None:
            return [None] * len(chunk)
        model = self.engine.model
        values = np.empty((len(images), len(self.methods), len(self.metrics)), np.float32)
        for j, (name, metric) in enumerate(self.metrics.items()):
            try:
                with self.timed("metrics"):
                    for k in range(len(self.methods)):
                        values[:, k, j] = metric(model, images, results.heatmaps[:, k], self.scored(results, k),
                                                 preprocess=self.settings.preprocess)
            except Exception as error:  # recorded per image; the run goes on
                self.fail_batch(chunk, f"the metric {name} failed on a batch: {one_line(error)}")
                return [None] * len(chunk)
        outcomes, position = [], 0
        for entry in chunk:
            outcomes.append(values[position] if entry.error is None else None)
            position += entry.error is None
        return outcomes

    def scored(self, results, k: int):
        """What the metrics score for map ``k``: its class indices ``(N,)``, or its target
        object when it is not a class (the same target the map explains)."""
        if self.target_name(results, k, 0)[1] is None:
            return results.targets[:, k]
        return self.settings.targets[k % self.settings.targets_per_image]

    def record_image(self, entry, results, position, outcome) -> None:
        targets = results.targets[position].tolist()
        with self.timed("summary"):
            self.files.add(entry.item.path, [
                (method, index, self.target_name(results, k, index)[0])
                for k, (method, index) in enumerate(zip(self.methods, targets))
            ], outcome)

    def record_failed(self, path, error) -> None:
        self.files.add_failed(path, error)

    def finish(self, report) -> None:
        report.means = self.files.means()
        report.failed = list(self.files.failed)
        self.files.commit()

    def abort(self) -> None:
        self.files.abort()


def evaluate_files(engine: Method | Sequence[Method], inputs: Sequence[Input], folder: OutputFolder,
                   settings: RunSettings, metrics: Mapping[str, Callable], progress=None,
                   timer: Callable[[str], AbstractContextManager] | None = None,
                   journal: RunJournal | None = None) -> EvaluationReport:
    """Score the explanations of image files with metrics, writing ``metrics.csv``.

    Each batch of images goes through every engine, then every metric runs on every map
    (each method's targets in turn): ``metric(model, images, heatmaps, targets,
    preprocess=settings.preprocess)`` with the images as decoded (RGB 0..255, before
    ``preprocess``), ``heatmaps`` ``(N, h, w)`` and ``targets`` ``(N,)``, returning one
    number per image, as the perturbation metrics of :mod:`gradcam.metrics` do.

    Args:
        engine: an engine, or a list of engines of one model and layer.
        inputs: the :class:`~gradcam.io.inputs.Input` list.
        folder: the output folder, entered; ``metrics.csv`` there is replaced (check
            first with :func:`~gradcam.io.outputs.existing_outputs`).
        settings: a :class:`RunSettings` (its overlay settings are unused).
        metrics: the metrics by name, in the order of the columns of the summary, e.g.
            ``{"deletion": functools.partial(gradcam.metrics.deletion, steps=50)}``.
        progress: a :class:`gradcam.progress.Progress`, or ``None``. Defaults to ``None``.
        timer: as for :func:`explain_files`, with the stage ``"metrics"`` instead of
            the drawing stages. Defaults to ``None``.
        journal: the run's :class:`~gradcam.io.journal.RunJournal`, started or resumed
            (only the images it has not recorded are scored); ``None`` keeps one of its
            own. Defaults to ``None``.

    Returns:
        An :class:`EvaluationReport` of the whole run: the failed inputs, and the mean of
        each method and metric.

    Raises:
        ValueError: an empty list of engines or of metrics.
        OSError: ``metrics.csv`` cannot be written.
        KeyboardInterrupt: the run was interrupted; ``metrics.csv`` is not written.

    Example:
        >>> from gradcam import metrics
        >>> with OutputFolder("scores") as folder:
        ...     report = evaluate_files(engine, find_inputs(["photos/"], "scores"), folder,
        ...                             RunSettings(image_shape=(224, 224)),
        ...                             {"deletion": metrics.deletion})
        >>> report.means[("gradcam", "deletion")]
    """
    engines = _engine_list(engine)
    if not metrics:
        raise ValueError("evaluate_files needs a metric; got none.")
    inputs, done = list(inputs), journal.done if journal is not None else set()
    remaining = [item for item in inputs if item.path not in done]
    run = _Evaluating(engines, remaining, folder, settings, metrics, progress, timer, journal,
                      [item.path for item in inputs])
    return run.run(EvaluationReport(total=len(inputs), resumed=len(inputs) - len(remaining)))
