"""Targets whose array parameters come from a dataset's columns, one row per image.

A :mod:`gradcam.targets` object holds its masks, embeddings or boxes itself, one for the
batch or one per image. On Ray the images arrive in batches the script never sees, so a
per-image parameter is a column of the dataset instead: :class:`FromColumns` names the
target, which of its arguments are columns, and its other arguments; each actor builds
the target for each batch from that batch's rows.

This module needs numpy alone: a script that only starts a run never loads Keras.
"""

from __future__ import annotations

import numpy as np


class FromColumns:
    """A target built for each batch, some of its arguments read from the batch's columns.

    For a batch of ``N`` rows, the target is ``target(**arguments, **{name: stack(batch[column])})``
    for each ``name: column`` of ``columns``: the column's values stacked into one array
    with a row per image, e.g. masks ``(N, H, W)`` for :class:`~gradcam.targets.Segmentation`'s
    ``mask``, embeddings ``(N, D)`` for :class:`~gradcam.targets.Similarity`'s
    ``embedding``, boxes ``(N, 4)`` for :class:`~gradcam.targets.Box`'s ``box``. Every
    row's value must have the same shape (a column of ``(H, W)`` masks, of ``(D,)``
    vectors, of ``(4,)`` boxes).

    Args:
        target: a target class of :mod:`gradcam.targets` (``Segmentation``,
            ``Similarity``, ``Box``, ``Output``, ``Contrast``...) or a function that
            returns a target from keyword arguments.
        columns: the target's argument -> the column that holds it, e.g.
            ``{"mask": "road_mask"}``.
        **arguments: the target's other keyword arguments, the same for every image.

    Raises:
        TypeError: ``target`` is not callable; ``columns`` is not a dict of names.
        ValueError: ``columns`` is empty, or names an argument also given in ``arguments``.

    Example:
        >>> ds = ray.data.from_items([{"image": image, "mask": mask} for image, mask in pairs])
        >>> target = FromColumns(Segmentation, {"mask": "mask"}, category=12)
        >>> explained = explain_images(ds, model="segmenter.keras", targets=target)  # doctest: +SKIP
    """

    def __init__(self, target, columns: dict, **arguments):
        if not callable(target):
            raise TypeError(f"FromColumns target must be a target class or a function returning a target; "
                            f"got {target!r}.")
        names = isinstance(columns, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
        if not names:
            raise TypeError(f"FromColumns columns must be a dict of argument names to column names; got {columns!r}.")
        if not columns:
            raise ValueError("FromColumns columns is empty; name at least one argument read from a column, "
                             "or pass the target itself.")
        both = sorted(set(columns) & set(arguments))
        if both:
            raise ValueError(f"FromColumns: argument {both[0]!r} is given both as a column and as a value.")
        self.target, self.columns, self.arguments = target, dict(columns), arguments

    def build(self, batch: dict):
        """The target for one batch.

        Args:
            batch: a dict of numpy arrays holding the columns.

        Returns:
            ``target(**arguments, **columns' values)``.

        Raises:
            ValueError: a column the batch lacks; a column whose rows differ in shape.
        """
        values = {}
        for name, column in self.columns.items():
            if column not in batch:
                raise ValueError(f"FromColumns: the batch has no column {column!r} (for {name}=); its columns: "
                                 f"{', '.join(map(repr, batch))}.")
            rows = [np.asarray(row) for row in batch[column]]
            shapes = sorted({row.shape for row in rows})
            if len(shapes) > 1:
                raise ValueError(f"FromColumns: column {column!r} holds values of several shapes {shapes}; "
                                 f"{name}= needs one shape for every row.")
            values[name] = np.stack(rows) if rows else np.asarray(batch[column])
        return self.target(**self.arguments, **values)

    def __repr__(self) -> str:
        name = getattr(self.target, "__name__", repr(self.target))
        arguments = [f"{k}={v!r}" for k, v in self.arguments.items()]
        return f"FromColumns({name}, {self.columns!r}{''.join(', ' + a for a in arguments)})"


def uses_columns(targets) -> bool:
    """Whether ``targets`` (one target or a list) holds a :class:`FromColumns`."""
    if isinstance(targets, FromColumns):
        return True
    return isinstance(targets, (list, tuple)) and any(isinstance(t, FromColumns) for t in targets)


def batch_targets(targets, batch: dict):
    """``targets`` for one batch: each :class:`FromColumns` built from the batch's columns."""
    if isinstance(targets, FromColumns):
        return targets.build(batch)
    if isinstance(targets, (list, tuple)):
        return [t.build(batch) if isinstance(t, FromColumns) else t for t in targets]
    return targets
