"""Explaining image files (:func:`explain_files`): the workers draw and save the
overlays; the recording thread writes the summaries and the heatmaps."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np

from gradcam.batch.decoding import _Decoded
from gradcam.batch.run import _engine_list, _Pipeline
from gradcam.batch.settings import RunReport, RunSettings
from gradcam.checks import one_line
from gradcam.io.files import atomic_file
from gradcam.io.images import encode_image
from gradcam.io.inputs import Input
from gradcam.io.journal import RunJournal
from gradcam.io.outputs import OutputFolder, overlay_name
from gradcam.io.summary import ExplainedTarget, ImageResult, SummaryWriter, TopClass
from gradcam.render import overlay_heatmap

if TYPE_CHECKING:
    from gradcam.methods.base import Method, Result

#: Top classes recorded per image.
TOP_CLASSES = 5


class _Explaining(_Pipeline):
    """A run of :func:`explain_files`: the workers draw and save the overlays; the
    recording thread writes the summaries and the heatmaps."""

    keeps_images = False

    def __init__(self, engines, inputs, folder: OutputFolder, settings: RunSettings, progress,
                 header: Mapping[str, object], timer, journal, paths):
        self.keeps_picture = settings.overlays  # before the decoder is made
        super().__init__(engines, inputs, settings, progress, timer)
        self.folder = folder
        self.files = SummaryWriter(folder, {**settings.as_json(), **header}, self.engine.layer,
                                   len(self.methods), self.methods, journal=journal, paths=paths)

    def draw(self, entry: _Decoded, results: Result, position: int) -> list[str]:
        """In a worker: draw and save the overlays of one explained image; their names,
        one per map."""
        settings, names = self.settings, []
        for k, index in enumerate(results.targets[position].tolist()):
            name, label = self.target_name(results, k, index)
            overlay = overlay_name(entry.item, index if label is None else -1, label or name, settings.format,
                                   self.methods[k])
            with self.timed("overlay"):
                picture = overlay_heatmap(entry.base, results.heatmaps[position, k],
                                          colormap=settings.colormap,
                                          alpha_limit=settings.alpha_limit).convert("RGB")
            with self.timed("encode"):
                destination = os.path.join(self.folder.path, *overlay.split("/"))
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                with atomic_file(destination, temporary_folder=self.folder.temporary) as file:
                    file.write(encode_image(picture, settings.format, settings.compress))
            names.append(overlay)
        return names

    def after_engine(self, chunk, images, results) -> list[Future | None]:
        """Start drawing a chunk's explained images: one future per explained entry
        (``None`` for a failed one, and for all when no overlays are drawn)."""
        if not self.settings.overlays:
            return [None] * len(chunk)
        futures, position = [], 0
        for entry in chunk:
            if entry.error is None:
                futures.append(self.pool.submit(self.draw, entry, results, position))
                position += 1
            else:
                futures.append(None)
        return futures

    def _top(self, results: Result, position: int) -> tuple[TopClass, ...]:
        """The image's top classes; none when the model's output is not one vector of
        class scores per image (a segmenter's, a detector's)."""
        if not isinstance(results.outputs, np.ndarray) or results.outputs.ndim != 2:
            return ()
        outputs = results.outputs[position]
        order = np.argsort(-outputs, kind="stable")[:TOP_CLASSES]
        softmax = results.probas is not None
        return tuple(
            TopClass(int(i), self.engine.classes.name(int(i)),
                     proba=float(outputs[i]) if softmax else None,
                     score=None if softmax else float(outputs[i]))
            for i in order)

    def record_image(self, entry, results, position, outcome) -> None:
        overlays = [None] * len(self.methods)
        if outcome is not None:
            with self.timed("wait_draw"):
                try:
                    overlays = outcome.result()
                except CancelledError:  # the run is being abandoned: not a failure
                    return
                except Exception as error:  # e.g. a full disk: this image fails
                    entry.error = f"cannot write the overlay of {entry.item.path!r}: {one_line(error)}"
                    return
        targets = []
        for k, index in enumerate(results.targets[position].tolist()):
            proba = None if results.probas is None else float(results.probas[position, k])
            targets.append(ExplainedTarget(index, self.target_name(results, k, index)[0],
                                           float(results.scores[position, k]),
                                           proba, overlays[k], empty=bool(results.empty[position, k]),
                                           method=self.methods[k]))
        with self.timed("summary"):
            self.files.add(ImageResult(entry.item.path, self._top(results, position), tuple(targets),
                                       results.heatmaps[position]))

    def record_failed(self, path, error) -> None:
        self.files.add_failed(path, error)

    def map_size(self) -> tuple[int, int] | None:
        """The maps' ``(h, w)``, from one engine call on a blank image (used only when no
        image was explained), or ``None`` when the engine fails on it too."""
        blank = np.zeros((1, *self.settings.image_shape, 3), np.float32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. the blank image's map is all zero
                result = self.engine.compute(self.preprocess(blank), targets=self.settings.targets,
                                             **self.settings.smoothing)
            return tuple(result.heatmaps.shape[2:])
        except Exception:  # the model fails: the run's images already say so
            return None

    def finish(self, report) -> None:
        self.files.tally()
        report.failed, report.empty_maps = list(self.files.failed), self.files.empty_maps
        self.files.commit({
            "counts": {"images": report.total, "ok": report.ok, "failed": len(report.failed),
                       "empty_maps": report.empty_maps},
            "seconds": round(report.seconds, 3),
            "images_per_second": round(report.images_per_second, 2),
            **({"resumed": report.resumed} if report.resumed else {}),
        }, map_size=None if report.ok else self.map_size())

    def abort(self) -> None:
        self.files.abort()


def explain_files(engine: Method | Sequence[Method], inputs: Sequence[Input], folder: OutputFolder,
                  settings: RunSettings, progress=None, header: Mapping[str, object] | None = None,
                  timer: Callable[[str], AbstractContextManager] | None = None,
                  journal: RunJournal | None = None) -> RunReport:
    """Explain image files with one or several methods, writing overlays, heatmaps and summaries.

    Each image is recorded in the run's journal as soon as its overlays are written, and
    the summaries are made from the journal at the end: a run given the journal of an
    interrupted run (:meth:`~gradcam.io.journal.RunJournal.resume`) explains only the
    images it has not recorded, and its summaries cover the whole run.

    Args:
        engine: an engine (:class:`gradcam.GradCAM`, or another method's), or a list of
            engines of one model and layer: each image gets one overlay per engine and
            target, and ``heatmaps.npz`` each engine's maps in turn.
        inputs: the :class:`~gradcam.io.inputs.Input` list (see
            :func:`~gradcam.io.inputs.find_inputs`).
        folder: the output folder, entered (:class:`~gradcam.io.outputs.OutputFolder`);
            files already there are replaced (check first with
            :func:`~gradcam.io.outputs.existing_outputs`).
        settings: a :class:`RunSettings`.
        progress: a :class:`gradcam.progress.Progress`, or ``None`` for no display.
            Defaults to ``None``.
        header: more facts for the top of ``summary.json`` (the model's name...), JSON
            values; never read by the run. Defaults to ``None``.
        timer: for profiling: a function that takes a stage's name (``"decode"``,
            ``"resize"``, ``"preprocess"``, ``"engine"``, ``"overlay"``, ``"encode"``,
            ``"summary"``, ``"finish"``, and the waits ``"wait_decode"``,
            ``"wait_writer"``, ``"wait_engine"``, ``"wait_draw"``) and returns a context
            manager that runs around it, in the thread doing it. ``None`` times nothing.
            Defaults to ``None``.
        journal: the run's :class:`~gradcam.io.journal.RunJournal`, started or resumed
            (the caller checks that a resumed journal's settings are the run's); ``None``
            keeps one of its own. Defaults to ``None``.

    Returns:
        A :class:`RunReport` of the whole run; the failed inputs are in ``report.failed``
        and in the summaries; ``report.resumed`` counts the images recorded before.

    Raises:
        ValueError: an empty list of engines.
        OSError: the run-level files cannot be written.
        KeyboardInterrupt: the run was interrupted; overlays already written stay, the
            run-level files are not written.

    Example:
        >>> with OutputFolder("maps") as folder:
        ...     report = explain_files(engine, find_inputs(["photos/"], "maps"), folder,
        ...                            RunSettings(image_shape=(224, 224)))
    """
    engines = _engine_list(engine)
    inputs, done = list(inputs), journal.done if journal is not None else set()
    remaining = [item for item in inputs if item.path not in done]
    run = _Explaining(engines, remaining, folder, settings, progress, dict(header or {}), timer, journal,
                      [item.path for item in inputs])
    return run.run(RunReport(total=len(inputs), resumed=len(inputs) - len(remaining)))
