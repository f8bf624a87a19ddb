"""Rendering heatmaps: grayscale images, resizing, colour overlays and figure grids; the
query box of a :class:`~gradcam.targets.Box` target and the outline of a mask.

Pure array / image functions with checked ranges; nothing here runs a model.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

#: The colour of a query box drawn by :func:`format_as_image` (RGBA).
BOX_COLOR = (255, 48, 48, 255)


def check_heatmap(heatmap, name: str = "heatmap") -> np.ndarray:
    """Return ``heatmap`` as a float array after checking its values lie in [0, 1].

    Raises:
        ValueError: NaN values or values outside [0, 1].
    """
    array = np.asarray(heatmap, dtype=np.float64)
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        finite = array[np.isfinite(array)]
        found = f"values from {finite.min()} to {finite.max()}" if finite.size else "no finite values"
        nans = int(array.size - finite.size)
        raise ValueError(
            f"{name} values must lie in [0, 1]; got {found}"
            + (f" and {nans} NaN or infinite values." if nans else ".")
        )
    return array


def heatmap_to_image(heatmap) -> Image.Image:
    """Convert a heatmap with values in [0, 1] to a PIL image.

    Values are scaled to 0..255 and rounded.

    Args:
        heatmap: array ``(h, w)``, ``(h, w, 3)`` or ``(h, w, 4)`` with values in [0, 1].

    Returns:
        A PIL image in mode ``"L"``, ``"RGB"`` or ``"RGBA"`` respectively.

    Raises:
        ValueError: values outside [0, 1], or another shape.

    Example:
        >>> heatmap_to_image(np.array([[0.0, 1.0]])).getpixel((1, 0))
        255
    """
    array = check_heatmap(heatmap)
    modes = {2: "L", 3: {3: "RGB", 4: "RGBA"}}
    mode = modes.get(array.ndim)
    if isinstance(mode, dict):
        mode = mode.get(array.shape[-1])
    if mode is None:
        raise ValueError(
            f"heatmap must have shape (h, w), (h, w, 3) or (h, w, 4); got shape {array.shape}."
        )
    return Image.fromarray(np.round(array * 255).astype(np.uint8), mode=mode)


def expand_heatmap(heatmap, image: Image.Image, resampling_filter=Image.LANCZOS) -> Image.Image:
    """Resize a heatmap to the size of ``image``.

    Args:
        heatmap: array ``(h, w)`` with values in [0, 1].
        image: the PIL image whose size to take.
        resampling_filter: a Pillow resampling filter. Defaults to ``Image.LANCZOS``.

    Returns:
        A grayscale (``"L"``) PIL image of ``image.size``.

    Raises:
        ValueError: heatmap values outside [0, 1].
    """
    return heatmap_to_image(heatmap).resize(image.size, resample=resampling_filter)


def pixels_to_image(pixels) -> Image.Image:
    """Draw a per-pixel map (guided Grad-CAM's :attr:`~gradcam.TargetExplanation.pixels`)
    as pytorch-grad-cam's ``deprocess_image`` does.

    The map is standardised (its mean subtracted, divided by its standard deviation plus
    ``1e-5``), scaled by 0.1 and shifted by 0.5, clipped to [0, 1] and scaled to 0..255
    (truncated): grey where the map is zero, lighter where it is positive, darker where
    it is negative, in each colour channel.

    Args:
        pixels: array ``(h, w, 3)`` or ``(h, w, 1)`` of finite values.

    Returns:
        A PIL image in mode ``"RGB"`` or ``"L"`` respectively.

    Raises:
        ValueError: another shape, or values that are not finite.

    Example:
        >>> pixels_to_image(np.zeros((2, 2, 3))).getpixel((0, 0))
        (127, 127, 127)
    """
    array = np.asarray(pixels, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"pixels must have shape (h, w, 3) or (h, w, 1); got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError("pixels must be finite; got NaN or infinite values.")
    array = (array - array.mean()) / (array.std() + 1e-5)
    array = np.clip(array * 0.1 + 0.5, 0, 1)
    image = (array * 255).astype(np.uint8)
    return Image.fromarray(image[..., 0], mode="L") if image.shape[-1] == 1 else Image.fromarray(image, mode="RGB")


def _alpha_limit(alpha_limit) -> float:
    try:
        value = float(alpha_limit)
    except (TypeError, ValueError):
        raise ValueError(f"alpha_limit must be a number; got {alpha_limit!r}.") from None
    if 0 <= value <= 1:
        return value
    if 1 < value <= 255:
        return value / 255.0
    raise ValueError(
        f"alpha_limit must be a fraction in [0, 1] (or a byte value in 0..255); got {alpha_limit!r}."
    )


def colorize(heat: np.ndarray, colormap=matplotlib.cm.viridis, alpha_limit=0.65) -> Image.Image:
    """Colour a heatmap and make its opacity follow the heat.

    Args:
        heat: array ``(h, w)`` in [0, 1].
        colormap: a matplotlib colormap or its name. Defaults to viridis.
        alpha_limit: the largest opacity, a fraction in [0, 1] (a value in (1, 255] is read
            on the byte scale). Defaults to ``0.65``.

    Returns:
        An RGBA PIL image: RGB from the colormap, alpha ``min(heat, alpha_limit)``.

    Raises:
        ValueError: values outside [0, 1], an unknown colormap name or a bad ``alpha_limit``.
    """
    heat = check_heatmap(heat)
    limit = _alpha_limit(alpha_limit)
    if isinstance(colormap, str):
        try:
            colormap = matplotlib.colormaps[colormap]
        except KeyError:
            raise ValueError(f"Unknown matplotlib colormap {colormap!r}.") from None
    rgba = np.asarray(colormap(heat), dtype=np.float64)
    rgba[..., 3] = np.minimum(heat, limit)
    return Image.fromarray(np.round(rgba * 255).astype(np.uint8), mode="RGBA")


def format_as_image(
    expl,
    resampling_filter=Image.LANCZOS,
    colormap=matplotlib.cm.viridis,
    alpha_limit=0.65,
    target: int = 0,
) -> Image.Image:
    """Overlay an explanation's heatmap on its image, or draw its per-pixel map.

    A target with a per-pixel map (:attr:`~gradcam.TargetExplanation.pixels`, guided
    Grad-CAM's) of 1 or 3 channels is drawn as :func:`pixels_to_image` draws it, resized
    to the image with ``resampling_filter`` (``colormap`` and ``alpha_limit`` do not
    apply; the map is the picture). Otherwise the heatmap is resized to the image (:func:`expand_heatmap`), coloured with
    ``colormap``, given an opacity equal to the heat capped at ``alpha_limit``, and
    alpha-composited on the image. The query box of a :class:`~gradcam.targets.Box`
    target is drawn on top (:func:`draw_box`, in :data:`BOX_COLOR`), scaled from the
    model input's pixels to the image's.

    Args:
        expl: an :class:`~gradcam.Explanation`.
        resampling_filter: Pillow filter used to resize the heatmap. Defaults to
            ``Image.LANCZOS``.
        colormap: a matplotlib colormap or its name. Defaults to ``matplotlib.cm.viridis``.
        alpha_limit: the largest opacity of the overlay, a fraction in [0, 1]; values in
            (1, 255] are read on the byte scale (``255.`` means fully opaque). Defaults to
            ``0.65``.
        target: which of ``expl.targets`` to draw (its position). Defaults to ``0``.

    Returns:
        An RGBA PIL image of the size of ``expl.image``.

    Raises:
        TypeError: ``expl`` is not an explanation (it has no ``targets`` and ``image``).
        ValueError: ``alpha_limit`` outside [0, 255], an unknown colormap name, or no
            target at position ``target``.

    Example:
        >>> overlay = format_as_image(expl, alpha_limit=255., colormap=matplotlib.cm.cividis)
    """
    if not (hasattr(expl, "targets") and hasattr(expl, "image")):
        raise TypeError(f"format_as_image takes an Explanation (from explain_prediction); got {expl!r}.")
    if not 0 <= target < len(expl.targets):
        raise ValueError(f"target must be a position in 0..{len(expl.targets) - 1}; got {target!r}.")
    pixels = getattr(expl.targets[target], "pixels", None)
    if pixels is not None and np.shape(pixels)[-1] in (1, 3):
        _alpha_limit(alpha_limit)
        overlay = pixels_to_image(pixels).resize(expl.image.size, resample=resampling_filter).convert("RGBA")
    else:
        overlay = overlay_heatmap(expl.image, expl.targets[target].heatmap, resampling_filter, colormap, alpha_limit)
    box = getattr(expl.targets[target].explained, "box", None)
    if box is not None:
        height, width = getattr(expl, "input_size", None) or overlay.size[::-1]
        scale = (overlay.size[0] / width, overlay.size[1] / height)
        overlay = draw_box(overlay, np.asarray(box, np.float64).reshape(-1, 4)[0], BOX_COLOR, scale=scale)
    return overlay


def draw_box(image: Image.Image, box, color=BOX_COLOR, width: int = 2, scale=(1.0, 1.0)) -> Image.Image:
    """Draw a box's outline on a copy of an image.

    Args:
        image: the PIL image.
        box: ``(x1, y1, x2, y2)`` in pixels (of the model input when ``scale`` is given).
        color: the outline's colour, RGB or RGBA. Defaults to :data:`BOX_COLOR`.
        width: the outline's width in pixels, drawn inside the box. Defaults to ``2``.
        scale: ``(sx, sy)``, from the box's pixels to the image's. Defaults to ``(1.0, 1.0)``.

    Returns:
        A new image, of ``image``'s mode and size.

    Raises:
        ValueError: ``box`` is not four finite numbers with ``x1 <= x2`` and ``y1 <= y2``.
    """
    values = np.asarray(box, np.float64).reshape(-1)
    if values.shape != (4,) or not np.all(np.isfinite(values)) or values[0] > values[2] or values[1] > values[3]:
        raise ValueError(f"box must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2; got {box!r}.")
    x1, y1, x2, y2 = values * np.array([scale[0], scale[1], scale[0], scale[1]])
    result = image.copy()
    # PIL's rectangle includes its last pixel: the box covers pixels x1 .. x2 - 1
    ImageDraw.Draw(result).rectangle(
        [round(x1), round(y1), max(round(x2) - 1, round(x1)), max(round(y2) - 1, round(y1))],
        outline=tuple(color), width=width,
    )
    return result


def mask_outline(mask) -> np.ndarray:
    """The outline of a mask: its pixels that have a 4-neighbour outside it (or lie on
    the border).

    Args:
        mask: array ``(H, W)``, bool or numbers (nonzero is inside).

    Returns:
        bool array ``(H, W)``.

    Raises:
        ValueError: ``mask`` is not 2-D.
    """
    inside = np.asarray(mask) != 0
    if inside.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width); got shape {inside.shape}.")
    padded = np.pad(inside, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~interior


def draw_outline(image: Image.Image, mask, color=(255, 255, 255, 255)) -> Image.Image:
    """Draw the outline of a mask (e.g. a :class:`~gradcam.targets.Segmentation` mask) on
    a copy of an image.

    The mask is resized to the image (nearest neighbour) and its outline
    (:func:`mask_outline`) painted in ``color``.

    Args:
        image: the PIL image (an overlay from :func:`format_as_image`, for example).
        mask: array ``(h, w)`` at any resolution, bool or numbers (nonzero is inside).
        color: the outline's colour, RGB or RGBA. Defaults to white.

    Returns:
        A new image, of ``image``'s mode and size.

    Raises:
        ValueError: ``mask`` is not 2-D.
    """
    inside = np.asarray(mask) != 0
    if inside.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width); got shape {inside.shape}.")
    resized = np.asarray(Image.fromarray(inside.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
    pixels = np.array(image)
    channels = pixels.shape[-1] if pixels.ndim == 3 else 1
    paint = np.asarray(color, np.uint8)[:channels] if channels > 1 else np.uint8(color[0])
    pixels[mask_outline(resized)] = paint
    return Image.fromarray(pixels, mode=image.mode)


def overlay_heatmap(image: Image.Image, heatmap, resampling_filter=Image.LANCZOS,
                    colormap=matplotlib.cm.viridis, alpha_limit=0.65) -> Image.Image:
    """Overlay one heatmap on an image: what :func:`format_as_image` draws.

    The heatmap is resized to the image (:func:`expand_heatmap`, 256 gray levels), each
    level is coloured as :func:`colorize` colours it, and the result is alpha-composited
    on the image. Colouring goes through a 256-entry table, so the cost does not depend
    on the colormap.

    Args:
        image: the PIL image to draw on (any mode; it is converted to RGBA).
        heatmap: array ``(h, w)`` with values in [0, 1].
        resampling_filter, colormap, alpha_limit: as for :func:`format_as_image`.

    Returns:
        An RGBA PIL image of the size of ``image``.

    Raises:
        ValueError: heatmap values outside [0, 1], an unknown colormap name or a bad
            ``alpha_limit``.
    """
    heat = np.asarray(expand_heatmap(heatmap, image, resampling_filter))
    levels = np.arange(256, dtype=np.float64).reshape(1, 256) / 255.0
    table = np.ascontiguousarray(np.asarray(colorize(levels, colormap, alpha_limit))[0])
    rgba = table.view(np.uint32)[:, 0][heat].view(np.uint8).reshape(*heat.shape, 4)  # one RGBA per level
    return Image.alpha_composite(image.convert("RGBA"), Image.fromarray(rgba, mode="RGBA"))


def plot_explanations(explanations, titles=None, ncols: int = 4, size: float = 3.0, **format_kwargs):
    """Draw overlays in a grid, with titles: one panel per explanation, or per target.

    Handy for comparing layers, models or target classes side by side.

    Args:
        explanations: a list of :class:`~gradcam.Explanation` (one panel each, showing its
            first target), or one ``Explanation`` (one panel per target).
        titles: one title per panel; ``None`` uses the layer, the class and its
            probability. Defaults to ``None``.
        ncols: panels per row. Defaults to ``4``.
        size: the side of one panel in inches. Defaults to ``3.0``.
        **format_kwargs: passed to :func:`format_as_image` (``colormap``, ``alpha_limit``...).

    Returns:
        A ``matplotlib.figure.Figure``.

    Raises:
        ValueError: no explanations, or ``titles`` of another length.

    Example:
        >>> plot_explanations([explain_prediction(model, x, layer=name) for name in layers])
    """
    import matplotlib.pyplot as plt

    if hasattr(explanations, "targets"):
        panels = [(explanations, k) for k in range(len(explanations.targets))]
    else:
        panels = [(expl, 0) for expl in explanations]
    if not panels:
        raise ValueError("plot_explanations needs at least one explanation.")
    if titles is None:
        titles = []
        for expl, k in panels:
            target = expl.targets[k]
            proba = f" p={target.proba:.2f}" if target.proba is not None else ""
            titles.append(f"{expl.layer}\n{target.label}{proba}")
    if len(titles) != len(panels):
        raise ValueError(f"titles has {len(titles)} entries for {len(panels)} panels.")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (expl, k), title in zip(axes.flat, panels, titles):
        ax.imshow(format_as_image(expl, target=k, **format_kwargs))
        ax.set_title(title, fontsize=9)
    return figure
