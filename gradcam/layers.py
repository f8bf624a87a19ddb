"""Finding the layer to explain, including layers inside nested models.

A layer is addressed by its path from the outer model: ``"conv5_block3_out"`` for a
layer of the model itself, ``"resnet50/conv5_block3_out"`` for a layer of a
``keras.applications`` base used inside a ``Sequential`` or Functional wrapper. A unique
leaf name is enough (``"conv5_block3_out"`` finds the nested layer too).

The layers of a subclassed model have no symbolic output: their shapes come from a trace
of the model (``shapes``, see :func:`gradcam.capture.model_info`), and the automatic
choice follows the order in which the model calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from gradcam._matching import close_matches


@dataclass(frozen=True)
class LayerRef:
    """A layer of a model and its path from the outer model (``"outer/inner"``)."""

    layer: keras.layers.Layer
    path: str


def iter_layers(model: keras.Model, prefix: str = ""):
    """Yield a :class:`LayerRef` for every layer of ``model``, depth first.

    A nested model is yielded itself, then its own layers under ``"name/"``.
    """
    for layer in getattr(model, "layers", []):
        path = prefix + layer.name
        yield LayerRef(layer, path)
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, prefix=path + "/")


def output_shape(layer: keras.layers.Layer, shapes: dict | None = None) -> tuple | None:
    """The layer's output shape, or None where it is not known.

    Args:
        layer: a Keras layer.
        shapes: output shapes found by tracing a subclassed model, by layer; used for
            the layers it holds. Defaults to ``None``.

    Returns:
        The shape, batch first; ``None`` for a layer called more than once, or of a
        subclassed model when ``shapes`` does not hold it.
    """
    if shapes is not None and layer in shapes:
        return shapes[layer]
    try:
        output = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(output, (list, tuple)):
        return None
    shape = getattr(output, "shape", None)
    return tuple(shape) if shape is not None else None


def is_spatial(layer: keras.layers.Layer, shapes: dict | None = None) -> bool:
    """True when the layer's output is 4-D: (batch, height, width, channels)."""
    shape = output_shape(layer, shapes)
    return shape is not None and len(shape) == 4


def spatial_layers(model: keras.Model, shapes: dict | None = None) -> list[LayerRef]:
    """The layers usable for Grad-CAM (4-D output), in model order.

    A nested model is not listed itself: its own layers are. With ``shapes`` (a traced
    subclassed model), the order is the order of the calls that ``shapes`` records.
    """
    refs = [
        ref
        for ref in iter_layers(model)
        if not isinstance(ref.layer, (keras.Model, keras.layers.InputLayer))
        and is_spatial(ref.layer, shapes)
    ]
    if shapes is not None:
        order = {layer: i for i, layer in enumerate(shapes)}
        refs.sort(key=lambda ref: order.get(ref.layer, -1))
    return refs


def _describe(model: keras.Model, refs: list[LayerRef], limit: int = 5) -> str:
    names = [ref.path for ref in refs[-limit:]]
    if not names:
        return f"Model {model.name!r} has no layer with a 4-D output."
    more = "the last ones: " if len(refs) > limit else ""
    return f"Layers with a 4-D output ({more}{', '.join(names)})."


def _check_spatial(model: keras.Model, ref: LayerRef, shapes: dict | None) -> LayerRef:
    shape = output_shape(ref.layer, shapes)
    if shape is not None and len(shape) != 4:
        raise ValueError(
            f"Layer {ref.path!r} has output shape {shape}; Grad-CAM needs a layer with a "
            f"4-D (batch, height, width, channels) output. "
            f"{_describe(model, spatial_layers(model, shapes))}"
        )
    return ref


def find_layer(model: keras.Model, layer=None, shapes: dict | None = None) -> LayerRef:
    """Resolve ``layer`` to a layer of ``model`` usable for Grad-CAM.

    Args:
        model: a Keras model (Sequential, Functional, possibly nested).
        layer: ``None`` for the automatic choice (the last layer with a 4-D output,
            looking inside nested models); a name or ``"outer/inner"`` path; an integer
            index into ``model.layers``; or a ``keras.layers.Layer`` of the model.
        shapes: for a subclassed model, its layers' output shapes found by tracing it,
            in call order (:func:`gradcam.capture.model_info`). Defaults to ``None``.

    Returns:
        A :class:`LayerRef` with the layer and its path.

    Raises:
        ValueError: no such layer (the message lists the closest names), a name that
            matches layers in several nested models, a layer whose output is not 4-D, or
            a model without any layer usable for Grad-CAM.
        TypeError: ``layer`` is of another type.
    """
    if layer is None:
        candidates = spatial_layers(model, shapes)
        if not candidates:
            raise ValueError(
                f"Model {model.name!r} has no layer usable for Grad-CAM: none has a 4-D "
                "(batch, height, width, channels) output. Grad-CAM explains convolutional "
                "image models."
            )
        return candidates[-1]
    if isinstance(layer, keras.layers.Layer):
        for ref in iter_layers(model):
            if ref.layer is layer:
                return _check_spatial(model, ref, shapes)
        raise ValueError(f"Layer {layer.name!r} ({layer!r}) is not a layer of model {model.name!r}.")
    if isinstance(layer, bool) or not isinstance(layer, (int, str)):
        raise TypeError(
            f"layer must be None, a layer name, an index or a keras Layer; got {layer!r}."
        )
    if isinstance(layer, int):
        count = len(model.layers)
        if not -count <= layer < count:
            raise ValueError(
                f"Layer index {layer} is out of range: model {model.name!r} has {count} layers."
            )
        chosen = model.layers[layer]
        return _check_spatial(model, LayerRef(chosen, chosen.name), shapes)
    refs = list(iter_layers(model))
    matches = [ref for ref in refs if ref.path == layer]
    if not matches:
        matches = [ref for ref in refs if ref.layer.name == layer]
    if len(matches) > 1:
        paths = ", ".join(ref.path for ref in matches)
        raise ValueError(
            f"Layer name {layer!r} is ambiguous in model {model.name!r}: it matches {paths}. "
            "Pass the full 'outer/inner' path."
        )
    if not matches:
        names = [ref.path for ref in refs] + [ref.layer.name for ref in refs]
        close = close_matches(layer, names)
        hint = f" Closest layer names: {', '.join(repr(n) for n in close)}." if close else ""
        raise ValueError(f"No layer named {layer!r} in model {model.name!r}.{hint}")
    return _check_spatial(model, matches[0], shapes)
