"""The ELI5-style entry points: ``explain_prediction`` and ``show_prediction``."""

from __future__ import annotations

import weakref

from PIL import Image

from gradcam.engine import GradCAM
from gradcam.explanation import Explanation
from gradcam.image import to_batch
from gradcam.render import format_as_image

# model -> {(layer key, score, class names): engine}; an entry goes when its model does.
_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_FORMAT_ARGS = ("resampling_filter", "colormap", "alpha_limit")


def _layer_key(layer):
    if isinstance(layer, (str, int)) or layer is None:
        return layer
    return ("layer", id(layer))


def engine_for(model, layer=None, score: str = "auto", class_names=None) -> GradCAM:
    """Return the cached :class:`GradCAM` engine for this model and layer.

    Engines are built once per (model, layer, score, class names) and reused; the cache
    holds models weakly, so a model that is deleted elsewhere is freed with its engines.

    Args and Raises: as for :class:`GradCAM`.
    """
    key = (_layer_key(layer), score, None if class_names is None else tuple(class_names))
    try:
        engines = _ENGINES.setdefault(model, {})
    except TypeError:
        engines = {}
    engine = engines.get(key)
    if engine is None:
        engine = GradCAM(model, layer=layer, score=score, class_names=class_names)
        engine._strong_model = None
        engines[key] = engine
    return engine


def explain_prediction(model, doc, targets=None, layer=None, image=None, score: str = "auto",
                       class_names=None) -> Explanation:
    """Explain one prediction of a Keras image classifier with Grad-CAM.

    Args:
        model: a built Keras model with one image input and one ``(batch, classes)`` output.
        doc: one preprocessed image, ``(1, H, W, C)`` or ``(H, W, C)``.
        targets: ``None`` for the top prediction, or a list of class indices and/or class
            names (``["tiger cat", 243]``); several targets share one forward pass.
            Defaults to ``None``.
        layer: the layer to explain: ``None`` (automatic: the last layer with a 4-D
            output, inside nested models too), a name or ``"outer/inner"`` path, an index
            or a ``keras.layers.Layer``. Defaults to ``None``.
        image: the picture to draw on (a PIL image or an array); ``None`` rebuilds it from
            ``doc``. Defaults to ``None``.
        score: ``"auto"``, ``"logit"`` or ``"output"``; see :class:`GradCAM`.
            Defaults to ``"auto"``.
        class_names: names of the model's classes (ImageNet's for 1000-class models when
            ``None``). Defaults to ``None``.

    Returns:
        An :class:`Explanation` with one :class:`TargetExplanation` per target.

    Raises:
        TypeError: ``doc`` is not a numeric array; ``model`` is not a Keras model.
        ValueError: a batch of several images (use :meth:`GradCAM.explain`); a wrong
            shape, NaN or inf in ``doc``; an unknown layer or class; see :class:`GradCAM`.

    Example:
        >>> expl = explain_prediction(model, doc, targets=["tiger cat"])
        >>> expl.targets[0].name, expl.layer
        ('tiger cat', 'top_activation')
    """
    batch = to_batch(doc)
    if len(batch) != 1:
        raise ValueError(
            f"explain_prediction explains one image; doc is a batch of {len(batch)} "
            f"(shape {batch.shape}). Use gradcam.GradCAM(model).explain(docs) for batches."
        )
    engine = engine_for(model, layer=layer, score=score, class_names=class_names)
    return engine.explain(batch, targets, images=None if image is None else [image])[0]


def show_prediction(model, doc, **kwargs) -> Image.Image:
    """Explain a prediction and return its overlay image (shown inline in a notebook).

    ``explain_prediction`` followed by ``format_as_image``. With ``targets=None`` it
    prints which class it explains, e.g. ``Taking top prediction: 243 (bull mastiff)``.

    Args:
        model: as for :func:`explain_prediction`.
        doc: as for :func:`explain_prediction`.
        **kwargs: ``targets``, ``layer``, ``image``, ``score``, ``class_names`` go to
            :func:`explain_prediction`; ``resampling_filter``, ``colormap`` and
            ``alpha_limit`` go to :func:`format_as_image`.

    Returns:
        An RGBA PIL image: the heatmap over the image.

    Raises:
        As :func:`explain_prediction` and :func:`format_as_image`.
    """
    format_kwargs = {name: kwargs.pop(name) for name in _FORMAT_ARGS if name in kwargs}
    expl = explain_prediction(model, doc, **kwargs)
    if kwargs.get("targets") is None:
        print(f"Taking top prediction: {expl.targets[0].label}")
    return format_as_image(expl, **format_kwargs)
