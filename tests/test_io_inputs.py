"""Finding the inputs: folders walked in order, output names, and never the output folder."""

import os

import pytest

from gradcam.io.inputs import InputError, find_inputs


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_find_inputs_walks_folders_in_order_and_names_outputs(tmp_path):
    photos = tmp_path / "photos"
    for name in ["b.jpg", "a.PNG", "notes.txt", ".hidden.jpg", "sub/c.jpeg", ".cache/d.jpg", "sub/deeper/e.gif",
                 "z/f.png"]:
        touch(photos / name)
    inputs = find_inputs([photos])
    assert [os.path.relpath(i.path, photos) for i in inputs] == [
        "a.PNG", "b.jpg", os.path.join("sub", "c.jpeg"), os.path.join("sub", "deeper", "e.gif"),
        os.path.join("z", "f.png")]
    assert [i.name for i in inputs] == ["a", "b", "sub/c", "sub/deeper/e", "z/f"]


def test_files_named_are_kept_whatever_their_extension_and_repeats_dropped(tmp_path):
    image = touch(tmp_path / "x" / "cat.jpg")
    notes = touch(tmp_path / "x" / "notes.txt")
    inputs = find_inputs([image, tmp_path / "x", notes])
    assert [i.name for i in inputs] == ["cat", "notes"]
    assert inputs[1].path == str(notes)


def test_a_missing_path_is_an_error(tmp_path):
    touch(tmp_path / "cat.jpg")
    with pytest.raises(InputError, match=f"^'{tmp_path / 'gone.jpg'}' does not exist.$"):
        find_inputs([tmp_path / "cat.jpg", tmp_path / "gone.jpg"])
    os.symlink(tmp_path / "nowhere", tmp_path / "broken.jpg")
    with pytest.raises(InputError, match="broken.jpg' is a broken symbolic link.$"):
        find_inputs([tmp_path / "broken.jpg"])


def test_no_image_found_is_an_error(tmp_path):
    touch(tmp_path / "empty" / "notes.txt")
    with pytest.raises(InputError, match=f"^no image files found in '{tmp_path / 'empty'}'.$"):
        find_inputs([tmp_path / "empty"])


def test_names_never_collide(tmp_path):
    for name in ["a/x/cat.jpg", "b/x/cat.jpg", "a/x/cat.png"]:
        touch(tmp_path / name)
    inputs = find_inputs([tmp_path / "a" / "x", tmp_path / "b" / "x"])
    assert [i.name for i in inputs] == ["a/x/cat.jpg", "a/x/cat.png", "b/x/cat"]


def test_output_folder_inside_an_input_folder_is_not_searched(tmp_path):
    touch(tmp_path / "cat.jpg")
    touch(tmp_path / "gradcam-out" / "cat.282-tiger_cat.jpg")
    assert [i.name for i in find_inputs([tmp_path], out_dir=tmp_path / "gradcam-out")] == ["cat"]
    # the same folder spelled another way, and through a symbolic link
    os.symlink(tmp_path / "gradcam-out", tmp_path / "link")
    for out in [tmp_path / "sub" / ".." / "gradcam-out", tmp_path / "link"]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert [i.name for i in find_inputs([tmp_path], out_dir=out)] == ["cat"]


def test_output_folder_alone_in_an_input_folder_says_why_nothing_was_found(tmp_path):
    touch(tmp_path / "in" / "out" / "cat.282-tiger_cat.jpg")
    with pytest.raises(InputError, match=(
            f"^no image files found in '{tmp_path / 'in'}' \\('{tmp_path / 'in' / 'out'}' is the output "
            "folder, never searched\\).$")):
        find_inputs([tmp_path / "in"], out_dir=tmp_path / "in" / "out")


def test_an_input_that_is_the_output_folder_is_refused(tmp_path):
    photos = tmp_path / "photos"
    touch(photos / "cat.jpg")
    touch(photos / "cat.282-tiger_cat.jpg")
    os.symlink(photos, tmp_path / "link")
    with pytest.raises(InputError, match=f"^'{photos}' is the output folder: a run never reads its own outputs"):
        find_inputs([photos], out_dir=photos)
    with pytest.raises(InputError, match=f"^'{photos}' is the output folder '{tmp_path / 'link'}': "):
        find_inputs([photos], out_dir=tmp_path / "link")
    inside = f"^'{photos / 'cat.jpg'}' is inside the output folder '{tmp_path / 'link'}'"
    with pytest.raises(InputError, match=inside):
        find_inputs([photos / "cat.jpg"], out_dir=tmp_path / "link")
    with pytest.raises(InputError, match="is inside the output folder"):
        find_inputs([tmp_path / "link" / "cat.jpg"], out_dir=photos)


def test_a_file_linked_into_the_output_folder_is_skipped(tmp_path):
    touch(tmp_path / "in" / "cat.jpg")
    overlay = touch(tmp_path / "out" / "cat.282-tiger_cat.jpg")
    os.symlink(overlay, tmp_path / "in" / "linked.jpg")
    assert [i.name for i in find_inputs([tmp_path / "in"], out_dir=tmp_path / "out")] == ["cat"]
    assert [i.name for i in find_inputs([tmp_path / "in"])] == ["cat", "linked"]


def test_an_unreadable_folder_is_an_error(tmp_path, monkeypatch):
    locked = tmp_path / "in" / "locked"
    touch(locked / "cat.jpg")
    scandir = os.scandir

    def denied(path):  # as for a folder without read permission (root may read any)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(InputError, match=f"^cannot search the folder '{locked}': Permission denied$"):
        find_inputs([tmp_path / "in"])
