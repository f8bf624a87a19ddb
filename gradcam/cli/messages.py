"""The command's lines on standard error: progress notes, warnings, counts."""

from __future__ import annotations

import sys


def say(args, text: str) -> None:
    """Print a progress line on standard error, unless ``--quiet``."""
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """Print ``gradcam: warning: TEXT`` on standard error (with ``--quiet`` too)."""
    print(f"gradcam: warning: {text}", file=sys.stderr, flush=True)


def plural(count: int, word: str) -> str:
    """``"1 image"``, ``"2 images"``."""
    return f"{count:,} {word}{'' if count == 1 else 'es' if word.endswith('s') else 's'}"
