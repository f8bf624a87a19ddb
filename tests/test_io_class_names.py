"""Class-names files: one name per line, UTF-8, bounded; each problem named with its line."""

import pytest

from gradcam.io.class_names import MAX_BYTES, ClassNamesError, check_class_count, read_class_names


def write(tmp_path, data: bytes):
    path = tmp_path / "names.txt"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data", [
    b"cat\ndog\nbird",
    b"cat\ndog\nbird\n",
    b"cat\ndog\nbird\n\n",  # a blank trailing line
    b"cat\r\ndog\r\nbird\r\n  \r\n",  # Windows line endings, a line of spaces at the end
    b"\xef\xbb\xbfcat\ndog\n  bird  \n",  # a byte-order mark, spaces around a name
])
def test_one_name_per_line(tmp_path, data):
    assert read_class_names(write(tmp_path, data)) == ["cat", "dog", "bird"]


def test_names_keep_their_inner_spaces_and_any_script(tmp_path):
    path = write(tmp_path, "tiger cat\nchat tigré\n猫\n".encode())
    assert read_class_names(path) == ["tiger cat", "chat tigré", "猫"]


@pytest.mark.parametrize("data, message", [
    (b"cat\n\ndog\n", "line 2: an empty class name; expected one name per line (blank lines only at the end)."),
    (b"cat\n \t\ndog\n", "line 2: an empty class name; expected one name per line (blank lines only at the end)."),
    (b"cat\ndog\nCat\n", "line 3: 'Cat' repeats line 1 ('cat'); expected a different name for each class."),
    (b"tiger cat\ntiger_cat\n", "line 2: 'tiger_cat' repeats line 1 ('tiger cat'); expected a different name for each class."),
    (b"cat\ndog\n\xff\xfe\n", "line 3: not UTF-8 text (invalid start byte at byte 8); expected UTF-8 class names, one per line."),
    (b"", "holds no class name; expected one class name per line."),
    (b"\n\n", "holds no class name; expected one class name per line."),
])
def test_bad_files_name_the_line(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ClassNamesError) as error:
        read_class_names(path)
    text = str(error.value)
    assert text.startswith(f"'{path}'") and text.endswith(message)
    assert text[len(f"'{path}'"):-len(message)] in (", ", " ")


def test_size_and_length_are_bounded(tmp_path, monkeypatch):
    path = write(tmp_path, b"x" * MAX_BYTES + b"\n")
    with pytest.raises(ClassNamesError, match=f"^'{path}' is larger than 1048576 bytes; expected a text file"):
        read_class_names(path)
    opened = []
    real_open = open

    def recording_open(*args, **kwargs):
        file = real_open(*args, **kwargs)
        read = file.read
        file_reads = []
        opened.append(file_reads)

        class Recorder:
            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                file.close()

            def read(self, size=-1):
                file_reads.append(size)
                return read(size)

        return Recorder()

    monkeypatch.setattr("builtins.open", recording_open)
    with pytest.raises(ClassNamesError):
        read_class_names(path, max_bytes=10)
    monkeypatch.undo()
    assert opened == [[11]]  # never more than max_bytes + 1 bytes read

    names = "".join(f"c{n}\n" for n in range(5)).encode()
    assert len(read_class_names(write(tmp_path, names), max_lines=5)) == 5
    with pytest.raises(ClassNamesError, match="has more than 4 lines; expected one class name per line."):
        read_class_names(write(tmp_path, names), max_lines=4)


def test_a_missing_file(tmp_path):
    with pytest.raises(ClassNamesError, match=f"^cannot read '{tmp_path / 'none.txt'}': No such file or directory$"):
        read_class_names(tmp_path / "none.txt")


def test_the_count_must_match_the_model(tmp_path):
    check_class_count(["a", "b", "c"], 3, "names.txt")
    with pytest.raises(ClassNamesError, match=(
            r"^'names.txt', line 3: 'c' is one name too many; expected 2 names, one per output of the model, "
            r"and the file has 4.$")):
        check_class_count(["a", "b", "c", "d"], 2, "names.txt")
    with pytest.raises(ClassNamesError, match=(
            r"^'names.txt' ends at line 2: 2 names; expected 3, one per output of the model.$")):
        check_class_count(["a", "b"], 3, "names.txt")
