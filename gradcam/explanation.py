"""Explanation objects: what Grad-CAM found for one image."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class TargetExplanation:
    """The map of one target: a class, or any :mod:`gradcam.targets` object.

    Attributes:
        target: the class index explained; -1 for a target that is not one class (a
            :class:`~gradcam.targets.Segmentation`, :class:`~gradcam.targets.Box`...).
        name: the class name, or ``None`` when the model's class names are unknown; for
            a target that is not one class, the target's name (e.g. ``"similarity"``).
        score: the explained score ``y_c`` (the pre-softmax logit when the model ends in a
            softmax, unless ``score="output"`` was asked for).
        proba: the model's softmax probability for the class, or ``None`` when the model
            does not end in a softmax.
        heatmap: float32 array ``(h, w)`` in [0, 1] at the layer's resolution (at the
            input's for a method with a per-pixel map, guided Grad-CAM).
        description: what the score is, in words (e.g. ``"the logit of class 282 (tiger
            cat)"``), or ``None``.
        explained: the :class:`~gradcam.targets.Target` object explained, or ``None`` for
            a class index or name.
        pixels: float32 array ``(H, W, channels)`` at the input's resolution, a per-pixel
            map of the input (guided Grad-CAM's, in [-1, 1]), or ``None`` for the methods
            that make none. :func:`gradcam.format_as_image` draws it when it is there.

    Its properties :attr:`label` (``"282 (tiger cat)"``) and :attr:`empty` (the map is all
    zero) are read from these.
    """

    target: int
    name: str | None
    score: float
    proba: float | None
    heatmap: np.ndarray = field(repr=False)
    description: str | None = None
    explained: object = field(default=None, repr=False)
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``"282 (tiger cat)"``, just the index when the name is unknown, or the name of a
        target that is not one class (``"similarity"``)."""
        if self.target < 0 or (self.explained is not None and type(self.explained).__name__ != "Class"):
            return self.name or type(self.explained).__name__
        return f"{self.target} ({self.name})" if self.name else str(self.target)

    @property
    def empty(self) -> bool:
        """``True`` when the map is all zero: nothing in the layer's output raised the score.

        :class:`~gradcam.EmptyMapWarning` (once per calling line, through Python's warnings
        filter) says so when a method computes an empty map, and names the ways out
        (``score="output"``, another layer).
        """
        return not np.any(self.heatmap)


@dataclass
class Explanation:
    """Grad-CAM's explanation of one image: the image, the layer and one map per target.

    In a notebook an ``Explanation`` displays as its overlay
    (:func:`gradcam.format_as_image`).

    Attributes:
        image: the input as an RGB ``PIL.Image``.
        targets: one :class:`TargetExplanation` per explained class, in the order asked.
        layer: the path of the explained layer (``"outer/inner"`` inside nested models).
        input_size: the model input's ``(height, width)``, the pixels that target
            parameters (a :class:`~gradcam.targets.Box`) are given in; ``None`` when unknown.
    """

    image: Image.Image = field(repr=False)
    targets: list[TargetExplanation]
    layer: str
    input_size: tuple | None = None

    @property
    def heatmap(self) -> Image.Image:
        """The first target's map as a grayscale (``"L"``) PIL image, at the layer's resolution."""
        from gradcam.render import heatmap_to_image

        return heatmap_to_image(self.targets[0].heatmap)

    def _repr_png_(self) -> bytes:
        from gradcam.render import format_as_image

        buffer = io.BytesIO()
        format_as_image(self).save(buffer, format="PNG")
        return buffer.getvalue()
