"""A run's summary and heatmap files, written as the run goes.

``summary.csv`` and ``summary.json`` get one record per image as it finishes; the
heatmaps are appended to a raw file and packed into ``heatmaps.npz`` at the end, so
memory does not grow with the number of images (beyond each image's path, targets and
scores). All three are written in the run's temporary folder and moved into place by
:meth:`SummaryWriter.commit`: an interrupted run leaves the previous ones, or none.

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
    """Streams a run's ``summary.csv``, ``summary.json`` and ``heatmaps.npz``.

    Args:
        folder: the :class:`~gradcam.io.outputs.OutputFolder`, entered.
        header: the run's settings, first in ``summary.json`` (JSON values).
        layer: the explained layer.
        targets_per_image: ``K``, the number of maps per image (targets times methods).
        methods: the method of each of the ``K`` maps, for ``heatmaps.npz``; ``None`` for
            ``"gradcam"`` everywhere. Defaults to ``None``.

    Raises:
        ValueError: ``folder`` is not entered; ``methods`` has another length than ``K``.
    """

    def __init__(self, folder: OutputFolder, header: Mapping[str, object], layer: str,
                 targets_per_image: int, methods=None):
        if folder.temporary is None:
            raise ValueError("SummaryWriter needs an entered OutputFolder.")
        self.out_dir = folder.path
        self.layer = layer
        self.targets_per_image = int(targets_per_image)
        self.methods = ["gradcam"] * self.targets_per_image if methods is None else [str(m) for m in methods]
        if len(self.methods) != self.targets_per_image:
            raise ValueError(f"methods names {len(self.methods)} maps; expected {self.targets_per_image}.")
        self.failed: list[tuple[str, str]] = []
        self._temporary = {name: os.path.join(folder.temporary, name) for name in RUN_FILES + ("heatmaps.raw",)}
        self._files = []
        try:
            self._csv_file = self._open("summary.csv", "x", newline="", encoding="utf-8")
            self._json = self._open("summary.json", "x", encoding="utf-8")
            self._raw = self._open("heatmaps.raw", "xb")
        except BaseException:
            self.abort()
            raise
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self._json.write("{")
        for key, value in {**header, "layer": layer}.items():
            self._json.write(f"\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
        self._json.write('\n  "images": [')
        self._map_size: tuple[int, int] | None = None
        self._paths: list[str] = []
        self._targets: list[list[int]] = []
        self._scores: list[list[float]] = []
        self._probas: list[list[float | None]] = []
        self._records = 0

    def _open(self, name: str, mode: str, **kwargs):
        file = open(self._temporary[name], mode, **kwargs)
        self._files.append(file)
        return file

    @property
    def ok(self) -> int:
        """Images recorded as explained."""
        return len(self._paths)

    def _record(self, record: dict) -> None:
        separator = "," if self._records else ""
        self._json.write(f"{separator}\n    {json.dumps(record, ensure_ascii=False)}")
        self._records += 1

    def add_failed(self, path: str, error: str) -> None:
        """Record an input that could not be explained, and why."""
        self.failed.append((path, error))
        self._csv.writerow([path, "failed", error] + [""] * (len(CSV_COLUMNS) - 3))
        self._record({"path": path, "status": "failed", "error": error})

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
        top_text = "; ".join(c.as_text() for c in result.top)
        for t in result.targets:
            proba = "" if t.proba is None else f"{t.proba:.6g}"
            self._csv.writerow([result.path, "ok", "", self.layer, t.method, t.index, t.name or "",
                                f"{t.score:.6g}", proba, "true" if t.empty else "false", t.overlay or "", top_text])
        self._record({"path": result.path, "status": "ok", "layer": self.layer,
                      "top": [c.as_json() for c in result.top],
                      "targets": [t.as_json() for t in result.targets]})
        self._raw.write(heatmaps.tobytes())
        self._paths.append(result.path)
        self._targets.append([t.index for t in result.targets])
        self._scores.append([t.score for t in result.targets])
        self._probas.append([t.proba for t in result.targets])

    def commit(self, ending: Mapping[str, object], map_size: tuple[int, int] | None = None) -> None:
        """Finish the three files and move them into the output folder.

        Args:
            ending: run-level facts for the end of ``summary.json`` (counts, seconds).
            map_size: ``(h, w)`` of the maps, for the shape of ``heatmaps`` when no image
                was explained (``(0, K, h, w)``); ``None`` gives ``(0, K, 0, 0)``.
                Defaults to ``None``.

        Raises:
            OSError: a file cannot be written or moved (the temporary files are left
                for :meth:`abort`).
        """
        self._csv_file.close()
        self._raw.close()
        ok = len(self._paths)
        size = self._map_size or tuple(map_size or (0, 0))
        shape = (ok, self.targets_per_image, *size)
        arrays = {
            "heatmaps": (np.memmap(self._temporary["heatmaps.raw"], np.float32, "r", shape=shape)
                         if ok else np.zeros(shape, np.float32)),
            "paths": np.array(self._paths, dtype=str),
            "targets": np.array(self._targets, dtype=np.int32).reshape(shape[:2]),
            "scores": np.array(self._scores, dtype=np.float32).reshape(shape[:2]),
            "methods": np.array(self.methods, dtype=str),
            "layer": np.array(self.layer),
        }
        if ok and self._probas[0][0] is not None:
            arrays["probas"] = np.array(self._probas, dtype=np.float32)
        with open(self._temporary["heatmaps.npz"], "xb") as file:
            np.savez(file, **arrays)
        del arrays
        self._json.write("\n  ]" if self._records else "]")
        ending = {"failed": [{"path": p, "error": e} for p, e in self.failed], **ending}
        for key, value in ending.items():
            self._json.write(f",\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
        self._json.write("\n}\n")
        self._json.close()
        os.unlink(self._temporary["heatmaps.raw"])
        for name in RUN_FILES:
            move_into_place(self._temporary[name], os.path.join(self.out_dir, name))

    def abort(self) -> None:
        """Close and remove the temporary files; the outputs are left as they were."""
        for file in self._files:
            with contextlib.suppress(OSError):
                file.close()
        for path in self._temporary.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
