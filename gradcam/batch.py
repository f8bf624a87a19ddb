"""Explaining a folder of image files, streamed: what ``gradcam explain`` runs.

The run is a pipeline, so that decoding and drawing overlap the model and memory stays
flat whatever the number of files:

1. worker threads (one per CPU core) read each file (:func:`gradcam.load_image`) and
   resize it for the model (:func:`gradcam.image.doc_from_image`) and for the overlay
   (:func:`overlay_base`), at most two batches ahead of the engine;
2. the calling thread stacks the decoded images into batches, preprocesses them and runs
   the engine (:meth:`gradcam.GradCAM.compute`);
3. the worker threads draw each overlay (:func:`gradcam.render.overlay_heatmap`) and save
   it as a PNG (:func:`save_png`);
4. a recording thread takes the images in input order and appends their results to the
   run's summary and heatmap files (:class:`RunFiles`).

Pillow, zlib and TensorFlow release the GIL while they decode, resize, encode and
compute, so the threads share the CPU cores. A file that cannot be read is recorded as
failed and the run goes on. Every file is written atomically (a temporary file in the
same folder, then ``os.replace``): an interrupted run leaves complete files or none.

Outputs in the output folder:

* ``<name>.<index>-<class name>.png`` per image and target, e.g. ``sub/cat.282-tiger_cat.png``
  for ``sub/cat.jpg``: the input's path relative to the deepest folder holding all inputs,
  without its extension (kept, as in ``cat.jpg.282-tiger_cat.png``, when two inputs of
  one folder share a name);
* ``heatmaps.npz``: ``heatmaps`` (N, K, h, w) float32, ``paths`` (N,), ``targets``,
  ``scores`` and, for softmax models, ``probas`` (N, K), and ``layer``: the N images
  explained, in input order;
* ``summary.csv`` (one row per image and target, one per failed image) and
  ``summary.json`` (one record per image, the failed ones, counts and timings).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import os
import queue
import re
import struct
import sys
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gradcam.image import doc_from_image, load_image
from gradcam.render import overlay_heatmap

#: File name extensions searched for in folders (explicitly named files are always tried).
IMAGE_EXTENSIONS = frozenset({
    ".avif", ".bmp", ".dib", ".gif", ".jfif", ".jpe", ".jpeg", ".jpg", ".j2k", ".jp2",
    ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".qoi", ".tga", ".tif", ".tiff", ".webp",
})
RUN_FILES = ("heatmaps.npz", "summary.csv", "summary.json")
CSV_COLUMNS = ("path", "status", "error", "layer", "target", "target_name", "score", "proba",
               "overlay", "top_classes")
TOP_CLASSES = 5
_OVERLAY_NAME = re.compile(r"^(?P<stem>.+)\.\d+(-[A-Za-z0-9_-]*)?\.png$")


# -- finding the inputs -----------------------------------------------------------------

@dataclass(frozen=True)
class Input:
    """One input file.

    Attributes:
        path: the file's path, as found (a folder argument joined with the file's path
            inside it); shown in messages and in the summary.
        name: where its outputs go, relative to the output folder, without the target
            and ``.png`` parts: ``"sub/cat"`` (always with ``/``).
    """

    path: str
    name: str


def _walk(folder: str, skip: str | None):
    """Image files under ``folder``, sorted, skipping hidden entries and ``skip``."""
    if os.path.abspath(folder) == skip:
        return
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) != skip
        )
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(root, name)


def find_inputs(paths, exclude=None) -> list[Input]:
    """List the files to explain: the files given, and the image files in the folders given.

    Folders are searched recursively for files with an extension in
    :data:`IMAGE_EXTENSIONS` (hidden files and folders, and ``exclude``, are skipped).
    A path that does not exist is kept: it fails, with a clear message, when read.
    A file reached twice is listed once.

    Args:
        paths: file and folder paths, in order.
        exclude: a folder not to search (the output folder). Defaults to ``None``.

    Returns:
        A list of :class:`Input`, in the order given (folders sorted by name).
    """
    skip = os.path.abspath(exclude) if exclude is not None else None
    files, seen = [], set()
    for path in map(os.fspath, paths):
        found = _walk(path, skip) if os.path.isdir(path) else [path]
        for file in found:
            key = os.path.abspath(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    absolute = [os.path.abspath(f) for f in files]
    folders = [os.path.dirname(a) for a in absolute if os.path.exists(a)]
    root = os.path.commonpath(folders) if folders else None
    relative = [
        os.path.relpath(a, root).replace(os.sep, "/") if os.path.exists(a) else os.path.basename(a)
        for a in absolute
    ]
    stems = [os.path.splitext(r)[0] for r in relative]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    return [
        Input(file, stem if counts[stem.casefold()] == 1 else rel)
        for file, rel, stem in zip(files, relative, stems)
    ]


# -- output names and the overwrite check -------------------------------------------------

def target_label(index: int, name: str | None) -> str:
    """The part of an overlay's file name naming its class: ``"282-tiger_cat"``."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "_", name or "").strip("_")
    return f"{index}-{slug}" if slug else str(index)


def overlay_name(item: Input, index: int, class_name: str | None) -> str:
    """The overlay's path relative to the output folder: ``"sub/cat.282-tiger_cat.png"``."""
    return f"{item.name}.{target_label(index, class_name)}.png"


def existing_outputs(out_dir, inputs, limit: int = 5) -> list[str]:
    """Files in ``out_dir`` that a run on ``inputs`` would write: its summary and heatmap
    files, and any overlay of one of the inputs (whatever its class).

    Args:
        out_dir: the output folder.
        inputs: the :class:`Input` list of the run.
        limit: stop after finding this many. Defaults to ``5``.

    Returns:
        Up to ``limit`` paths of existing files.
    """
    out_dir = os.fspath(out_dir)
    found = [os.path.join(out_dir, f) for f in RUN_FILES if os.path.exists(os.path.join(out_dir, f))]
    stems_in: dict[str, dict[str, str]] = {}
    for item in inputs:
        if len(found) >= limit:
            break
        folder, _, stem = item.name.rpartition("/")
        if folder not in stems_in:
            directory = os.path.join(out_dir, folder)
            names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
            matches = (_OVERLAY_NAME.match(n) for n in names)
            stems_in[folder] = {m["stem"]: m.group(0) for m in matches if m}
        if stem in stems_in[folder]:
            found.append(os.path.join(out_dir, folder, stems_in[folder][stem]))
    return found[:limit]


# -- atomic files -------------------------------------------------------------------------

def _temporary_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb", **open_kwargs):
    """Open a temporary file next to ``path``; on success rename it to ``path``.

    On any error (or interruption) inside the ``with`` block the temporary file is
    removed and ``path`` is left as it was: never half written.

    Args:
        path: the file to write.
        mode: ``"wb"`` or ``"w"``. Defaults to ``"wb"``.
        **open_kwargs: passed to :func:`open` (``newline``, ``encoding``).

    Yields:
        The open temporary file.
    """
    path = os.fspath(path)
    temporary = _temporary_path(path)
    try:
        with open(temporary, mode.replace("w", "x"), **open_kwargs) as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def encode_png(image: Image.Image, compress: bool = False) -> bytes:
    """Encode an RGB or RGBA image as a PNG, fast.

    Without ``compress`` the pixels are stored as they are (zlib level 0): the file is
    about the size of the raw pixels and costs almost nothing to write. With ``compress``
    every row uses the PNG "Sub" filter (each byte minus the one a pixel to its left,
    which suits photographs) and zlib codes it with Huffman coding only: photographs take
    about 40% less space, and encoding is two to three times faster than Pillow's fastest
    setting (which tries the five PNG filters on every row) for files about 10% larger.

    Args:
        image: a PIL image in mode ``"RGB"`` or ``"RGBA"``.
        compress: compress the pixels. Defaults to ``False``.

    Returns:
        The PNG file's bytes (8 bits per channel, no interlacing).

    Raises:
        ValueError: another mode.
    """
    channels = {"RGB": 3, "RGBA": 4}.get(image.mode)
    if channels is None:
        raise ValueError(f"encode_png takes RGB or RGBA images; got mode {image.mode!r}.")
    width, height = image.size
    rows = np.asarray(image).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)  # a filter byte per row
    if compress:
        filtered[:, 0] = 1  # Sub
        filtered[:, 1:channels + 1] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, channels + 1:])
        compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    else:
        filtered[:, 0] = 0  # None
        filtered[:, 1:] = rows
        compressor = zlib.compressobj(0)
    data = compressor.compress(filtered) + compressor.flush()
    color_type = 2 if channels == 3 else 6
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def save_png(image: Image.Image, path, compress: bool = False) -> None:
    """Save an RGB or RGBA image as a PNG at ``path``, atomically.

    Args:
        image, compress: as for :func:`encode_png`.
        path: the file to write.
    """
    with atomic_file(path) as file:
        file.write(encode_png(image, compress))


# -- images -------------------------------------------------------------------------------

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


def one_line(error: BaseException) -> str:
    """An exception as one line of text, for messages and the summary."""
    text = " ".join(str(error).split())
    if isinstance(error, (FileNotFoundError, ValueError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- the run ------------------------------------------------------------------------------

@dataclass
class Options:
    """How to run and draw (the command line's options).

    Attributes:
        image_shape: ``(height, width)`` the model takes.
        preprocess: function applied to each stacked float32 batch (RGB 0..255), or
            ``None``.
        targets: class indices to explain for every image, or ``None`` for each image's
            top prediction.
        batch_size: images per engine call.
        colormap: matplotlib colormap (or its name) of the overlays.
        alpha_limit: the overlays' largest opacity.
        overlay_size: longest side of the overlays in pixels; ``0`` keeps the file's size.
        compress: compress the overlay PNGs (:func:`encode_png`).
        workers: threads decoding files and drawing overlays; ``None`` for one per CPU core.
        prefetch: decoded images held ahead of the engine (a memory bound); ``None`` for
            two batches.
    """

    image_shape: tuple
    preprocess: object = None
    targets: list | None = None
    batch_size: int = 32
    colormap: object = "viridis"
    alpha_limit: float = 0.65
    overlay_size: int = 320
    compress: bool = False
    workers: int | None = None
    prefetch: int | None = None


@dataclass
class _Decoded:
    item: Input
    doc: np.ndarray | None = None
    base: Image.Image | None = None
    error: str | None = None


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        total: inputs.
        failed: ``(path, message)`` of each input that could not be explained.
        seconds: wall-clock time of the run (the model was already built).
        timings: wall-clock seconds per stage, summed over the threads that ran it:
            ``decode`` and ``resize`` (worker threads); ``wait_decode``, ``preprocess``,
            ``engine`` and ``wait_writer`` (the calling thread); ``overlay`` and ``png``
            (worker threads); ``wait_engine``, ``wait_draw`` and ``summary`` (the thread
            recording the results); ``finish`` (closing the files). Threads overlap, so
            the stages add up to more than ``seconds``.
        cpu_timings: CPU seconds per stage, of the threads that ran it (the engine's own
            threads are not in ``engine``: see ``cpu_seconds``).
        cpu_seconds: CPU seconds of the whole process during the run, all threads.
    """

    total: int
    failed: list = field(default_factory=list)
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    cpu_timings: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> int:
        """Inputs explained."""
        return self.total - len(self.failed)

    @property
    def images_per_second(self) -> float:
        """Inputs handled per second of the run."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


class _Timers:
    """Stage timers: ``with timers("engine"): ...`` adds the block's wall-clock seconds
    and its thread's CPU seconds to that stage. Safe to use from any thread."""

    def __init__(self):
        self._local = threading.local()
        self._tables: list[tuple[dict, dict]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, name: str):
        tables = getattr(self._local, "tables", None)
        if tables is None:
            tables = self._local.tables = ({}, {})
            with self._lock:
                self._tables.append(tables)
        wall, cpu = tables
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall[name] = wall.get(name, 0.0) + time.perf_counter() - start
            cpu[name] = cpu.get(name, 0.0) + time.thread_time() - start_cpu

    def totals(self) -> tuple[dict, dict]:
        """Wall-clock and CPU seconds per stage, summed over the threads."""
        merged: tuple[dict, dict] = ({}, {})
        with self._lock:
            for tables in self._tables:
                for total, table in zip(merged, tables):
                    for name, seconds in table.items():
                        total[name] = total.get(name, 0.0) + seconds
        return merged


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


class RunFiles:
    """The run-level outputs, streamed into temporary files and renamed by :meth:`commit`.

    ``summary.csv`` and ``summary.json`` get one record per image as it finishes; the
    heatmaps are appended to a raw temporary file and packed into ``heatmaps.npz`` at the
    end, so memory does not grow with the number of images (beyond each image's path,
    targets and scores).

    Args:
        out_dir: the output folder (created if missing).
        meta: run-level facts for ``summary.json`` (model, layer, image size, targets...).
    """

    def __init__(self, out_dir, meta: dict):
        self.out_dir = os.fspath(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.layer = meta.get("layer", "")
        self.failed: list[tuple[str, str]] = []
        self._temporary = {name: _temporary_path(os.path.join(self.out_dir, name))
                           for name in RUN_FILES + ("heatmaps.raw",)}
        self._csv_file = open(self._temporary["summary.csv"], "x", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self._json = open(self._temporary["summary.json"], "x", encoding="utf-8")
        self._json.write("{")
        for key, value in meta.items():
            self._json.write(f"\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
        self._json.write('\n  "images": [')
        self._raw = open(self._temporary["heatmaps.raw"], "xb")
        self._map_shape = (len(meta.get("targets") or [None]), 0, 0)
        self._paths, self._targets, self._scores, self._probas = [], [], [], []
        self._records = 0

    def _record(self, record: dict) -> None:
        separator = "," if self._records else ""
        self._json.write(f"{separator}\n    {json.dumps(record, ensure_ascii=False)}")
        self._records += 1

    def add_failed(self, path: str, error: str) -> None:
        """Record an input that could not be explained."""
        self.failed.append((path, error))
        self._csv.writerow([path, "failed", error] + [""] * (len(CSV_COLUMNS) - 3))
        self._record({"path": path, "status": "failed", "error": error})

    def add(self, path: str, top: list[dict], targets: list[dict], heatmaps: np.ndarray) -> None:
        """Record an explained input.

        Args:
            path: the input's path.
            top: the top classes, ``{"index", "name", "score"}`` each.
            targets: the explained targets, ``{"index", "name", "score", "proba",
                "overlay"}`` each.
            heatmaps: float32 ``(K, h, w)``.
        """
        top_text = "; ".join(
            f"{c['index']}{' ' + c['name'] if c['name'] else ''} ({c['score']:.4g})" for c in top
        )
        for t in targets:
            proba = "" if t["proba"] is None else f"{t['proba']:.6g}"
            self._csv.writerow([path, "ok", "", self.layer, t["index"], t["name"] or "",
                                f"{t['score']:.6g}", proba, t["overlay"], top_text])
        self._record({"path": path, "status": "ok", "layer": self.layer, "top": top, "targets": targets})
        heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
        self._map_shape = heatmaps.shape
        self._raw.write(heatmaps.tobytes())
        self._paths.append(path)
        self._targets.append([t["index"] for t in targets])
        self._scores.append([t["score"] for t in targets])
        self._probas.append([t["proba"] for t in targets])

    def commit(self, extra: dict) -> None:
        """Finish the three files and move them into place.

        Args:
            extra: more run-level facts for the end of ``summary.json`` (counts, timings).
        """
        self._csv_file.close()
        self._raw.close()
        ok = len(self._paths)
        shape = (ok,) + tuple(self._map_shape)
        arrays = {
            "heatmaps": (np.memmap(self._temporary["heatmaps.raw"], np.float32, "r", shape=shape)
                         if ok else np.zeros(shape, np.float32)),
            "paths": np.array(self._paths, dtype=str),
            "targets": np.array(self._targets, dtype=np.int32).reshape(shape[:2]),
            "scores": np.array(self._scores, dtype=np.float32).reshape(shape[:2]),
            "layer": np.array(self.layer),
        }
        if ok and self._probas[0][0] is not None:
            arrays["probas"] = np.array(self._probas, dtype=np.float32)
        with open(self._temporary["heatmaps.npz"], "xb") as file:
            np.savez(file, **arrays)
        del arrays
        self._json.write("\n  ]" if self._records else "]")
        ending = {"failed": [{"path": p, "error": e} for p, e in self.failed], **extra}
        for key, value in ending.items():
            self._json.write(f",\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
        self._json.write("\n}\n")
        self._json.close()
        os.unlink(self._temporary["heatmaps.raw"])
        for name in RUN_FILES:
            os.replace(self._temporary[name], os.path.join(self.out_dir, name))

    def abort(self) -> None:
        """Close and remove the temporary files; the outputs are left as they were."""
        for file in (self._csv_file, self._json, self._raw):
            with contextlib.suppress(OSError):
                file.close()
        for path in self._temporary.values():
            with contextlib.suppress(OSError):
                os.unlink(path)


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


def _top_classes(outputs: np.ndarray, classes, count: int = TOP_CLASSES) -> list[dict]:
    order = np.argsort(-outputs, kind="stable")[:count]
    return [{"index": int(i), "name": classes.name(int(i)), "score": float(outputs[i])} for i in order]


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _rounded(table: dict) -> dict:
    return {name: round(seconds, 3) for name, seconds in table.items()}


class _Pipeline:
    """One run of :func:`explain_files`.

    Worker threads (a pool) decode files and draw overlays; the calling thread batches the
    decoded images through the engine; a recording thread takes the drawn images in
    input order and appends them to the run's files. Decoding runs ahead of the engine
    by at most ``prefetch`` images and drawing lags behind it by at most two batches, so
    memory stays bounded.
    """

    def __init__(self, engine, inputs, out_dir, options: Options, progress, meta):
        self.engine = engine
        self.out_dir = os.fspath(out_dir)
        self.options = options
        self.progress = progress
        self.preprocess = options.preprocess or (lambda x: x)
        self.total = len(inputs)
        self.inputs = iter(inputs)
        self.prefetch = options.prefetch or 2 * options.batch_size
        workers = options.workers or os.cpu_count() or 2
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="gradcam-worker",
                                       initializer=_background_priority)
        self.decoding: collections.deque = collections.deque()  # futures, in input order
        self.drawn: queue.Queue = queue.Queue(maxsize=2)  # batches waiting to be recorded
        self.stop = threading.Event()
        self.timers = _Timers()
        self.files = RunFiles(out_dir, dict(meta or {}, layer=engine.layer))

    # -- worker threads ----------------------------------------------------------------
    def decode(self, item: Input) -> _Decoded:
        """Read one file and resize it for the model and the overlay; never raises."""
        try:
            with self.timers("decode"):
                image = load_image(item.path)
            with self.timers("resize"):
                doc = doc_from_image(image, self.options.image_shape)[0]
                base = overlay_base(image, self.options.overlay_size)
            return _Decoded(item, doc, base)
        except Exception as error:  # any unreadable file: recorded, the run goes on
            return _Decoded(item, error=one_line(error))

    def draw(self, entry: _Decoded, results, position: int) -> list[dict]:
        """Draw and save the overlays of one explained image.

        Returns:
            The image's targets, ``{"index", "name", "score", "proba", "overlay"}`` each.
        """
        targets = []
        for k, index in enumerate(results.targets[position].tolist()):
            name = self.engine.classes.name(index)
            overlay = overlay_name(entry.item, index, name)
            with self.timers("overlay"):
                picture = overlay_heatmap(entry.base, results.heatmaps[position, k],
                                          colormap=self.options.colormap,
                                          alpha_limit=self.options.alpha_limit).convert("RGB")
            with self.timers("png"):
                destination = os.path.join(self.out_dir, *overlay.split("/"))
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                save_png(picture, destination, self.options.compress)
            proba = None if results.probas is None else float(results.probas[position, k])
            targets.append({"index": index, "name": name, "score": float(results.scores[position, k]),
                            "proba": proba, "overlay": overlay})
        return targets

    # -- the calling thread: batches through the engine ----------------------------------
    def next_chunk(self) -> list[_Decoded] | None:
        """Decoded entries, in input order, up to ``batch_size`` readable images;
        ``None`` at the end. Keeps ``prefetch`` files decoding ahead."""
        chunk, readable = [], 0
        with self.timers("wait_decode"):
            while readable < self.options.batch_size:
                self._submit_decoding()
                if not self.decoding:
                    break
                entry = self.decoding.popleft().result()
                chunk.append(entry)
                readable += entry.error is None
        self._submit_decoding()
        return chunk or None

    def _submit_decoding(self) -> None:
        while len(self.decoding) < self.prefetch:
            item = next(self.inputs, None)
            if item is None:
                return
            self.decoding.append(self.pool.submit(self.decode, item))

    def run_engine(self, chunk):
        """One engine call on a chunk's readable images; if it fails, they all fail."""
        docs = [entry.doc for entry in chunk if entry.error is None]
        if not docs:
            return None
        try:
            with self.timers("preprocess"):
                batch = self.preprocess(np.stack(docs))
                for entry in chunk:
                    entry.doc = None
            with self.timers("engine"):
                return self.engine.compute(batch, targets=self.options.targets, batch_size=len(docs))
        except Exception as error:  # recorded per image; the run goes on
            for entry in chunk:
                if entry.error is None:
                    entry.error = f"the model failed on a batch: {one_line(error)}"
            return None

    def submit_drawing(self, chunk, results) -> list:
        """Start drawing a chunk's explained images; one future (or None) per entry."""
        futures, position = [], 0
        for entry in chunk:
            if entry.error is None:
                futures.append(self.pool.submit(self.draw, entry, results, position))
                position += 1
            else:
                futures.append(None)
        return futures

    # -- the recording thread ------------------------------------------------------------
    def record(self) -> None:
        """Append each image's results to the run's files, in input order."""
        while True:
            with self.timers("wait_engine"):
                batch = _get(self.drawn, self.stop)
            if batch is None:
                return
            chunk, results, futures = batch
            position = 0
            for entry, future in zip(chunk, futures):
                if self.stop.is_set():
                    raise _Stopped
                if future is not None:
                    with self.timers("wait_draw"):
                        try:
                            targets = future.result()
                        except Exception as error:  # e.g. a full disk: this image fails
                            entry.error = f"cannot write the overlay of {entry.item.path!r}: {one_line(error)}"
                    if entry.error is None:
                        with self.timers("summary"):
                            top = _top_classes(results.outputs[position], self.engine.classes)
                            self.files.add(entry.item.path, top, targets, results.heatmaps[position])
                    position += 1
                if entry.error is not None:
                    with self.timers("summary"):
                        self.files.add_failed(entry.item.path, entry.error)
                entry.base = None
                if self.progress is not None:
                    if entry.error is not None:
                        self.progress.message(f"gradcam: skipped: {entry.error}")
                    self.progress.update(1, failed=entry.error is not None)

    # -- the whole run --------------------------------------------------------------------
    def run(self) -> RunReport:
        start, cpu_start = time.perf_counter(), _process_cpu()
        recorder = _Recorder(self.record)
        recorder.start()
        try:
            while (chunk := self.next_chunk()) is not None:
                results = self.run_engine(chunk)
                futures = self.submit_drawing(chunk, results)
                with self.timers("wait_writer"):
                    _put(self.drawn, (chunk, results, futures), self.stop)
                recorder.check()
            with self.timers("wait_writer"):
                _put(self.drawn, None, self.stop)
                recorder.join()
            recorder.check()
            self.pool.shutdown()
            report = RunReport(total=self.total, failed=list(self.files.failed))
            report.seconds = time.perf_counter() - start
            report.cpu_seconds = _process_cpu() - cpu_start
            report.timings, report.cpu_timings = self.timers.totals()
            finish = time.perf_counter()
            self.files.commit({
                "counts": {"images": report.total, "ok": report.ok, "failed": len(report.failed)},
                "seconds": round(report.seconds, 3),
                "images_per_second": round(report.images_per_second, 2),
                "cpu_seconds": round(report.cpu_seconds, 3),
                "timings": _rounded(report.timings),
                "cpu_timings": _rounded(report.cpu_timings),
            })
            report.timings["finish"] = time.perf_counter() - finish
            report.seconds = time.perf_counter() - start
            return report
        except BaseException:
            self.stop.set()
            self.pool.shutdown(wait=True, cancel_futures=True)  # a running task is one image
            recorder.join()
            self.files.abort()
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


def explain_files(engine, inputs, out_dir, options: Options, progress=None, meta=None) -> RunReport:
    """Explain image files with a Grad-CAM engine, writing overlays, heatmaps and summaries.

    Args:
        engine: a :class:`gradcam.GradCAM`.
        inputs: the :class:`Input` list (see :func:`find_inputs`).
        out_dir: the output folder; files already there are replaced (check first with
            :func:`existing_outputs`).
        options: an :class:`Options`.
        progress: a :class:`gradcam.progress.Progress`, or ``None`` for no display.
            Defaults to ``None``.
        meta: run-level facts to put at the top of ``summary.json``. Defaults to ``None``.

    Returns:
        A :class:`RunReport`; the failed inputs are in ``report.failed`` and in the
        summaries.

    Raises:
        OSError: the output folder or the run-level files cannot be written.
        KeyboardInterrupt: the run was interrupted; overlays already written stay, the
            run-level files are not written.
    """
    return _Pipeline(engine, list(inputs), out_dir, options, progress, meta).run()
