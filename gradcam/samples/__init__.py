"""The sample photos that come with gradcam, by name (like ``skimage.data``).

The photos are installed with the package, so examples run as written from any folder::

    import gradcam
    doc = gradcam.image_from_path(gradcam.samples.path("chelsea"), image_shape=(224, 224))

Their sources and licences are listed on the documentation's Credits page.
"""

from __future__ import annotations

from pathlib import Path

from gradcam._matching import close_matches

_FOLDER = Path(__file__).resolve().parent
_SUFFIX = ".jpg"


def names() -> tuple[str, ...]:
    """The names of the sample photos, sorted.

    Returns:
        A tuple of names such as ``"chelsea"`` and ``"cat_and_coffee"``, each usable with
        :func:`path`.
    """
    return tuple(sorted(p.stem for p in _FOLDER.glob(f"*{_SUFFIX}")))


def path(name: str) -> str:
    """The absolute path of a sample photo.

    Args:
        name: a name from :func:`names`, with or without the ``.jpg`` suffix.

    Returns:
        The path of the installed JPEG file, as a string.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no sample photo has that name; the message lists the names.

    Example:
        >>> gradcam.samples.path("coffee")  # doctest: +ELLIPSIS
        '.../gradcam/samples/coffee.jpg'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string such as 'chelsea'; got {type(name).__name__}.")
    stem = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    available = names()
    if stem not in available:
        close = close_matches(stem, available, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"No sample photo is named {name!r}.{hint} The samples are: {', '.join(available)}."
        )
    return str(_FOLDER / f"{stem}{_SUFFIX}")
