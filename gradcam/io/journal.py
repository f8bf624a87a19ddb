"""A run's journal: what a run over image files has done so far, kept on disk as it goes,
so that an interrupted run can be resumed (``gradcam explain --resume``).

The journal is a hidden folder in the output folder, ``.gradcam-run.<command>``, that
holds:

- ``run.json``: the run's settings and a digest of its inputs, written once when the run
  starts (atomically);
- ``records.jsonl``: one JSON line per image, appended and flushed as soon as the image's
  outputs are complete (its overlays written): its summary record, or why it failed;
- ``heatmaps.raw``: each explained image's maps, float32, appended before its record.

A record is written after everything it names, so a record is never ahead of the files:
a run killed at any point (even by ``SIGKILL``) leaves at most a partial last line, and
maps without a record, which the next run drops (:meth:`RunJournal.resume`). The run's
summaries are made from the journal at the end, and the journal is then removed
(:meth:`RunJournal.remove`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass

import numpy as np

from gradcam.io.files import atomic_file

#: The start of a journal folder's name; the command's name follows: ``.gradcam-run.explain``.
JOURNAL_PREFIX = ".gradcam-run."


def inputs_digest(paths) -> str:
    """A digest of the inputs' paths, in order: two runs over the same files share it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fspath(path).encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def setting_differences(recorded: dict, given: dict) -> list[tuple[str, object, object]]:
    """The settings whose values differ: ``(name, recorded value, given value)``, by name."""
    names = sorted(set(recorded) | set(given))
    return [(name, recorded.get(name), given.get(name)) for name in names
            if recorded.get(name) != given.get(name)]


@dataclass
class _Entry:
    """Where an image's latest record lies in ``records.jsonl``."""

    offset: int
    ok: bool
    slot: int | None


class RunJournal:
    """The journal of one command's run in an output folder.

    Args:
        out_dir: the output folder.
        command: the command's name (``"explain"``, ``"evaluate"``): each keeps its own.

    Attributes:
        path: the journal's folder.

    Example:
        >>> journal = RunJournal("gradcam-out", "explain")
        >>> journal.start({"model": "tiny.keras"}, ["a.png", "b.png"])
        >>> journal.append({"path": "a.png", "status": "ok"})
        >>> journal.done
        {'a.png'}
    """

    def __init__(self, out_dir, command: str):
        self.path = os.path.join(os.fspath(out_dir), JOURNAL_PREFIX + command)
        self._entries: dict[str, _Entry] = {}
        self._records = None
        self._raw = None
        self._slots = 0
        self._map_shape: tuple[int, ...] | None = None

    # -- reading ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether a run left a journal here (it was interrupted, or is running)."""
        return os.path.isfile(os.path.join(self.path, "run.json"))

    def run_info(self) -> dict:
        """What ``run.json`` says: ``{"settings", "inputs", "digest"}``.

        Raises:
            ValueError: there is no journal, or it cannot be read.
        """
        try:
            with open(os.path.join(self.path, "run.json"), encoding="utf-8") as file:
                info = json.load(file)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the journal {self.path!r}: {error}") from None
        if not isinstance(info, dict) or not isinstance(info.get("settings"), dict):
            raise ValueError(f"cannot read the journal {self.path!r}: run.json holds no settings.")
        return info

    def read_records(self) -> list[dict]:
        """The complete records, in the order written (a partial last line is left out)."""
        records = []
        with contextlib.suppress(FileNotFoundError):
            with open(os.path.join(self.path, "records.jsonl"), "rb") as file:
                for line in file:
                    if not line.endswith(b"\n"):
                        break
                    with contextlib.suppress(ValueError):
                        records.append(json.loads(line))
        return records

    @property
    def done(self) -> set[str]:
        """The paths of the images recorded as explained (open journals only)."""
        return {path for path, entry in self._entries.items() if entry.ok}

    # -- writing ---------------------------------------------------------------------------
    def start(self, settings: dict, paths) -> None:
        """Start a new journal (removing any earlier one) for a run over ``paths``.

        Args:
            settings: the run's settings (JSON values), checked on :meth:`resume`.
            paths: the inputs' paths, in order.

        Raises:
            OSError: the journal cannot be written.
        """
        paths = [os.fspath(p) for p in paths]
        self.remove()
        os.makedirs(self.path)
        with atomic_file(os.path.join(self.path, "run.json"), "w", encoding="utf-8") as file:
            json.dump({"settings": settings, "inputs": len(paths), "digest": inputs_digest(paths)}, file,
                      ensure_ascii=False)
        self._open(0, 0)

    def resume(self) -> None:
        """Open the journal to go on: read its records, drop a partial last line and any
        maps without a record.

        Raises:
            ValueError: there is no journal.
            OSError: the journal cannot be written.
        """
        self.run_info()
        records_path = os.path.join(self.path, "records.jsonl")
        offset, good = 0, 0
        with contextlib.suppress(FileNotFoundError):
            with open(records_path, "rb") as file:
                for line in file:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        record = json.loads(line)
                    except ValueError:
                        break
                    self._index(record, offset)
                    offset += len(line)
                    good = offset
        slot_bytes = int(np.prod(self._map_shape)) * 4 if self._map_shape else 0
        self._open(good, self._slots * slot_bytes)

    def _index(self, record: dict, offset: int) -> None:
        slot = record.get("slot")
        if slot is not None:
            self._slots = max(self._slots, slot + 1)
            self._map_shape = tuple(record["map_shape"])
        self._entries[record["path"]] = _Entry(offset, record.get("status") == "ok", slot)

    def _open(self, records_size: int, raw_size: int) -> None:
        records_path = os.path.join(self.path, "records.jsonl")
        raw_path = os.path.join(self.path, "heatmaps.raw")
        for path, size in ((records_path, records_size), (raw_path, raw_size)):
            with open(path, "ab") as file:
                file.truncate(size)
        self._records = open(records_path, "ab")
        self._raw = open(raw_path, "ab")

    def append(self, record: dict, heatmaps: np.ndarray | None = None) -> None:
        """Record an image, after its outputs are complete: ``record`` (JSON values, with
        its ``"path"`` and ``"status"``) and, for an explained image, its maps.

        Raises:
            OSError: the journal cannot be written.
        """
        record = dict(record)
        if heatmaps is not None:
            heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
            self._raw.write(heatmaps.tobytes())
            self._raw.flush()
            record["slot"], record["map_shape"] = self._slots, list(heatmaps.shape)
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        offset = self._records.tell()
        self._records.write(line)
        self._records.flush()
        self._index(record, offset)

    # -- the end ---------------------------------------------------------------------------
    def records(self, paths=None):
        """The latest record of each of ``paths`` that has one, in the order of ``paths``
        (``None``: of each image, in the order first recorded), read one at a time.

        Yields:
            The records, as dicts.
        """
        self._records.flush()
        paths = list(self._entries) if paths is None else paths
        with open(os.path.join(self.path, "records.jsonl"), "rb") as file:
            for path in paths:
                entry = self._entries.get(os.fspath(path))
                if entry is not None:
                    file.seek(entry.offset)
                    yield json.loads(file.readline())

    def heatmaps(self, slots) -> np.ndarray | None:
        """The maps of the explained images' records whose ``"slot"`` are ``slots``,
        stacked in that order: float32 ``(N, K, h, w)``; ``None`` when there is none."""
        slots = list(slots)
        if not slots:
            return None
        self._raw.flush()
        raw = np.memmap(os.path.join(self.path, "heatmaps.raw"), np.float32, "r",
                        shape=(self._slots, *self._map_shape))
        return raw[: len(slots)] if slots == list(range(len(slots))) else raw[slots]

    def close(self) -> None:
        """Close the journal's files; it stays on disk for a later :meth:`resume`."""
        for file in (self._records, self._raw):
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
        self._records = self._raw = None

    def remove(self) -> None:
        """Close and remove the journal (the run's summaries are written)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
