"""Finding the files to explain: the files named, and the image files in the folders named.

Folders are searched recursively, in name order, for files with an image extension;
hidden files and folders are skipped, and so is the output folder. Folders are compared
by what they are on disk (:func:`os.path.samestat`), not by how they are spelled, so the
output folder is recognised through a symbolic link or another spelling too: a run
never reads its own outputs.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

#: File name extensions searched for in folders (explicitly named files are always tried).
IMAGE_EXTENSIONS = frozenset({
    ".avif", ".bmp", ".dib", ".gif", ".jfif", ".jpe", ".jpeg", ".jpg", ".j2k", ".jp2",
    ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".qoi", ".tga", ".tif", ".tiff", ".webp",
})


class InputError(ValueError):
    """The paths given cannot be explained: one is missing, unreadable, or in the output
    folder, or they hold no image file."""


@dataclass(frozen=True)
class Input:
    """One input file.

    Attributes:
        path: the file's path, as found (a folder argument joined with the file's path
            inside it); shown in messages and in the summary.
        name: where its outputs go, relative to the output folder, without the target
            and extension parts: ``"sub/cat"`` (always with ``/``).
    """

    path: str
    name: str


def _stat(path: str) -> os.stat_result | None:
    """``os.stat(path)``, or ``None`` when nothing is there."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise InputError(f"cannot read {path!r}: {error.strerror or error}") from None


def _inside(path: str, folder: os.stat_result) -> bool:
    """Whether ``path`` is the folder ``folder`` (a stat result) or lies under it, with
    symbolic links resolved."""
    current = os.path.realpath(path)
    while True:
        try:
            if os.path.samestat(os.stat(current), folder):
                return True
        except OSError:
            pass
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent


def holds_run(folder: str) -> bool:
    """Whether ``folder`` holds a gradcam run's outputs: a run's lock, the journal of an
    interrupted run (``.gradcam-run.*``), ``summary.json`` with ``summary.csv``, or
    ``metrics.csv``."""
    try:
        with os.scandir(folder) as scan:
            names = {entry.name for entry in scan}
    except OSError:
        return False
    return (".gradcam.lock" in names or any(name.startswith(".gradcam-run.") for name in names)
            or {"summary.json", "summary.csv"} <= names or "metrics.csv" in names)


def _walk(folder: str, out: os.stat_result | None, skipped: list[str], runs: list[str] | None = None):
    """Image files under ``folder``: each folder's files by name, then its subfolders.

    Hidden entries are skipped, and so is the output folder ``out`` (appended to
    ``skipped`` when met) and any file that is a symbolic link into it. Symbolic links to
    folders are not followed; a folder reached twice (a bind mount) is searched once.
    """
    pending, visited = [folder], set()
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            info = os.stat(current)
        except OSError as error:
            raise InputError(f"cannot search the folder {current!r}: {error.strerror or error}") from None
        if (info.st_dev, info.st_ino) in visited:
            continue
        visited.add((info.st_dev, info.st_ino))
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if out is not None and os.path.samestat(entry.stat(follow_symlinks=False), out):
                    skipped.append(entry.path)
                elif holds_run(entry.path):
                    if runs is not None:
                        runs.append(entry.path)
                else:
                    subfolders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                if not (out is not None and entry.is_symlink() and _inside(entry.path, out)):
                    yield entry.path
        pending.extend(reversed(subfolders))


def find_inputs(paths, out_dir=None, skipped_runs: list | None = None) -> list[Input]:
    """List the files to explain: the files given, and the image files in the folders given.

    Folders are searched recursively for files with an extension in
    :data:`IMAGE_EXTENSIONS`; hidden files and folders are skipped, and so is the output
    folder ``out_dir`` wherever it is met, and any folder met in the search that holds a
    gradcam run's outputs (:func:`holds_run`): earlier outputs are not inputs. A file
    reached twice is listed once.

    Each input gets an output name: its path relative to the deepest folder holding all
    the inputs, without its extension (kept when two inputs of one folder differ only by
    extension), so that outputs never collide.

    Args:
        paths: file and folder paths, in order.
        out_dir: the output folder, never read from. Defaults to ``None``.
        skipped_runs: a list to which the folders skipped for holding a run's outputs
            are appended, or ``None``. Defaults to ``None``.

    Returns:
        A non-empty list of :class:`Input`, in the order given (folders sorted by name).

    Raises:
        InputError: a path does not exist or cannot be read, a path is the output folder
            or lies inside it (by real path), or no image file was found.

    Example:
        >>> [i.name for i in find_inputs(["photos/"], out_dir="gradcam-out")]
        ['cat', 'sub/dog']
    """
    paths = [os.fspath(p) for p in paths]
    out = _stat(os.fspath(out_dir)) if out_dir is not None else None
    if out is not None and not stat.S_ISDIR(out.st_mode):
        out = None  # not a folder: nothing can be inside it
    files, seen, skipped = [], set(), []
    for path in paths:
        info = _stat(path)
        if info is None:
            kind = "is a broken symbolic link" if os.path.lexists(path) else "does not exist"
            raise InputError(f"{path!r} {kind}.")
        if out is not None and _inside(path, out):
            spelled = "" if os.path.abspath(path) == os.path.abspath(out_dir) else f" {os.fspath(out_dir)!r}"
            where = ("is the output folder" + spelled if os.path.samestat(info, out)
                     else f"is inside the output folder {os.fspath(out_dir)!r}")
            raise InputError(f"{path!r} {where}: a run never reads its own outputs. "
                             "Choose another output folder.")
        found = _walk(path, out, skipped, skipped_runs) if stat.S_ISDIR(info.st_mode) else [path]
        for file in found:
            key = os.path.abspath(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    if not files:
        hint = f" ({', '.join(map(repr, skipped))} is the output folder, never searched)" if skipped else ""
        raise InputError(f"no image files found in {', '.join(map(repr, paths))}{hint}.")
    absolute = [os.path.abspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    relative = [os.path.relpath(a, root).replace(os.sep, "/") for a in absolute]
    stems = [os.path.splitext(r)[0] for r in relative]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    return [
        Input(file, stem if counts[stem.casefold()] == 1 else rel)
        for file, rel, stem in zip(files, relative, stems)
    ]
