"""``metrics.csv``: the values of a run of ``gradcam evaluate``, written as the run goes.

One row per image, method, target and metric, in input order; a file that could not be
explained gets one row with its error. Each image's values are recorded in the run's
journal (:class:`gradcam.io.journal.RunJournal`) as it finishes; the file is written from
the journal at the end, in the run's temporary folder, and moved into place by
:meth:`MetricsWriter.commit`: an interrupted run leaves the previous one, or none, and its
journal, to be resumed.
"""

from __future__ import annotations

import contextlib
import csv
import os

import numpy as np

from gradcam.io.files import move_into_place
from gradcam.io.journal import RunJournal
from gradcam.io.outputs import EVALUATION_FILES, OutputFolder

#: The columns of ``metrics.csv``.
METRICS_COLUMNS = ("path", "method", "metric", "target", "target_name", "value", "error")


class MetricsWriter:
    """Records a run's metric values in its journal as each image finishes, and writes
    ``metrics.csv`` from the journal at the end, with the mean of each method and metric.

    Args:
        folder: the :class:`~gradcam.io.outputs.OutputFolder`, entered.
        metrics: the metrics' names, in the order of the values given to :meth:`add`.
        journal: the run's :class:`~gradcam.io.journal.RunJournal`, started or resumed;
            ``None`` starts one of its own, removed on :meth:`abort`. Defaults to ``None``.
        paths: the run's inputs in order, the order of the rows; ``None`` for the order
            recorded. Defaults to ``None``.

    Raises:
        ValueError: ``folder`` is not entered.
    """

    def __init__(self, folder: OutputFolder, metrics, journal: RunJournal | None = None, paths=None):
        if folder.temporary is None:
            raise ValueError("MetricsWriter needs an entered OutputFolder.")
        self.out_dir = folder.path
        self.metrics = [str(m) for m in metrics]
        self.paths = None if paths is None else [str(p) for p in paths]
        (name,) = EVALUATION_FILES
        self._name = name
        self._temporary = os.path.join(folder.temporary, name)
        self._own_journal = journal is None
        if journal is None:
            journal = RunJournal(folder.path, "evaluate")
            journal.start({"metrics": self.metrics}, self.paths or [])
        self.journal = journal
        self.failed: list[tuple[str, str]] = []  # of the whole run, after means()

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
        self.journal.append({"path": path, "status": "ok", "maps": [list(m) for m in maps],
                             "values": values.tolist()})

    def add_failed(self, path: str, error: str) -> None:
        """Record an input that could not be explained, and why."""
        self.journal.append({"path": path, "status": "failed", "error": error})

    def means(self) -> dict[tuple[str, str], float]:
        """The mean value of each ``(method, metric)`` over the whole run (every image and
        target, a resumed run's too), in the order first recorded; sets :attr:`failed`."""
        sums: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], int] = {}
        self.failed = []
        for record in self.journal.records(self.paths):
            if record["status"] != "ok":
                self.failed.append((record["path"], record["error"]))
                continue
            for (method, _, _), row in zip(record["maps"], record["values"]):
                for metric, value in zip(self.metrics, row):
                    sums[(method, metric)] = sums.get((method, metric), 0.0) + value
                    counts[(method, metric)] = counts.get((method, metric), 0) + 1
        return {key: sums[key] / counts[key] for key in sums}

    def commit(self) -> None:
        """Write ``metrics.csv`` from the journal, move it into the output folder and
        remove the journal.

        Raises:
            OSError: it cannot be written or moved (the temporary is left for
                :meth:`abort`).
        """
        with open(self._temporary, "x", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(METRICS_COLUMNS)
            for record in self.journal.records(self.paths):
                if record["status"] != "ok":
                    writer.writerow([record["path"], "", "", "", "", "", record["error"]])
                    continue
                for (method, index, name), row in zip(record["maps"], record["values"]):
                    for metric, value in zip(self.metrics, row):
                        writer.writerow([record["path"], method, metric, index, name or "", f"{value:.9g}", ""])
        move_into_place(self._temporary, os.path.join(self.out_dir, self._name))
        self.journal.remove()

    def abort(self) -> None:
        """Remove the temporary file; the output is left as it was, and so is the
        journal given (for a resumed run), which is closed."""
        with contextlib.suppress(OSError):
            os.unlink(self._temporary)
        if self._own_journal:
            self.journal.remove()
        else:
            self.journal.close()
