"""A run's output folder: overlay names, the overwrite check, and the folder held for a run."""

import os

import pytest

from gradcam.io.files import make_temporary_folder
from gradcam.io.inputs import Input
from gradcam.io.lock import LOCK_NAME, FolderLock, FolderLockedError
from gradcam.io.outputs import OutputFolder, existing_outputs, overlay_name, target_label


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_overlay_names():
    assert target_label(282, "tiger cat") == "282-tiger_cat"
    assert target_label(3, "jack-o'-lantern") == "3-jack-o_-lantern"
    assert target_label(7, None) == "7"
    cat = Input("p/sub/cat.jpg", "sub/cat")
    assert overlay_name(cat, 282, "tiger cat") == "sub/cat.282-tiger_cat.gradcam.jpg"
    assert overlay_name(cat, 282, "tiger cat", "png") == "sub/cat.282-tiger_cat.gradcam.png"
    assert overlay_name(cat, 7, None, "webp", "gradcam++") == "sub/cat.7.gradcam++.webp"
    with pytest.raises(ValueError, match="method must be a method's name such as 'gradcam\\+\\+'; got '../x'"):
        overlay_name(cat, 7, None, "jpg", "../x")


def test_existing_outputs_finds_run_files_and_overlays_of_any_class_and_format(tmp_path):
    inputs = [Input("in/cat.jpg", "cat"), Input("in/sub/dog.jpg", "sub/dog")]
    out = tmp_path / "out"
    assert existing_outputs(out, inputs) == []
    touch(out / "sub" / "dogma.1.jpg")  # another image's overlay
    touch(out / "sub" / "dog.txt")
    assert existing_outputs(out, inputs) == []
    # this version's names (with the method) and gradcam 0.1's (without)
    for name in ["dog.208-Labrador_retriever.gradcam.png", "dog.208.scorecam.webp", "dog.3-x.gradcam++.jpg",
                 "dog.208-Labrador_retriever.png", "dog.208.webp", "dog.3-x.jpg"]:
        touch(out / "sub" / name)
        assert existing_outputs(out, inputs) == [str(out / "sub" / name)]
        os.unlink(out / "sub" / name)
    touch(out / "sub" / "dog.208-Labrador_retriever.jpg")
    touch(out / "summary.json")
    assert existing_outputs(out, inputs) == [
        str(out / "summary.json"), str(out / "sub" / "dog.208-Labrador_retriever.jpg")]


def test_output_folder_is_locked_and_given_back_as_found(tmp_path):
    out = tmp_path / "new" / "out"
    with OutputFolder(out) as folder:
        assert sorted(os.listdir(out)) == sorted([LOCK_NAME, os.path.basename(folder.temporary)])
        with pytest.raises(FolderLockedError):
            OutputFolder(out).__enter__()
        assert sorted(os.listdir(out)) == sorted([LOCK_NAME, os.path.basename(folder.temporary)])
    assert not (tmp_path / "new").exists()  # created by the run, left empty: removed
    touch(out / "kept.jpg")
    with OutputFolder(out) as folder:
        touch(out / "written.jpg")
    assert sorted(os.listdir(out)) == ["kept.jpg", "written.jpg"] and folder.temporary is None


def test_output_folder_removes_what_killed_runs_left(tmp_path):
    stale = make_temporary_folder(tmp_path)
    touch(tmp_path / os.path.basename(stale) / ".summary.csv.0123456789ab.tmp")
    with OutputFolder(tmp_path) as folder:
        assert sorted(os.listdir(tmp_path)) == sorted([LOCK_NAME, os.path.basename(folder.temporary)])
    assert os.listdir(tmp_path) == []


def test_output_folder_held_elsewhere_is_left_alone(tmp_path):
    stale = make_temporary_folder(tmp_path)  # another run's, which is alive
    with FolderLock(tmp_path):
        with pytest.raises(FolderLockedError):
            OutputFolder(tmp_path).__enter__()
        assert os.path.isdir(stale)


def test_output_folder_that_cannot_be_created(tmp_path):
    touch(tmp_path / "file")
    with pytest.raises(OSError):
        OutputFolder(tmp_path / "file").__enter__()
    with pytest.raises(OSError):
        OutputFolder(tmp_path / "file" / "out").__enter__()
    assert os.listdir(tmp_path) == ["file"]
