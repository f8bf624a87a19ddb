"""Explaining or evaluating many image files, streamed: what ``gradcam explain`` and
``gradcam evaluate`` run.

A run is a pipeline, so that decoding and drawing overlap the model and memory stays
flat whatever the number of files:

1. worker threads (one per CPU core) read each file (:func:`gradcam.load_image`), cut
   the window a keras-hub classifier's preprocessor keeps (:func:`gradcam.hub.picture_view`),
   resize it for the model (:func:`gradcam.image.doc_from_image`) and, when overlays are
   drawn, for the overlay (:func:`overlay_base`), at most two batches ahead of the engine;
2. the calling thread stacks the decoded images into batches, preprocesses them and runs
   the engine of each method on them (:meth:`gradcam.GradCAM.compute`);
3. then the run's own step: :func:`explain_files` has the worker threads draw each
   overlay (:func:`gradcam.render.overlay_heatmap`) and save it
   (:func:`gradcam.io.images.encode_image`, :func:`gradcam.io.files.atomic_file`);
   :func:`evaluate_files` runs each metric on each map in the calling thread (the
   metrics run the model);
4. a recording thread takes the images in input order and appends their results to the
   run's files (:class:`gradcam.io.summary.SummaryWriter`,
   :class:`gradcam.io.evaluation.MetricsWriter`).

Pillow, zlib and TensorFlow release the GIL while they decode, resize, encode and
compute, so the threads share the CPU cores. A file that cannot be read is recorded as
failed and the run goes on. Every file is written under a temporary name in the run's
temporary folder, then renamed: an interrupted run leaves complete files or none.

The threads pass typed records: :class:`_Decoded` (a worker to the engine's thread),
:class:`_Batch` (the engine's thread to the recording thread) and, for overlays, the
futures of the drawing workers. :class:`_Pipeline` is the template of a run; each kind of
run (:class:`_Explaining`, :class:`_Evaluating`) overrides its step and its files.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gradcam.checks import ArgumentError, attributed_to, check_positive_int, one_line
from gradcam.image import doc_from_image, load_image
from gradcam.io.evaluation import MetricsWriter
from gradcam.io.files import atomic_file
from gradcam.io.images import check_format, encode_image
from gradcam.io.inputs import Input
from gradcam.io.outputs import OutputFolder, overlay_name
from gradcam.io.summary import ExplainedTarget, ImageResult, SummaryWriter, TopClass
from gradcam.render import colorize, overlay_heatmap

if TYPE_CHECKING:
    from gradcam.methods.base import Method, Result

#: Top classes recorded per image.
TOP_CLASSES = 5


@dataclass(frozen=True)
class RunSettings:
    """How a run computes, draws and writes: the typed settings of :func:`explain_files`.

    Attributes:
        image_shape: ``(height, width)`` the model takes.
        preprocess: function applied to each stacked float32 batch (RGB 0..255) before
            the engine, or ``None``.
        targets: class indices (or names) to explain for every image, or ``None`` for
            each image's top prediction.
        batch_size: images per engine call.
        colormap: matplotlib colormap name (or colormap) of the overlays.
        alpha_limit: the overlays' largest opacity, a fraction in [0, 1].
        overlay_size: longest side of the overlays in pixels; ``0`` keeps the file's size.
        format: overlay format, one of :data:`gradcam.io.images.OVERLAY_FORMATS`.
        compress: compress PNG overlays (:func:`gradcam.io.images.encode_png`).
        overlays: draw and save the overlays; ``False`` writes only the heatmaps and the
            summaries (the overlay options are still checked, and otherwise unused).
        workers: threads decoding files and drawing overlays; ``None`` for one per CPU core.
        prefetch: decoded images held ahead of the engine (a memory bound); ``None`` for
            two batches.

    Raises:
        gradcam.checks.ArgumentError: (a ``ValueError``) a setting out of its range,
            checked when the object is made; its ``argument`` is the field's name.
    """

    image_shape: tuple[int, int]
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None
    targets: tuple[int | str, ...] | None = None
    batch_size: int = 32
    colormap: object = "viridis"
    alpha_limit: float = 0.65
    overlay_size: int = 320
    format: str = "jpg"
    compress: bool = False
    overlays: bool = True
    workers: int | None = None
    prefetch: int | None = None

    def __post_init__(self):
        with attributed_to("image_shape"):
            shape = tuple(self.image_shape) if isinstance(self.image_shape, Sequence) else ()
            if len(shape) != 2:
                raise ValueError(f"image_shape must be (height, width); got {self.image_shape!r}.")
            for value in shape:
                check_positive_int(value, "image_shape's height and width")
        object.__setattr__(self, "image_shape", tuple(int(v) for v in shape))
        if self.targets is not None:
            targets = (self.targets,) if isinstance(self.targets, (int, str)) else tuple(self.targets)
            if not targets:
                raise ArgumentError("targets", "targets is empty: pass None for each image's top prediction.")
            object.__setattr__(self, "targets", targets)
        for name, allow in (("batch_size", {}), ("overlay_size", {"allow_zero": True}),
                            ("workers", {"allow_none": True}), ("prefetch", {"allow_none": True})):
            with attributed_to(name):
                check_positive_int(getattr(self, name), name, **allow)
        if not isinstance(self.overlays, bool):
            raise ArgumentError("overlays", f"overlays must be True or False; got {self.overlays!r}.")
        if not (isinstance(self.alpha_limit, (int, float)) and 0 <= self.alpha_limit <= 1):
            raise ArgumentError("alpha_limit", f"alpha_limit must be a fraction in [0, 1]; got {self.alpha_limit!r}.")
        with attributed_to("colormap"):
            colorize(np.zeros((1, 1)), self.colormap, self.alpha_limit)  # an unknown colormap
        with attributed_to("format"):
            check_format(self.format)
        with attributed_to("compress"):
            check_format(self.format, self.compress)

    @property
    def targets_per_image(self) -> int:
        """``K``: the maps computed per image."""
        return 1 if self.targets is None else len(self.targets)

    @property
    def decoded_ahead(self) -> int:
        """Decoded images held ahead of the engine at most."""
        return self.prefetch or 2 * self.batch_size

    @property
    def held_images(self) -> int:
        """Model-sized float32 images the pipeline holds at most: those decoded ahead,
        and one batch three times (stacked, preprocessed, and the engine's copy)."""
        return self.decoded_ahead + 3 * self.batch_size

    def as_json(self) -> dict:
        """The settings as JSON values, for ``summary.json``."""
        preprocess = self.preprocess
        if preprocess is not None:
            preprocess = getattr(preprocess, "__qualname__", None) or repr(preprocess)
        return {
            "image_size": list(self.image_shape), "preprocess": preprocess,
            "targets": None if self.targets is None else list(self.targets),
            "batch_size": self.batch_size, "colormap": getattr(self.colormap, "name", self.colormap),
            "alpha_limit": self.alpha_limit, "overlay_size": self.overlay_size,
            "format": self.format, "compress": self.compress, "overlays": self.overlays,
        }


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        total: inputs.
        failed: ``(path, message)`` of each input that could not be explained.
        empty_maps: maps that are all zero (the layer's output does not raise the score).
        seconds: wall-clock time of the run (the model was already built).
    """

    total: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    empty_maps: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        """Inputs explained."""
        return self.total - len(self.failed)

    @property
    def images_per_second(self) -> float:
        """Inputs handled per second of the run."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EvaluationReport(RunReport):
    """What a run of :func:`evaluate_files` did: a :class:`RunReport`, and the metrics.

    Attributes:
        means: the mean value of each ``(method, metric)`` over the images explained and
            their targets (NaN when no image was).
    """

    means: dict[tuple[str, str], float] = field(default_factory=dict)


def overlay_base(image: Image.Image, max_side: int | None = 320) -> Image.Image:
    """The picture an overlay is drawn on: ``image`` shrunk so that its longer side is at
    most ``max_side`` pixels; ``None`` or ``0`` keeps the full size.

    Shrinking averages the pixels each new pixel covers (Pillow's ``BOX`` filter, after a
    fast integer reduction for large factors): no ringing, and a third of the cost of
    Lanczos.

    Args:
        image: an RGB PIL image.
        max_side: the longest side allowed, in pixels. Defaults to ``320``.

    Returns:
        ``image`` itself when small enough, else a resized copy.
    """
    width, height = image.size
    if not max_side or max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, resample=Image.BOX, reducing_gap=2.0)


def _background_priority() -> None:
    """Lower the calling worker thread's priority by 10 nice levels, on Linux.

    The engine splits each operation across its own threads; when a worker holds a core
    one of them needs, the others wait for it. At a lower priority the workers give the
    core up at once, and still use all the time the engine leaves (measured: the run goes
    from about 65% to about 74% of the engine's own speed on 2 cores). Linux keeps a nice
    value per thread; elsewhere ``os.nice`` would slow the whole process, so it is left alone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.nice(10)


@dataclass
class _Decoded:
    """An input after a worker read it: the model's image and the overlay's, or why not."""

    item: Input
    doc: np.ndarray | None = None
    base: Image.Image | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Batch:
    """A batch after the engines: its entries, the engines' results for the readable ones
    (``None`` if none was), and what the run's step after the engines gave each entry
    (``None`` for a failed one): a drawing's future, or metric values."""

    entries: list[_Decoded]
    results: Result | None
    outcomes: list


class _Stopped(Exception):
    """Raised in the recording thread when the run is being abandoned."""


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


_UNTIMED = contextlib.nullcontext()


class _Pipeline:
    """One run over image files: the template of :func:`explain_files` and
    :func:`evaluate_files`.

    Worker threads (a pool) decode files; the calling thread batches the decoded images
    through the engines, then runs the run's own step on them (:meth:`after_engine`:
    drawing is handed to the workers, metrics run in the calling thread); a recording
    thread takes the images in input order and appends them to the run's files
    (:meth:`record_image`, :meth:`record_failed`). Decoding runs ahead of the engine by
    at most ``decoded_ahead`` images and recording lags behind it by at most two
    batches, so memory stays bounded.
    """

    #: Whether the decoding keeps a picture to draw on (:func:`overlay_base`).
    keeps_picture = False
    #: Whether :meth:`after_engine` receives the batch's images as decoded (before
    #: ``preprocess``).
    keeps_images = False

    def __init__(self, engines: list[Method], inputs: list[Input], settings: RunSettings, progress, timer):
        self.engines = engines
        self.engine = engines[0]  # the model's classes and the layer, shared by all
        from gradcam import hub  # Keras is loaded by now: the engines hold the model

        self.view = functools.partial(hub.picture_view, self.engine.model)
        # the method of each of the maps an image gets: each method's targets in turn
        self.methods = [engine.name for engine in engines for _ in range(settings.targets_per_image)]
        self.settings = settings
        self.progress = progress
        self.timed = timer or (lambda stage: _UNTIMED)
        self.preprocess = settings.preprocess or (lambda x: x)
        self.total = len(inputs)
        self.inputs = iter(inputs)
        self.pool = ThreadPoolExecutor(settings.workers or os.cpu_count() or 2,
                                       thread_name_prefix="gradcam-worker", initializer=_background_priority)
        self.decoding: collections.deque[Future] = collections.deque()  # in input order
        self.done: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)  # waiting to be recorded
        self.stop = threading.Event()
        self.empty_maps = 0
        self.failed: list[tuple[str, str]] = []

    # -- the run's own step, and its files -----------------------------------------------
    def after_engine(self, chunk: list[_Decoded], images: np.ndarray | None, results: Result | None) -> list:
        """In the calling thread, after the engines: one outcome per entry of ``chunk``
        (``None`` for a failed entry), handed to :meth:`record_image`. ``images``: the
        readable images as decoded, when :attr:`keeps_images`. May fail entries."""
        raise NotImplementedError

    def record_image(self, entry: _Decoded, results: Result, position: int, outcome) -> None:
        """In the recording thread: record an explained image; may fail it (``entry.error``)."""
        raise NotImplementedError

    def record_failed(self, path: str, error: str) -> None:
        """In the recording thread: record an input that could not be explained."""

    def finish(self, report: RunReport) -> None:
        """Write the run-level files (their problems raise :class:`OSError`)."""

    def abort(self) -> None:
        """Remove the run-level files' temporaries (the run was interrupted or failed)."""

    # -- worker threads ----------------------------------------------------------------
    def decode(self, item: Input) -> _Decoded:
        """Read one file and resize it for the model (and the overlay); never raises."""
        try:
            with self.timed("decode"):
                image = load_image(item.path)
            with self.timed("resize"):
                image = self.view(image)  # the window a keras-hub classifier's preprocessor keeps
                doc = doc_from_image(image, self.settings.image_shape)[0]
                base = overlay_base(image, self.settings.overlay_size) if self.keeps_picture else None
            return _Decoded(item, doc, base)
        except Exception as error:  # any unreadable file: recorded, the run goes on
            return _Decoded(item, error=one_line(error))

    # -- the calling thread: batches through the engine ----------------------------------
    def next_chunk(self) -> list[_Decoded] | None:
        """Decoded entries, in input order, up to ``batch_size`` readable images;
        ``None`` at the end. Keeps ``decoded_ahead`` files decoding ahead."""
        chunk, readable = [], 0
        with self.timed("wait_decode"):
            while readable < self.settings.batch_size:
                self._submit_decoding()
                if not self.decoding:
                    break
                entry = self.decoding.popleft().result()
                chunk.append(entry)
                readable += entry.error is None
        self._submit_decoding()
        return chunk or None

    def _submit_decoding(self) -> None:
        while len(self.decoding) < self.settings.decoded_ahead:
            item = next(self.inputs, None)
            if item is None:
                return
            self.decoding.append(self.pool.submit(self.decode, item))

    def compute(self, batch: np.ndarray) -> Result:
        """Every method's results on a preprocessed batch, as one result whose maps are
        each method's in turn (``(N, methods x K, h, w)``)."""
        results = [engine.compute(batch, targets=self.settings.targets, batch_size=len(batch))
                   for engine in self.engines]
        if len(results) == 1:
            return results[0]
        together = {field: np.concatenate([getattr(r, field) for r in results], axis=1)
                    for field in ("heatmaps", "targets", "scores", "empty")}
        if results[0].probas is not None:
            together["probas"] = np.concatenate([r.probas for r in results], axis=1)
        return results[0]._replace(**together)

    def run_engine(self, chunk: list[_Decoded]) -> tuple[Result | None, np.ndarray | None]:
        """One call of the engines on a chunk's readable images; if it fails, they all
        fail. Returns the results and, when :attr:`keeps_images`, the images as decoded."""
        docs = [entry.doc for entry in chunk if entry.error is None]
        if not docs:
            return None, None
        try:
            with self.timed("preprocess"):
                images = np.stack(docs)
                for entry in chunk:
                    entry.doc = None
                # preprocess functions may scale their argument in place (keras.applications')
                batch = self.preprocess(images.copy() if self.keeps_images else images)
            with self.timed("engine"):
                return self.compute(batch), (images if self.keeps_images else None)
        except Exception as error:  # recorded per image; the run goes on
            self.fail_batch(chunk, f"the model failed on a batch: {one_line(error)}")
            return None, None

    @staticmethod
    def fail_batch(chunk: list[_Decoded], error: str) -> None:
        """Fail every entry of ``chunk`` still readable, with ``error``."""
        for entry in chunk:
            if entry.error is None:
                entry.error = error

    # -- the recording thread ------------------------------------------------------------
    def record(self) -> None:
        """Record each image, in input order."""
        while True:
            with self.timed("wait_engine"):
                batch = _get(self.done, self.stop)
            if batch is None:
                return
            position = 0
            for entry, outcome in zip(batch.entries, batch.outcomes):
                if self.stop.is_set():
                    raise _Stopped
                if entry.error is None:
                    self.record_image(entry, batch.results, position, outcome)
                    if entry.error is None:
                        self.empty_maps += int(batch.results.empty[position].sum())
                    position += 1
                if entry.error is not None:
                    with self.timed("summary"):
                        self.failed.append((entry.item.path, entry.error))
                        self.record_failed(entry.item.path, entry.error)
                entry.base = None
                if self.progress is not None:
                    if entry.error is not None:
                        self.progress.message(f"gradcam: skipped: {entry.error}")
                    self.progress.update(1, failed=entry.error is not None)

    # -- the whole run --------------------------------------------------------------------
    def run(self, report: RunReport) -> RunReport:
        start = time.perf_counter()
        recorder = _Recorder(self.record)
        recorder.start()
        try:
            while (chunk := self.next_chunk()) is not None:
                results, images = self.run_engine(chunk)
                outcomes = self.after_engine(chunk, images, results)
                with self.timed("wait_writer"):
                    _put(self.done, _Batch(chunk, results, outcomes), self.stop)
                recorder.check()
            with self.timed("wait_writer"):
                _put(self.done, None, self.stop)
                recorder.join()
            recorder.check()
            self.pool.shutdown()
            report.failed, report.empty_maps = list(self.failed), self.empty_maps
            report.seconds = time.perf_counter() - start
            with self.timed("finish"):
                self.finish(report)
            report.seconds = time.perf_counter() - start
            return report
        except BaseException:
            self.stop.set()
            self.pool.shutdown(wait=True, cancel_futures=True)  # a running task is one image
            recorder.join()
            self.abort()
            raise


class _Explaining(_Pipeline):
    """A run of :func:`explain_files`: the workers draw and save the overlays; the
    recording thread writes the summaries and the heatmaps."""

    keeps_images = False

    def __init__(self, engines, inputs, folder: OutputFolder, settings: RunSettings, progress,
                 header: Mapping[str, object], timer):
        super().__init__(engines, inputs, settings, progress, timer)
        self.keeps_picture = settings.overlays
        self.folder = folder
        self.files = SummaryWriter(folder, {**settings.as_json(), **header}, self.engine.layer,
                                   len(self.methods), self.methods)

    def draw(self, entry: _Decoded, results: Result, position: int) -> list[str]:
        """In a worker: draw and save the overlays of one explained image; their names,
        one per map."""
        settings, names = self.settings, []
        for k, index in enumerate(results.targets[position].tolist()):
            overlay = overlay_name(entry.item, index, self.engine.classes.name(index), settings.format,
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
                except Exception as error:  # e.g. a full disk: this image fails
                    entry.error = f"cannot write the overlay of {entry.item.path!r}: {one_line(error)}"
                    return
        targets = []
        for k, index in enumerate(results.targets[position].tolist()):
            proba = None if results.probas is None else float(results.probas[position, k])
            targets.append(ExplainedTarget(index, self.engine.classes.name(index), float(results.scores[position, k]),
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
                result = self.engine.compute(self.preprocess(blank), targets=self.settings.targets)
            return tuple(result.heatmaps.shape[2:])
        except Exception:  # the model fails: the run's images already say so
            return None

    def finish(self, report) -> None:
        self.files.commit({
            "counts": {"images": report.total, "ok": report.ok, "failed": len(report.failed),
                       "empty_maps": report.empty_maps},
            "seconds": round(report.seconds, 3),
            "images_per_second": round(report.images_per_second, 2),
        }, map_size=None if self.files.ok else self.map_size())

    def abort(self) -> None:
        self.files.abort()


class _Evaluating(_Pipeline):
    """A run of :func:`evaluate_files`: after the engines, each metric on each map, in the
    calling thread (the metrics run the model); the recording thread writes the values."""

    keeps_images = True

    def __init__(self, engines, inputs, folder: OutputFolder, settings: RunSettings, metrics, progress, timer):
        super().__init__(engines, inputs, settings, progress, timer)
        self.metrics = dict(metrics)
        self.files = MetricsWriter(folder, list(self.metrics))

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
                        values[:, k, j] = metric(model, images, results.heatmaps[:, k], results.targets[:, k],
                                                 preprocess=self.settings.preprocess)
            except Exception as error:  # recorded per image; the run goes on
                self.fail_batch(chunk, f"the metric {name} failed on a batch: {one_line(error)}")
                return [None] * len(chunk)
        outcomes, position = [], 0
        for entry in chunk:
            outcomes.append(values[position] if entry.error is None else None)
            position += entry.error is None
        return outcomes

    def record_image(self, entry, results, position, outcome) -> None:
        targets = results.targets[position].tolist()
        with self.timed("summary"):
            self.files.add(entry.item.path, [
                (method, index, self.engine.classes.name(index)) for method, index in zip(self.methods, targets)
            ], outcome)

    def record_failed(self, path, error) -> None:
        self.files.add_failed(path, error)

    def finish(self, report) -> None:
        report.means = self.files.means()
        self.files.commit()

    def abort(self) -> None:
        self.files.abort()


class _Recorder(threading.Thread):
    """The recording thread; :meth:`check` re-raises its exception in the caller."""

    def __init__(self, work):
        super().__init__(name="gradcam-record", daemon=True)
        self._work = work
        self.error: BaseException | None = None

    def run(self):
        try:
            self._work()
        except _Stopped:
            pass
        except BaseException as error:  # re-raised in the calling thread by check()
            self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def _engine_list(engine) -> list:
    engines = list(engine) if isinstance(engine, Sequence) else [engine]
    if not engines:
        raise ValueError("a run needs an engine; got an empty list.")
    return engines


def explain_files(engine: Method | Sequence[Method], inputs: Sequence[Input], folder: OutputFolder,
                  settings: RunSettings, progress=None, header: Mapping[str, object] | None = None,
                  timer: Callable[[str], AbstractContextManager] | None = None) -> RunReport:
    """Explain image files with one or several methods, writing overlays, heatmaps and summaries.

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

    Returns:
        A :class:`RunReport`; the failed inputs are in ``report.failed`` and in the
        summaries.

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
    run = _Explaining(engines, list(inputs), folder, settings, progress, dict(header or {}), timer)
    return run.run(RunReport(total=len(inputs)))


def evaluate_files(engine: Method | Sequence[Method], inputs: Sequence[Input], folder: OutputFolder,
                   settings: RunSettings, metrics: Mapping[str, Callable], progress=None,
                   timer: Callable[[str], AbstractContextManager] | None = None) -> EvaluationReport:
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

    Returns:
        An :class:`EvaluationReport`: the failed inputs, and the mean of each method and
        metric.

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
    run = _Evaluating(engines, list(inputs), folder, settings, metrics, progress, timer)
    return run.run(EvaluationReport(total=len(inputs)))
