"""``metrics.csv``: the values of a run of ``gradcam evaluate``, written as the run goes.

One row per image, method, target and metric, in input order; a file that could not be
explained gets one row with its error. The file is written in the run's temporary folder
and moved into place by :meth:`MetricsWriter.commit`: an interrupted run leaves the
previous one, or none.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os

import numpy as np

from gradcam.io.files import move_into_place
from gradcam.io.outputs import EVALUATION_FILES, OutputFolder

#: The columns of ``metrics.csv``.
METRICS_COLUMNS = ("path", "method", "metric", "target", "target_name", "value", "error")


class MetricsWriter:
    """Streams a run's ``metrics.csv`` and keeps the mean of each method and metric.

    Args:
        folder: the :class:`~gradcam.io.outputs.OutputFolder`, entered.
        metrics: the metrics' names, in the order of the values given to :meth:`add`.

    Raises:
        ValueError: ``folder`` is not entered.
    """

    def __init__(self, folder: OutputFolder, metrics):
        if folder.temporary is None:
            raise ValueError("MetricsWriter needs an entered OutputFolder.")
        self.out_dir = folder.path
        self.metrics = [str(m) for m in metrics]
        (name,) = EVALUATION_FILES
        self._name = name
        self._temporary = os.path.join(folder.temporary, name)
        self._file = open(self._temporary, "x", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(METRICS_COLUMNS)
        self._sums: dict[tuple[str, str], float] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, path: str, maps, values) -> None:
        """Record the values of an explained image.

        Args:
            path: the input's path.
            maps: ``(method, target index, target name or None)`` of each of its maps.
            values: float ``(maps, metrics)``, each metric on each map.

        Raises:
            ValueError: ``values`` has another shape.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(maps), len(self.metrics)):
            raise ValueError(f"values of shape {values.shape}; expected ({len(maps)}, {len(self.metrics)}).")
        for (method, index, name), row in zip(maps, values.tolist()):
            for metric, value in zip(self.metrics, row):
                self._csv.writerow([path, method, metric, index, name or "", f"{value:.9g}", ""])
                key = (method, metric)
                self._sums[key] = self._sums.get(key, 0.0) + value
                self._counts[key] = self._counts.get(key, 0) + 1

    def add_failed(self, path: str, error: str) -> None:
        """Record an input that could not be explained, and why."""
        self._csv.writerow([path, "", "", "", "", "", error])

    def means(self) -> dict[tuple[str, str], float]:
        """The mean value of each ``(method, metric)`` recorded (the values of every image
        and target), in the order first recorded."""
        return {key: self._sums[key] / self._counts[key] if self._counts[key] else math.nan for key in self._sums}

    def commit(self) -> None:
        """Finish ``metrics.csv`` and move it into the output folder.

        Raises:
            OSError: it cannot be written or moved (the temporary is left for
                :meth:`abort`).
        """
        self._file.close()
        move_into_place(self._temporary, os.path.join(self.out_dir, self._name))

    def abort(self) -> None:
        """Close and remove the temporary file; the output is left as it was."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temporary)
