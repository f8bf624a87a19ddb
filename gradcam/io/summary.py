"""A run's summary and heatmap files, written as the run goes.

Each image is recorded in the run's journal (:class:`gradcam.io.journal.RunJournal`) as
it finishes: its summary record, and its maps appended to a raw file. At the end
``summary.csv``, ``summary.json`` and ``heatmaps.npz`` are written from the journal, in
the run's temporary folder, and moved into place by :meth:`SummaryWriter.commit`: an
interrupted run leaves the previous ones, or none, and its journal, to be resumed.

Names: ``proba`` is always a softmax probability, ``score`` the explained score (the
pre-softmax logit for a model that ends in a softmax, else the model's output).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gradcam.io.files import move_into_place
from gradcam.io.journal import RunJournal
from gradcam.io.outputs import RUN_FILES, OutputFolder

#: The columns of ``summary.csv``.
CSV_COLUMNS = ("path", "status", "error", "layer", "method", "target", "target_name", "score", "proba",
               "empty", "overlay", "top_classes")


@dataclass(frozen=True)
class TopClass:
    """One of an image's top classes.

    Attributes:
        index: the class index.
        name: the class name, or ``None``.
        proba: its softmax probability, for a model that ends in a softmax; else ``None``.
        score: the model's output for it, for other models; else ``None``.
    """

    index: int
    name: str | None
    proba: float | None = None
    score: float | None = None

    def as_json(self) -> dict:
        """``{"index", "name", "proba"}`` or ``{"index", "name", "score"}``."""
        value = {"proba": self.proba} if self.proba is not None else {"score": self.score}
        return {"index": self.index, "name": self.name, **value}

    def as_text(self) -> str:
        """``"282 tiger cat (proba 0.5123)"``."""
        name = f" {self.name}" if self.name else ""
        value = f"proba {self.proba:.4g}" if self.proba is not None else f"score {self.score:.4g}"
        return f"{self.index}{name} ({value})"


@dataclass(frozen=True)
class ExplainedTarget:
    """One explained target of an image, by one method.

    Attributes:
        index: the class index.
        name: the class name, or ``None``.
        score: the explained score (a logit for softmax models).
        proba: the class's softmax probability, or ``None`` for models without a softmax.
        overlay: the overlay file, relative to the output folder; ``None`` when no overlay
            was drawn (``--no-overlays``).
        empty: whether the map is all zero (no part of the layer's output raises the score).
        method: the method that made the map (a name of ``gradcam.METHODS``).
    """

    index: int
    name: str | None
    score: float
    proba: float | None
    overlay: str | None
    empty: bool = False
    method: str = "gradcam"

    def as_json(self) -> dict:
        """``{"method", "index", "name", "score", "proba", "empty", "overlay"}``."""
        return {"method": self.method, "index": self.index, "name": self.name, "score": self.score,
                "proba": self.proba, "empty": self.empty, "overlay": self.overlay}


@dataclass(frozen=True)
class ImageResult:
    """Everything recorded for one explained image.

    Attributes:
        path: the input's path.
        top: its top classes, best first.
        targets: the targets explained, in order (each method's in turn).
        heatmaps: float32 ``(K, h, w)``, one map per explained target.
    """

    path: str
    top: tuple[TopClass, ...]
    targets: tuple[ExplainedTarget, ...]
    heatmaps: np.ndarray


class SummaryWriter:
    """Records a run's images in its journal as they finish, and writes ``summary.csv``,
    ``summary.json`` and ``heatmaps.npz`` from the journal at the end.

    Args:
        folder: the :class:`~gradcam.io.outputs.OutputFolder`, entered.
        header: the run's settings, first in ``summary.json`` (JSON values).
        layer: the explained layer.
        targets_per_image: ``K``, the number of maps per image (targets times methods).
        methods: the method of each of the ``K`` maps, for ``heatmaps.npz``; ``None`` for
            ``"gradcam"`` everywhere. Defaults to ``None``.
        journal: the run's :class:`~gradcam.io.journal.RunJournal`, started or resumed
            (its earlier records are part of the summaries); ``None`` starts one of its
            own, removed on :meth:`abort`. Defaults to ``None``.
        paths: the run's inputs in order, the order of the summaries; ``None`` for the
            order recorded. Defaults to ``None``.

    Raises:
        ValueError: ``folder`` is not entered; ``methods`` has another length than ``K``.
    """

    def __init__(self, folder: OutputFolder, header: Mapping[str, object], layer: str,
                 targets_per_image: int, methods=None, journal: RunJournal | None = None, paths=None):
        if folder.temporary is None:
            raise ValueError("SummaryWriter needs an entered OutputFolder.")
        self.out_dir = folder.path
        self.header = dict(header)
        self.layer = layer
        self.targets_per_image = int(targets_per_image)
        self.methods = ["gradcam"] * self.targets_per_image if methods is None else [str(m) for m in methods]
        if len(self.methods) != self.targets_per_image:
            raise ValueError(f"methods names {len(self.methods)} maps; expected {self.targets_per_image}.")
        self.paths = None if paths is None else [str(p) for p in paths]
        self._own_journal = journal is None
        if journal is None:
            journal = RunJournal(folder.path, "explain")
            journal.start({**self.header, "layer": layer}, self.paths or [])
        self.journal = journal
        self.failed: list[tuple[str, str]] = []  # of the whole run, after tally()
        self.empty_maps = 0
        self._tallied = False
        self._temporary = {name: os.path.join(folder.temporary, name) for name in RUN_FILES}
        self._map_size: tuple[int, int] | None = None
        self._ok = 0

    @property
    def ok(self) -> int:
        """Images recorded as explained in this run (not counting a resumed run's)."""
        return self._ok

    def add_failed(self, path: str, error: str) -> None:
        """Record an input that could not be explained, and why."""
        self.journal.append({"path": path, "status": "failed", "error": error})

    def add(self, result: ImageResult) -> None:
        """Record an explained image.

        Raises:
            ValueError: its heatmaps are not ``(K, h, w)`` with the run's ``K`` and the
                size of the earlier maps.
        """
        heatmaps = np.ascontiguousarray(result.heatmaps, dtype=np.float32)
        size = heatmaps.shape[1:]
        if (heatmaps.ndim != 3 or len(heatmaps) != self.targets_per_image or len(result.targets) != len(heatmaps)
                or self._map_size not in (None, size)):
            raise ValueError(
                f"heatmaps of shape {heatmaps.shape} for {len(result.targets)} targets; expected "
                f"({self.targets_per_image}, h, w) with (h, w) = {self._map_size or 'that of the first image'}.")
        self._map_size = size
        self.journal.append({"path": result.path, "status": "ok", "layer": self.layer,
                             "top": [c.as_json() for c in result.top],
                             "targets": [t.as_json() for t in result.targets]}, heatmaps)
        self._ok += 1

    def _records(self):
        return self.journal.records(self.paths)

    def tally(self) -> None:
        """Read the whole run's records (a resumed run's included) for :attr:`failed` and
        :attr:`empty_maps`, one at a time."""
        self.failed, self.empty_maps, self._tallied = [], 0, True
        for record in self._records():
            if record["status"] == "ok":
                self.empty_maps += sum(t["empty"] for t in record["targets"])
            else:
                self.failed.append((record["path"], record["error"]))

    def commit(self, ending: Mapping[str, object], map_size: tuple[int, int] | None = None) -> None:
        """Write the three files from the journal (the whole run, in input order, one
        record at a time), move them into the output folder and remove the journal.

        Args:
            ending: run-level facts for the end of ``summary.json`` (counts, seconds),
                after the ``"failed"`` list (from :meth:`tally`, called first if it was
                not).
            map_size: ``(h, w)`` of the maps, for the shape of ``heatmaps`` when no image
                was explained (``(0, K, h, w)``); ``None`` gives ``(0, K, 0, 0)``.
                Defaults to ``None``.

        Raises:
            OSError: a file cannot be written or moved (the temporary files are left
                for :meth:`abort`).
        """
        if not self._tallied:
            self.tally()
        paths, slots, targets, scores, probas = [], [], [], [], []
        with open(self._temporary["summary.csv"], "x", newline="", encoding="utf-8") as csv_file, \
                open(self._temporary["summary.json"], "x", encoding="utf-8") as file:
            writer = csv.writer(csv_file)
            writer.writerow(CSV_COLUMNS)
            file.write("{")
            for key, value in {**self.header, "layer": self.layer}.items():
                file.write(f"\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
            file.write('\n  "images": [')
            n = -1
            for n, record in enumerate(self._records()):
                writer.writerows(csv_rows(record))
                image = {key: value for key, value in record.items() if key not in ("slot", "map_shape")}
                file.write(f"{',' if n else ''}\n    {json.dumps(image, ensure_ascii=False)}")
                if record["status"] == "ok":
                    paths.append(record["path"])
                    slots.append(record["slot"])
                    targets.append([t["index"] for t in record["targets"]])
                    scores.append([t["score"] for t in record["targets"]])
                    probas.append([t["proba"] for t in record["targets"]])
            file.write("\n  ]" if n >= 0 else "]")
            ending = {"failed": [{"path": p, "error": e} for p, e in self.failed], **ending}
            for key, value in ending.items():
                file.write(f",\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
            file.write("\n}\n")
        heatmaps = self.journal.heatmaps(slots)
        size = tuple(heatmaps.shape[2:]) if heatmaps is not None else tuple(map_size or (0, 0))
        shape = (len(paths), self.targets_per_image, *size)
        arrays = {
            "heatmaps": heatmaps if heatmaps is not None else np.zeros(shape, np.float32),
            "paths": np.array(paths, dtype=str),
            "targets": np.array(targets, np.int32).reshape(shape[:2]),
            "scores": np.array(scores, np.float32).reshape(shape[:2]),
            "methods": np.array(self.methods, dtype=str),
            "layer": np.array(self.layer),
        }
        if probas and probas[0][0] is not None:
            arrays["probas"] = np.array(probas, np.float32)
        with open(self._temporary["heatmaps.npz"], "xb") as file:
            np.savez(file, **arrays)
        del arrays, heatmaps
        for name in RUN_FILES:
            move_into_place(self._temporary[name], os.path.join(self.out_dir, name))
        self.journal.remove()

    def abort(self) -> None:
        """Remove the temporary files; the outputs are left as they were, and so is the
        journal given (for a resumed run), which is closed."""
        for path in self._temporary.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self._own_journal:
            self.journal.remove()
        else:
            self.journal.close()


def csv_rows(record: Mapping[str, object]) -> list[list]:
    """The rows of ``summary.csv`` of one record of ``summary.json``'s ``"images"``."""
    if record["status"] != "ok":
        return [[record["path"], "failed", record["error"]] + [""] * (len(CSV_COLUMNS) - 3)]
    top_text = "; ".join(TopClass(**c).as_text() for c in record["top"])
    rows = []
    for t in record["targets"]:
        proba = "" if t["proba"] is None else f"{t['proba']:.6g}"
        rows.append([record["path"], "ok", "", record["layer"], t["method"], t["index"], t["name"] or "",
                     f"{t['score']:.6g}", proba, "true" if t["empty"] else "false", t["overlay"] or "", top_text])
    return rows
