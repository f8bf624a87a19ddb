"""Explanation objects: what Grad-CAM found for one image."""

from __future__ import annotations

import base64
import html
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

    In a notebook an ``Explanation`` displays each target's overlay (:meth:`overlay`:
    with a :class:`~gradcam.targets.Box`'s query box and a
    :class:`~gradcam.targets.Segmentation` mask's outline) under the layer's name, each
    with the target's label, description, score and probability (``_repr_html_``);
    front-ends without HTML show the overlays side by side (``_repr_png_``).

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

    def overlay(self, target: int = 0) -> Image.Image:
        """One target's overlay, as the notebook display shows it: the heatmap on the image
        (:func:`gradcam.format_as_image`, which draws a :class:`~gradcam.targets.Box`'s
        query box), with the outline of a :class:`~gradcam.targets.Segmentation` target's
        mask (:func:`gradcam.render.draw_outline`) when it has one.

        Args:
            target: which of :attr:`targets` (its position). Defaults to ``0``.

        Returns:
            An RGBA PIL image of the size of :attr:`image`.

        Raises:
            ValueError: no target at position ``target``.
        """
        from gradcam.render import draw_outline, format_as_image

        image = format_as_image(self, target=target)
        mask = getattr(self.targets[target].explained, "mask", None)
        if mask is not None and np.ndim(mask) == 2:
            image = draw_outline(image, mask)
        return image

    def _repr_png_(self) -> bytes:
        overlays = [self.overlay(k) for k in range(len(self.targets))]
        gap = 4 if len(overlays) > 1 else 0
        width = sum(image.width for image in overlays) + gap * (len(overlays) - 1)
        sheet = Image.new("RGBA", (width, max(image.height for image in overlays)), (255, 255, 255, 0))
        left = 0
        for image in overlays:
            sheet.paste(image, (left, 0))
            left += image.width + gap
        return _png(sheet)

    def _repr_html_(self) -> str:
        figures = []
        for k, target in enumerate(self.targets):
            numbers = f"score {target.score:.4g}"
            if target.proba is not None and np.isfinite(target.proba):
                numbers += f", probability {target.proba:.4g}"
            if target.empty:
                numbers += ", empty map"
            description = f"<br>{html.escape(target.description)}" if target.description else ""
            source = base64.b64encode(_png(self.overlay(k))).decode("ascii")
            figures.append(
                '<figure style="margin: 0; max-width: 320px">'
                f'<img src="data:image/png;base64,{source}" alt="{html.escape(target.label, quote=True)}" '
                'style="width: 100%">'
                f"<figcaption><b>{html.escape(target.label)}</b>{description}<br>"
                f"<small>{numbers}</small></figcaption></figure>"
            )
        return (
            f'<div class="gradcam-explanation"><div>layer <code>{html.escape(self.layer)}</code></div>'
            '<div style="display: flex; flex-wrap: wrap; gap: 8px">' + "".join(figures) + "</div></div>"
        )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
