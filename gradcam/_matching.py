"""Close-match suggestions for error messages (layer names, class names)."""

from __future__ import annotations

import difflib


def normalise(name: str) -> str:
    """Case-folded name with ``_`` read as a space and runs of spaces folded."""
    return " ".join(name.replace("_", " ").split()).casefold()


def close_matches(name: str, candidates, n: int = 5) -> list[str]:
    """Return up to ``n`` candidates that look like ``name``, best first.

    Similar spellings come first (``difflib``), then candidates that contain ``name``.
    Comparison ignores case and treats ``_`` like a space.
    """
    by_key: dict[str, str] = {}
    for candidate in candidates:
        by_key.setdefault(normalise(candidate), candidate)
    wanted = normalise(name)
    keys = difflib.get_close_matches(wanted, list(by_key), n=n, cutoff=0.6)
    if wanted:
        keys += [k for k in by_key if wanted in k and k not in keys]
    return [by_key[k] for k in keys[:n]]
