"""The progress display: redrawn in place on a terminal, plain lines elsewhere."""

import io

from gradcam.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_format_duration():
    assert format_duration(75.4) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?"
    assert format_duration(float("inf")) == "?"


def test_line_shows_count_rate_eta_and_failures():
    clock = Clock()
    progress = Progress(100, stream=io.StringIO(), tty=False, clock=clock)
    clock.now = 10.0
    progress.update(20, failed=1)
    assert progress.line() == " 20/100 images  20% | 2.0 images/s | ETA 0:40 | 1 failed"


def test_terminal_redraws_one_line():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(4, stream=stream, tty=True, clock=clock)
    for _ in range(4):
        clock.now += 1.0
        progress.update()
    progress.message("gradcam: skipped: bad.jpg")
    progress.close()
    text = stream.getvalue()
    assert text.count("\n") == 2  # the message, and the end of the bar
    assert "\r4/4 images 100% | 1.0 images/s | ETA 0:00" in text
    assert "\rgradcam: skipped: bad.jpg\n" in text.replace(" " * 40, "")


def test_plain_lines_every_interval_and_at_the_end():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(10, stream=stream, tty=False, interval=5.0, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        progress.update()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[0] for line in lines] == ["5/10", "10/10"]


def test_disabled_shows_only_messages():
    stream = io.StringIO()
    progress = Progress(3, stream=stream, tty=False, enabled=False)
    progress.update(3)
    progress.message("gradcam: skipped: x")
    progress.close()
    assert stream.getvalue() == "gradcam: skipped: x\n"


def test_slow_rates_keep_two_significant_digits():
    from gradcam.progress import format_rate

    assert [format_rate(r) for r in (21.44, 1.0, 0.0444, 0.5, 0.0)] == ["21.4", "1.0", "0.044", "0.5", "0.0"]
