"""Writing files atomically: each file is written under a temporary name, then renamed.

A run writes its temporary files in a folder of its own inside the output folder
(``.gradcam-tmp-<random>``), so that whatever it leaves when it is killed is in one
place, with a name no other program uses: the next run in that output folder removes
it (:func:`remove_stale_temporaries`) once it holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid

#: The start of the name of a run's temporary folder.
TEMPORARY_PREFIX = ".gradcam-tmp-"


def make_temporary_folder(folder) -> str:
    """Create a new, empty temporary folder for one run inside ``folder``.

    Args:
        folder: an existing folder (the output folder).

    Returns:
        The new folder's path: ``folder/.gradcam-tmp-<random>``.

    Raises:
        OSError: it cannot be created.
    """
    path = os.path.join(os.fspath(folder), f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    return path


def remove_stale_temporaries(folder) -> list[str]:
    """Remove the temporary folders that runs killed in ``folder`` left behind.

    Call it only while holding the folder's lock (:class:`gradcam.io.lock.FolderLock`):
    then no other run is using them.

    Args:
        folder: the output folder.

    Returns:
        The paths removed.
    """
    folder = os.fspath(folder)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        with os.scandir(folder) as scan:
            stale = sorted(e.path for e in scan if e.name.startswith(TEMPORARY_PREFIX)
                           and e.is_dir(follow_symlinks=False))
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _temporary_path(path: str, temporary_folder: str | None) -> str:
    directory, name = os.path.split(path)
    return os.path.join(temporary_folder or directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def move_into_place(temporary: str, path: str) -> None:
    """Rename ``temporary`` to ``path``, replacing it; across file systems (``path`` in a
    folder that is a mount point or a link to another disk), copy it next to ``path``
    first, so that ``path`` still appears complete or not at all.

    Raises:
        OSError: neither works; ``temporary`` is left for the caller to remove.
    """
    try:
        os.replace(temporary, path)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        nearby = _temporary_path(path, None)
        try:
            shutil.copyfile(temporary, nearby)
            os.replace(nearby, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(nearby)
            raise
        os.unlink(temporary)


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb", temporary_folder=None, **open_kwargs):
    """Open a temporary file; on success rename it to ``path``.

    On any error (or interruption) inside the ``with`` block the temporary file is
    removed and ``path`` is left as it was: never half written.

    Args:
        path: the file to write.
        mode: ``"wb"`` or ``"w"``. Defaults to ``"wb"``.
        temporary_folder: where the temporary file is written (on the file system of
            ``path``, e.g. from :func:`make_temporary_folder`); ``None`` for the folder of
            ``path`` (``.name.<random>.tmp``). Defaults to ``None``.
        **open_kwargs: passed to :func:`open` (``newline``, ``encoding``).

    Yields:
        The open temporary file.

    Raises:
        OSError: the file cannot be written.
    """
    path = os.fspath(path)
    temporary = _temporary_path(path, None if temporary_folder is None else os.fspath(temporary_folder))
    try:
        with open(temporary, mode.replace("w", "x"), **open_kwargs) as file:
            yield file
        move_into_place(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
