"""A run's output folder: the names of the files in it, the overwrite check, and the
folder held for the run (its lock and temporary folder).

In the output folder a run writes one overlay per image, target and method,
``<name>.<index>-<class name>.<method>.<format>`` (e.g. ``sub/cat.282-tiger_cat.gradcam.jpg``
for ``sub/cat.jpg``), and :data:`RUN_FILES`. While it runs the folder also holds the lock
(:data:`gradcam.io.lock.LOCK_NAME`) and the run's temporary folder
(:data:`gradcam.io.files.TEMPORARY_PREFIX`), both removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil

from gradcam.io.files import make_temporary_folder, remove_stale_temporaries
from gradcam.io.images import OVERLAY_FORMATS
from gradcam.io.inputs import Input
from gradcam.io.lock import FolderLock

#: The files a run of ``gradcam explain`` writes in the output folder besides the overlays.
RUN_FILES = ("heatmaps.npz", "summary.csv", "summary.json")

#: The files a run of ``gradcam evaluate`` writes in the output folder.
EVALUATION_FILES = ("metrics.csv",)

# The method is optional after a class target's label (its index and name): the overlays
# of gradcam 0.1, which had none, are found too. Another target's label is its name (a
# letter first), always followed by the method.
_OVERLAY_NAME = re.compile(
    r"^(?P<stem>.+)\.(\d+(-[A-Za-z0-9_-]*)?(\.[a-z0-9+]+)?|[A-Za-z][A-Za-z0-9_-]*\.[a-z0-9+]+)\.("
    + "|".join(OVERLAY_FORMATS) + r")$")


def target_label(index: int, name: str | None) -> str:
    """The part of an overlay's file name naming its target: ``"282-tiger_cat"`` for a
    class, and for another target (``index`` -1) its name made file-name safe, which
    must then start with a letter: ``"segmentation_of_12"``.

    Raises:
        ValueError: a target other than a class whose name does not start with a letter.
    """
    slug = re.sub(r"[^A-Za-z0-9-]+", "_", name or "").strip("_")
    if index < 0:
        if not slug[:1].isalpha():
            raise ValueError(f"the overlay label of a target that is not a class must start with a letter; "
                             f"got {name!r}.")
        return slug
    return f"{index}-{slug}" if slug else str(index)


def overlay_name(item: Input, index: int, class_name: str | None, format: str = "jpg",
                 method: str = "gradcam") -> str:
    """The overlay's path relative to the output folder: ``"sub/cat.282-tiger_cat.gradcam.jpg"``.

    Raises:
        ValueError: a method name that is not lowercase letters, digits and ``+``.
    """
    if not re.fullmatch(r"[a-z0-9+]+", method):
        raise ValueError(f"method must be a method's name such as 'gradcam++'; got {method!r}.")
    return f"{item.name}.{target_label(index, class_name)}.{method}.{format}"


def existing_outputs(out_dir, inputs, limit: int = 5, run_files=RUN_FILES, overlays: bool = True) -> list[str]:
    """Files in ``out_dir`` that a run on ``inputs`` would write: its run-level files
    and any overlay of one of the inputs (whatever its class and format).

    Args:
        out_dir: the output folder.
        inputs: the :class:`~gradcam.io.inputs.Input` list of the run.
        limit: stop after finding this many. Defaults to ``5``.
        run_files: the run-level files: :data:`RUN_FILES` for ``gradcam explain``,
            :data:`EVALUATION_FILES` for ``gradcam evaluate``. Defaults to :data:`RUN_FILES`.
        overlays: whether to look for the inputs' overlays. Defaults to ``True``.

    Returns:
        Up to ``limit`` paths of existing files.
    """
    out_dir = os.fspath(out_dir)
    found = [os.path.join(out_dir, f) for f in run_files if os.path.exists(os.path.join(out_dir, f))]
    stems_in: dict[str, dict[str, str]] = {}
    for item in inputs if overlays else ():
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


class OutputFolder:
    """The output folder, held for one run; a context manager.

    Entering creates the folder if needed, takes its lock (:class:`FolderLock`), removes
    the temporary folders of runs that were killed, and creates this run's temporary
    folder. Leaving removes the temporary folder and the lock, and the output folder
    itself if this run created it and left nothing in it.

    Args:
        path: the output folder.

    Attributes:
        path: the output folder, as given.
        temporary: this run's temporary folder (while entered), on the same file system.

    Raises:
        gradcam.io.lock.FolderLockedError: another run holds the folder (on entering).
        OSError: the folder cannot be created or written to (on entering).

    Example:
        >>> with OutputFolder("gradcam-out") as folder:
        ...     report = explain_files(engine, inputs, folder, settings)
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.temporary: str | None = None
        self._lock = FolderLock(self.path)
        self._created: list[str] = []  # the folders this run created, deepest first

    def __enter__(self) -> OutputFolder:
        folder = os.path.abspath(self.path)
        while not os.path.lexists(folder) and folder != os.path.dirname(folder):
            self._created.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(self.path, exist_ok=True)
        try:
            self._lock.acquire()
            remove_stale_temporaries(self.path)
            self.temporary = make_temporary_folder(self.path)
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._leave()

    def _leave(self) -> None:
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary = None
        self._lock.release()
        with contextlib.suppress(OSError):
            for folder in self._created:
                os.rmdir(folder)  # only if empty
        self._created = []


def _inside_folder(out_dir: str, relative) -> str | None:
    """``out_dir/relative`` when ``relative`` is a relative path that stays inside
    ``out_dir``; else ``None``."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative):
        return None
    path = os.path.normpath(os.path.join(out_dir, *relative.split("/")))
    return path if os.path.commonpath([os.path.abspath(out_dir), os.path.abspath(path)]) == os.path.abspath(
        out_dir) else None


def previous_run_files(out_dir, run_files=RUN_FILES, journal=None) -> list[str]:
    """The files that the earlier run in ``out_dir`` lists as its own: its run-level files
    and the overlays its ``summary.json`` names, and those of the records of an
    interrupted run's journal. Files it does not list are not among them.

    Args:
        out_dir: the output folder.
        run_files: the run-level files (:data:`RUN_FILES` or :data:`EVALUATION_FILES`).
            Defaults to :data:`RUN_FILES`.
        journal: the :class:`~gradcam.io.journal.RunJournal` of that command in
            ``out_dir``, or ``None``. Defaults to ``None``.

    Returns:
        The paths of the files that exist, in the order found.
    """
    import json

    out_dir = os.fspath(out_dir)
    records = []
    if "summary.json" in run_files:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            with open(os.path.join(out_dir, "summary.json"), encoding="utf-8") as file:
                records += list(json.load(file).get("images") or [])
    if journal is not None:
        records += journal.read_records()
    found = [os.path.join(out_dir, name) for name in run_files]
    for record in records:
        for target in record.get("targets") or () if isinstance(record, dict) else ():
            path = _inside_folder(out_dir, target.get("overlay") if isinstance(target, dict) else None)
            if path is not None:
                found.append(path)
    return [path for path in dict.fromkeys(found) if os.path.isfile(path)]
