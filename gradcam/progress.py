"""A progress display for long runs: images done, images per second and time left.

On a terminal the line is redrawn in place (``\\r``); elsewhere (a log file, a CI job) a
plain line is written every few seconds, so logs stay readable. Messages about single
images (:meth:`Progress.message`) are written on their own line without garbling the bar.
"""

from __future__ import annotations

import sys
import threading
import time


def format_rate(rate: float) -> str:
    """A rate for the progress line: one decimal from 1 per second up (``"21.4"``), two
    significant digits below (``"0.044"``), so that a slow command never shows ``0.0``."""
    return f"{rate:.1f}" if rate >= 1 or rate == 0 else f"{rate:.2g}"


def format_duration(seconds: float) -> str:
    """``75.4`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; ``"?"`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Count finished items and show the rate and the estimated time left.

    Safe to call from several threads (a lock keeps lines whole).

    Args:
        total: how many items the run has.
        stream: where to write. Defaults to ``sys.stderr``.
        tty: redraw one line in place (``True``) or write plain lines (``False``);
            ``None`` asks ``stream.isatty()``. Defaults to ``None``.
        enabled: ``False`` shows no progress at all, only :meth:`message` lines.
            Defaults to ``True``.
        interval: seconds between plain lines (a terminal line is redrawn at most every
            0.1 s). Defaults to ``5.0``.
        unit: what is counted, for the display. Defaults to ``"images"``.
        clock: a function returning seconds, for tests. Defaults to ``time.monotonic``.

    Example:
        >>> progress = Progress(256)
        >>> progress.update(32)   # "  32/256 images  12% | 21.4 images/s | ETA 0:10"
        >>> progress.close()
    """

    def __init__(self, total: int, stream=None, tty=None, enabled: bool = True,
                 interval: float = 5.0, unit: str = "images", clock=time.monotonic):
        self.total = int(total)
        self.done = 0
        self.failed = 0
        self.stream = sys.stderr if stream is None else stream
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.enabled = enabled
        self.interval = 0.1 if tty else interval
        self.unit = unit
        self._clock = clock
        self._start = clock()
        self._last_shown = self._start
        self._line_width = 0
        self._shown_done = 0
        self._lock = threading.RLock()

    def rate(self) -> float:
        """Items finished per second since the start (0 before the first one)."""
        elapsed = self._clock() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The text of the progress display, e.g.
        ``"  32/256 images  12% | 21.4 images/s | ETA 0:10 | 1 failed"``."""
        width = len(str(self.total))
        percent = 100 * self.done // self.total if self.total else 100
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else None
        text = (f"{self.done:>{width}}/{self.total} {self.unit} {percent:3d}% | "
                f"{format_rate(rate)} {self.unit}/s | ETA {format_duration(eta)}")
        return text + (f" | {self.failed} failed" if self.failed else "")

    def update(self, done: int = 1, failed: int = 0) -> None:
        """Count ``done`` more finished items, ``failed`` of them failed, and redraw
        when it is time to."""
        with self._lock:
            self.done += done
            self.failed += failed
            now = self._clock()
            if self.done >= self.total or now - self._last_shown >= self.interval:
                self._last_shown = now
                self._show()

    def message(self, text: str) -> None:
        """Write ``text`` on a line of its own (above the bar on a terminal)."""
        with self._lock:
            self._clear()
            self.stream.write(text.rstrip("\n") + "\n")
            if self.enabled and self.tty and self.done:
                self._show()
            self.stream.flush()

    def close(self) -> None:
        """Show the final count and end the line."""
        with self._lock:
            if self.enabled and (self.tty or self.done != self._shown_done):
                self._show()
            if self.enabled and self.tty and self._line_width:
                self.stream.write("\n")
                self._line_width = 0
            self.stream.flush()

    def _show(self) -> None:
        if not self.enabled:
            return
        text = self.line()
        self._shown_done = self.done
        if self.tty:
            pad = max(0, self._line_width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._line_width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self._line_width:
            self.stream.write("\r" + " " * self._line_width + "\r")
            self._line_width = 0
