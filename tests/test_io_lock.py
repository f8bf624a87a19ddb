"""The output folder's lock: one run at a time, stale locks of dead processes taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from gradcam.io import lock as lock_module
from gradcam.io.lock import LOCK_NAME, FolderLock, FolderLockedError


def dead_pid() -> int:
    """The id of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant(folder, **holder):
    (folder / LOCK_NAME).write_text(json.dumps(holder))


def test_a_second_lock_is_refused_until_the_first_is_released(tmp_path):
    first = FolderLock(tmp_path)
    first.acquire()
    holder = json.loads((tmp_path / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(FolderLockedError, match=(
            f"^'{tmp_path}' is in use by another gradcam run \\(process {os.getpid()} on "
            f"{socket.gethostname()}, since .*\\): wait for it to finish, or choose another output "
            f"folder. If no run is using it, remove '{tmp_path / LOCK_NAME}'.$")):
        FolderLock(tmp_path).acquire()
    first.release()
    assert os.listdir(tmp_path) == []
    with FolderLock(tmp_path) as second:
        assert second.held and os.listdir(tmp_path) == [LOCK_NAME]
    assert os.listdir(tmp_path) == [] and not second.held


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    plant(tmp_path, pid=dead_pid(), host=socket.gethostname(), started=None, since="earlier")
    with FolderLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []


def test_a_process_id_given_to_a_later_process_is_stale(tmp_path):
    # this process's id, with another start time: the locking process ended and the id
    # was given again
    started = lock_module._start_time(os.getpid())
    assert started is not None
    plant(tmp_path, pid=os.getpid(), host=socket.gethostname(), started=str(int(started) - 1), since="earlier")
    with FolderLock(tmp_path) as taken:
        assert taken.held


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"pid": 1, "host": "elsewhere", "since": "x"})])
def test_unreadable_and_other_hosts_locks_are_never_taken(tmp_path, content):
    (tmp_path / LOCK_NAME).write_text(content)
    with pytest.raises(FolderLockedError, match="If no run is using it, remove"):
        FolderLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == content


def test_release_leaves_a_lock_that_is_not_its_own(tmp_path):
    taken = FolderLock(tmp_path)
    taken.acquire()
    plant(tmp_path, pid=12345, host="elsewhere", since="later")  # someone removed ours and locked
    taken.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "elsewhere"
