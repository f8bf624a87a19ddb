"""Keeping TensorFlow's start-up lines off the terminal.

TensorFlow's C++ code writes log lines straight to file descriptor 2 while it loads and
on its first operation (oneDNN, CPU instructions, CUDA), some of them before its log
level is read, so ``TF_CPP_MIN_LOG_LEVEL=3`` alone leaves six lines on a CPU machine.
:func:`tensorflow_quiet` sends descriptor 2 to a temporary file while TensorFlow starts
and the model is set up, then writes back every line that is not one of TensorFlow's
log lines (Python warnings, anything else), so nothing else is lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

_TENSORFLOW_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "  # absl: I0000 00:00:17.5 4631 port.cc:153]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./-]+:\d+\] "  # TensorFlow < 2.17
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
    r"|(WARNING|INFO):tensorflow:"
)


def is_tensorflow_line(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's log lines."""
    return _TENSORFLOW_LINE.match(line.rstrip("\r\n")) is not None


@contextlib.contextmanager
def tensorflow_quiet(enabled: bool = True):
    """Within the block, TensorFlow's log lines do not reach standard error.

    Descriptor 2 goes to a temporary file and ``TF_CPP_MIN_LOG_LEVEL`` is 3 (which
    TensorFlow reads when it first logs, so later lines stay hidden too); on leaving,
    even by an exception, both are restored and the captured lines that are not
    TensorFlow's are written to standard error.

    Args:
        enabled: ``False`` changes nothing (``--verbose``). Defaults to ``True``.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            if saved_level is None:
                os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            else:
                os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved_level
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_tensorflow_line(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
