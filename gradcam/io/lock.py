"""The lock that keeps two runs out of one output folder.

A run creates ``.gradcam.lock`` in its output folder with ``O_CREAT | O_EXCL``, which
fails when the file exists, atomically: of two runs starting together, one gets it. The
file holds the run's process id, host and start time, and is removed when the run ends.
A run that finds the file refuses to start, unless the lock is stale: its process no
longer runs on this host (a run that was killed), in which case the lock is removed and
taken. A lock from another host, or one that cannot be read, is never taken over: the
message names the file to remove by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket

#: The lock's file name, in the output folder.
LOCK_NAME = ".gradcam.lock"


class FolderLockedError(RuntimeError):
    """Another run holds the folder's lock."""


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or ``None``
    where that cannot be read. Tells a process from a later one given the same id."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def _running(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` (started at ``started``) still runs on this host."""
    if os.name != "posix" or not isinstance(pid, int) or pid <= 0:
        return True  # no safe way to ask: assume it does
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's process)
    now = _start_time(pid)
    return started is None or now is None or now == started


class FolderLock:
    """The lock of one output folder; a context manager.

    Args:
        folder: the output folder (it must exist).

    Example:
        >>> with FolderLock("gradcam-out"):
        ...     pass  # no other run writes in gradcam-out here
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._content: str | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._content is not None

    def _holder(self) -> tuple[str, dict | None]:
        """The lock file's text and what it says (``None`` if it cannot be parsed)."""
        try:
            with open(self.path, encoding="utf-8") as file:
                text = file.read(4096)
        except FileNotFoundError:
            return "", {}
        except OSError:
            return "", None
        try:
            holder = json.loads(text)
        except ValueError:
            return text, None
        return text, holder if isinstance(holder, dict) else None

    def _message(self, holder: dict | None) -> str:
        if holder:
            who = (f"process {holder.get('pid')} on {holder.get('host')}, since "
                   f"{holder.get('since')}")
        else:
            who = "its lock file cannot be read"
        return (f"{self.folder!r} is in use by another gradcam run ({who}): wait for it to "
                f"finish, or choose another output folder. If no run is using it, remove "
                f"{self.path!r}.")

    def acquire(self) -> None:
        """Take the lock, taking over a stale one.

        Raises:
            FolderLockedError: another run holds it (the message says which).
            OSError: the lock file cannot be created (a read-only folder).
        """
        if self.held:
            raise RuntimeError(f"{self.path!r} is already held by this FolderLock.")
        content = json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid()),
            "since": datetime.datetime.now().isoformat(timespec="seconds"),
        })
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                text, holder = self._holder()
                if holder == {}:
                    continue  # removed meanwhile: try again
                if holder is None or holder.get("host") != socket.gethostname() or _running(
                        holder.get("pid"), holder.get("started")):
                    raise FolderLockedError(self._message(holder)) from None
                if self._holder()[0] == text:  # still the same stale lock
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(content)
            self._content = content
            return
        raise FolderLockedError(self._message(self._holder()[1]))

    def release(self) -> None:
        """Remove the lock file, if this object holds the lock and it is still its own."""
        if not self.held:
            return
        if self._holder()[0] == self._content:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._content = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
