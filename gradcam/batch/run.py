"""The template of a run over image files (:class:`_Pipeline`): batches through the
engines in the calling thread, the run's own step after them, and a recording thread
that takes the images in input order."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gradcam.batch.decoding import _Decoded, _Decoder
from gradcam.batch.settings import RunReport, RunSettings
from gradcam.checks import one_line
from gradcam.io.inputs import Input

if TYPE_CHECKING:
    from gradcam.methods.base import Method, Result


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
    """One run over image files: the template of :func:`~gradcam.batch.explain_files`
    and :func:`~gradcam.batch.evaluate_files`.

    Worker threads (a pool) decode files; the calling thread batches the decoded images
    through the engines, then runs the run's own step on them (:meth:`after_engine`:
    drawing is handed to the workers, metrics run in the calling thread); a recording
    thread takes the images in input order and appends them to the run's files
    (:meth:`record_image`, :meth:`record_failed`). Decoding runs ahead of the engine by
    at most ``decoded_ahead`` images and recording lags behind it by at most two
    batches, so memory stays bounded.
    """

    #: Whether the decoding keeps a picture to draw on (:func:`~gradcam.batch.decoding.overlay_base`).
    keeps_picture = False
    #: Whether :meth:`after_engine` receives the batch's images as decoded (before
    #: ``preprocess``).
    keeps_images = False

    def __init__(self, engines: list[Method], inputs: list[Input], settings: RunSettings, progress, timer):
        self.engines = engines
        self.engine = engines[0]  # the model's classes and the layer, shared by all
        from gradcam import hub  # Keras is loaded by now: the engines hold the model

        # the method of each of the maps an image gets: each method's targets in turn
        self.methods = [engine.name for engine in engines for _ in range(settings.targets_per_image)]
        self.settings = settings
        self.progress = progress
        self.timed = timer or (lambda stage: _UNTIMED)
        self.preprocess = settings.preprocess or (lambda x: x)
        self.total = len(inputs)
        self.decoder = _Decoder(inputs, settings, functools.partial(hub.picture_view, self.engine.model),
                                self.keeps_picture, self.timed)
        self.pool = self.decoder.pool  # the workers also draw the overlays
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

    def target_name(self, results: Result, k: int, index: int) -> tuple[str | None, str | None]:
        """Map ``k``'s target as the summaries name it, and as its overlay's file name does
        when it is not a class: a class target's class name and ``None``; another
        target's own name (:attr:`gradcam.targets.Target.name`), and that name after its
        kind when it does not start with a letter (``"contrast 282 (tiger cat) vs
        closest"``)."""
        from gradcam.targets import Class

        explained = results.explained
        target = None if explained is None else explained[k % len(explained)]
        if target is None or type(target) is Class:
            return self.engine.classes.name(index), None
        name = target.name
        return name, name if name[:1].isalpha() else f"{type(target).__name__.lower()} {name}"

    def compute(self, batch: np.ndarray) -> Result:
        """Every method's results on a preprocessed batch, as one result whose maps are
        each method's in turn (``(N, methods x K, h, w)``). Maps of another size than the
        largest (the layer's, beside guided Grad-CAM's at the input's) are resized to it
        (:func:`gradcam.metrics.maps.upsample`)."""
        results = [engine.compute(batch, targets=self.settings.targets, batch_size=len(batch),
                                  **self.settings.smoothing) for engine in self.engines]
        if len(results) == 1:
            return results[0]
        size = max(r.heatmaps.shape[2:] for r in results)
        if any(r.heatmaps.shape[2:] != size for r in results):
            from gradcam.metrics.maps import upsample

            results = [r._replace(heatmaps=upsample(r.heatmaps.reshape((-1,) + r.heatmaps.shape[2:]), size)
                                  .reshape(r.heatmaps.shape[:2] + size)) for r in results]
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
                if self.stop.is_set():  # abandoned: nothing more is recorded or reported
                    raise _Stopped
                if entry.error is None:
                    self.record_image(entry, batch.results, position, outcome)
                    if self.stop.is_set():  # the image's drawing was cancelled, not failed
                        raise _Stopped
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
                    elif entry.warning is not None:
                        self.progress.message(f"gradcam: warning: {entry.warning}")
                    self.progress.update(1, failed=entry.error is not None)

    # -- the whole run --------------------------------------------------------------------
    def run(self, report: RunReport) -> RunReport:
        start = time.perf_counter()
        recorder = _Recorder(self.record)
        recorder.start()
        try:
            while (chunk := self.decoder.next_chunk()) is not None:
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
                self.finish(report)  # sets the whole run's failures, a resumed run's too
            report.seconds = time.perf_counter() - start
            return report
        except BaseException:
            self.stop.set()
            self.pool.shutdown(wait=True, cancel_futures=True)  # a running task is one image
            recorder.join()
            self.abort()
            raise


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
