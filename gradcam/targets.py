"""What to explain: class indices, class names, or the model's top prediction.

Targets are resolved to class indices before the model runs, except the top prediction:
it is marked ``TOP`` (-1) and resolved inside the compiled computation, so it needs no
extra forward pass.
"""

from __future__ import annotations

import numpy as np

from gradcam import imagenet
from gradcam._matching import close_matches, normalise

TOP = -1


class ClassNames:
    """Class names of a model's outputs: given by the user, ImageNet's, or none.

    Args:
        num_classes: the number of model outputs.
        names: a list of ``num_classes`` names, or ``None`` to use ImageNet's names
            when ``num_classes == 1000`` (and no names otherwise).

    Raises:
        ValueError: ``names`` does not have ``num_classes`` entries.
    """

    def __init__(self, num_classes: int, names=None):
        self.num_classes = int(num_classes)
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != self.num_classes:
                raise ValueError(
                    f"class_names has {len(names)} entries; the model has {self.num_classes} outputs."
                )
        self._names = names
        self.is_imagenet = names is None and self.num_classes == imagenet.NUM_CLASSES

    def name(self, index: int) -> str | None:
        """The name of class ``index``, or None when names are unknown."""
        if self._names is not None:
            return self._names[index]
        if self.is_imagenet:
            return imagenet.class_name(index)
        return None

    def index(self, name: str) -> int:
        """The index of the class called ``name``.

        Raises:
            ValueError: unknown name (close matches are listed), or no names are known.
        """
        if self.is_imagenet:
            return imagenet.class_index(name)
        if self._names is None:
            raise ValueError(
                f"Cannot find class {name!r}: the model has {self.num_classes} outputs and "
                "no class names. Pass class_names=[...] or use class indices."
            )
        wanted = normalise(name)
        for i, candidate in enumerate(self._names):
            if normalise(candidate) == wanted:
                return i
        matches = close_matches(name, self._names)
        hint = f" Close matches: {', '.join(repr(m) for m in matches)}." if matches else ""
        raise ValueError(f"Unknown class name {name!r}.{hint}")

    def check_index(self, index) -> int:
        """Return ``index`` as an int after checking it names an output.

        Raises:
            ValueError: ``index`` is outside ``0..num_classes-1``.
        """
        if not 0 <= index < self.num_classes:
            raise ValueError(
                f"Target {index} is out of range: the model has {self.num_classes} classes "
                f"(0..{self.num_classes - 1})."
            )
        return int(index)


def _resolve_one(target, classes: ClassNames) -> int:
    if isinstance(target, str):
        return classes.index(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_)):
        return classes.check_index(int(target))
    raise TypeError(
        f"A target must be a class index (int) or a class name (str); got {target!r}."
    )


def resolve_targets(targets, classes: ClassNames, batch_size: int) -> np.ndarray:
    """Turn user targets into an int32 array of shape ``(batch_size, K)``.

    Args:
        targets: ``None`` (the top prediction), one index or name, a list of indices
            and/or names shared by every image, or a 2-D integer array with one row of
            class indices per image.
        classes: the model's :class:`ClassNames`.
        batch_size: the number of images.

    Returns:
        int32 array; ``TOP`` (-1) marks "the top prediction".

    Raises:
        TypeError: a target of another type.
        ValueError: an index out of range, an unknown class name, an empty list, or a
            per-image array whose row count differs from the number of images.
    """
    if targets is None:
        return np.full((batch_size, 1), TOP, dtype=np.int32)
    if isinstance(targets, np.ndarray) and targets.ndim == 2:
        if targets.shape[0] != batch_size or targets.shape[1] == 0:
            raise ValueError(
                f"Per-image targets must have shape ({batch_size}, K) for {batch_size} images; "
                f"got shape {targets.shape}."
            )
        rows = [[_resolve_one(t, classes) for t in row] for row in targets.tolist()]
        return np.asarray(rows, dtype=np.int32)
    if isinstance(targets, (str, int, np.integer)):
        targets = [targets]
    try:
        targets = list(targets)
    except TypeError:
        raise TypeError(
            f"targets must be None, a class index or name, or a list of them; got {targets!r}."
        ) from None
    if not targets:
        raise ValueError("targets is empty: pass None for the top prediction, or class indices/names.")
    row = [_resolve_one(t, classes) for t in targets]
    return np.tile(np.asarray(row, dtype=np.int32), (batch_size, 1))
