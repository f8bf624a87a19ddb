"""Reading a class-names file: one class name per line, for a model's outputs in order.

The file is UTF-8 (a byte-order mark is allowed), one name per line, surrounding spaces
and the line ending (``\\n`` or ``\\r\\n``) removed; blank lines at the end are allowed.
An empty name, a name given twice (compared as class names are matched: ignoring case,
with ``_`` read as a space), a file that is not UTF-8 and a file larger than
:data:`MAX_BYTES` or longer than :data:`MAX_LINES` are refused with the line at fault.
At most :data:`MAX_BYTES` + 1 bytes are read, whatever the file's size.
"""

from __future__ import annotations

import os

from gradcam._matching import normalise

#: The largest class-names file read, in bytes (1 MiB).
MAX_BYTES = 1 << 20

#: The most lines (class names) a class-names file may have.
MAX_LINES = 100_000


class ClassNamesError(ValueError):
    """A class-names file that cannot be used; the message names the file, the line at
    fault and what was expected."""


def read_class_names(path, max_bytes: int = MAX_BYTES, max_lines: int = MAX_LINES) -> list[str]:
    """Read a class-names file: one name per line.

    Args:
        path: the file.
        max_bytes: files larger than this are refused. Defaults to :data:`MAX_BYTES`.
        max_lines: files with more lines are refused. Defaults to :data:`MAX_LINES`.

    Returns:
        The names, in order (the class of index ``i`` on line ``i + 1``).

    Raises:
        ClassNamesError: the file cannot be read, is too large or too long, is not
            UTF-8, holds no name, or has an empty or repeated name.

    Example:
        >>> read_class_names("classes.txt")  # "cat\\ndog\\nbird\\n"
        ['cat', 'dog', 'bird']
    """
    shown = repr(os.fspath(path))
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise ClassNamesError(f"cannot read {shown}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise ClassNamesError(f"{shown} is larger than {max_bytes} bytes; expected a text file of "
                              "class names, one per line.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ClassNamesError(f"{shown}, line {line}: not UTF-8 text ({error.reason} at byte "
                              f"{error.start}); expected UTF-8 class names, one per line.") from None
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # blank lines at the end
    if len(lines) > max_lines:
        raise ClassNamesError(f"{shown} has more than {max_lines} lines; expected one class name per line.")
    if not lines:
        raise ClassNamesError(f"{shown} holds no class name; expected one class name per line.")
    names, first_line = [], {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise ClassNamesError(f"{shown}, line {number}: an empty class name; expected one name per "
                                  "line (blank lines only at the end).")
        key = normalise(name)
        if key in first_line:
            earlier = first_line[key]
            raise ClassNamesError(f"{shown}, line {number}: {name!r} repeats line {earlier} "
                                  f"({names[earlier - 1]!r}); expected a different name for each class.")
        first_line[key] = number
        names.append(name)
    return names


def check_class_count(names, num_classes: int, path) -> None:
    """Check that a class-names file names each of a model's outputs once.

    Args:
        names: the names read from ``path`` (:func:`read_class_names`).
        num_classes: the model's number of outputs.
        path: the file, for the message.

    Raises:
        ClassNamesError: more or fewer names than outputs; the message names the first
            line too many, or the last line.
    """
    shown = repr(os.fspath(path))
    if len(names) > num_classes:
        raise ClassNamesError(
            f"{shown}, line {num_classes + 1}: {names[num_classes]!r} is one name too many; expected "
            f"{num_classes} names, one per output of the model, and the file has {len(names)}.")
    if len(names) < num_classes:
        raise ClassNamesError(
            f"{shown} ends at line {len(names)}: {len(names)} names; expected {num_classes}, one per "
            "output of the model.")
