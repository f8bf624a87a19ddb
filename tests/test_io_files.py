"""Atomic files, a run's temporary folder, and removing what killed runs left."""

import errno
import os

import pytest

from gradcam.io import files
from gradcam.io.files import atomic_file, make_temporary_folder, move_into_place, remove_stale_temporaries


def test_atomic_file_replaces_only_on_success(tmp_path):
    path = tmp_path / "result.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as file:
            file.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["result.bin"]
    with atomic_file(path) as file:
        file.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["result.bin"]


def test_atomic_file_writes_in_the_temporary_folder(tmp_path):
    temporary = make_temporary_folder(tmp_path)
    assert os.path.dirname(temporary) == str(tmp_path)
    assert os.path.basename(temporary).startswith(".gradcam-tmp-") and os.listdir(temporary) == []
    with atomic_file(tmp_path / "a.txt", "w", temporary_folder=temporary) as file:
        file.write("text")
        [name] = os.listdir(temporary)
        assert name.startswith(".a.txt.") and name.endswith(".tmp")
        assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "text" and os.listdir(temporary) == []


def test_move_into_place_copies_across_file_systems(tmp_path, monkeypatch):
    source = tmp_path / "tmp" / "a.bin"
    source.parent.mkdir()
    source.write_bytes(b"data")
    replace, calls = os.replace, []

    def other_disk(src, dst):  # the first rename crosses file systems
        calls.append((os.path.dirname(src), os.path.dirname(dst)))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return replace(src, dst)

    monkeypatch.setattr(files.os, "replace", other_disk)
    move_into_place(str(source), str(tmp_path / "a.bin"))
    assert (tmp_path / "a.bin").read_bytes() == b"data"
    assert calls[1] == (str(tmp_path), str(tmp_path))  # renamed from a copy next to it
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "tmp"] and os.listdir(tmp_path / "tmp") == []


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = make_temporary_folder(tmp_path)
    os.makedirs(os.path.join(stale, "sub"))
    for name in [".summary.csv.0123456789ab.tmp", "sub/.cat.282-tiger_cat.jpg.0123456789ab.tmp"]:
        with open(os.path.join(stale, name), "w") as file:
            file.write("half")
    (tmp_path / ".gradcam-tmp-note.txt").write_text("a file, not a run's folder")
    (tmp_path / "cat.282-tiger_cat.jpg").write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(os.listdir(tmp_path)) == [".gradcam-tmp-note.txt", "cat.282-tiger_cat.jpg"]
    assert remove_stale_temporaries(tmp_path / "missing") == []
