"""Finding the layer to explain: nested models, layers inside layers, token layers.

A layer is addressed by its path from the outer model: ``"conv5_block3_out"`` for a
layer of the model itself, ``"resnet50/conv5_block3_out"`` for a layer of a
``keras.applications`` base used inside a ``Sequential`` or Functional wrapper,
``"vi_t_backbone/vit_encoder/transformer_block_2/ln_1"`` for a layer that another layer
holds (a keras-hub ViT's encoder blocks live inside one ``vit_encoder`` layer). A unique
leaf name or end of a path is enough (``"conv5_block3_out"`` finds the nested layer too,
``"transformer_block_2/ln_1"`` the ViT's).
``"input of <path>"`` addresses the tensor that a layer receives rather than the one it
returns: that is how the automatic choice names what a head's pooling receives when an
operation that is not a layer (a residual ``+``) made it.

The explained tensor is either 4-D, ``(batch, height, width, channels)``, or a
**token layer**'s output ``(batch, tokens, channels)`` with ``tokens = g * g`` or
``1 + g * g`` (a class token first, dropped), explained as a ``g x g`` grid
(:func:`tokens_to_grid`); other layouts take a ``reshape`` function (see
:func:`find_layer`).

The automatic choice (:func:`find_layer` with ``layer=None``):

* **transformers** (a model with an attention layer): the last token layer called before
  the last attention layer, i.e. the last block's first normalisation in a pre-norm ViT
  (``blocks[-1].norm1``, as pytorch-grad-cam recommends). The head reads the class token
  of the last block's output only, and nothing mixes tokens after the last attention, so
  the score does not depend on the patch tokens of any later tensor: their gradients are
  zero and the map would be empty. The input of the last attention is the last place
  where the patch tokens still feed the class token;
* **convolutional models** with a symbolic graph: the last 4-D tensor on the path from
  the output back to the input that is larger than 1 x 1, i.e. what the head's global
  pooling or flatten receives. When a layer made it, its output; when an operation did
  (ConvNeXt's residual add), the input of the layer that receives it (the pooling);
* otherwise (subclassed models, or no such path): the last layer with a 4-D output, in
  call order.

The layers of a subclassed model, and the layers inside other layers, have no symbolic
output: their shapes come from a trace of the model (``shapes``, see
:func:`gradcam.capture.model_info`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import keras

from gradcam._matching import close_matches

INPUT_OF = "input of "


@dataclass(frozen=True)
class LayerRef:
    """A layer of a model and its path from the outer model (``"outer/inner"``).

    Attributes:
        layer: the Keras layer.
        path: its path from the outer model.
        of_input: ``True`` when the explained tensor is the layer's input (what a head's
            pooling receives), not its output.
    """

    layer: keras.layers.Layer
    path: str
    of_input: bool = False

    @property
    def name(self) -> str:
        """The path, or ``"input of <path>"``: a ``layer=`` value that finds this tensor again."""
        return INPUT_OF + self.path if self.of_input else self.path


def _is_attention(layer) -> bool:
    return isinstance(layer, keras.layers.MultiHeadAttention) or type(layer).__name__.endswith("Attention")


def _sublayers(layer) -> list:
    """The layers that ``layer`` holds: a model's layers; another layer's own sublayers
    (an attention layer is a leaf: its projections are no image map)."""
    if isinstance(layer, keras.Model):
        return list(getattr(layer, "layers", []))
    if _is_attention(layer):
        return []
    return list(layer._flatten_layers(include_self=False, recursive=False))


def iter_layers(model: keras.Model, prefix: str = "", sublayers: bool = False):
    """Yield a :class:`LayerRef` for every layer of ``model``, depth first.

    A nested model is yielded itself, then its own layers under ``"name/"``.

    Args:
        model: a Keras model.
        prefix: put before every path. Defaults to ``""``.
        sublayers: also yield the layers held by layers that are not models (a
            keras-hub encoder's blocks and their normalisations), under ``"name/"``.
            Defaults to ``False``.
    """
    for layer in getattr(model, "layers", []):
        path = prefix + layer.name
        yield LayerRef(layer, path)
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, prefix=path + "/", sublayers=sublayers)
        elif sublayers:
            yield from _iter_sublayers(layer, path + "/")


def _iter_sublayers(layer, prefix: str):
    for inner in _sublayers(layer):
        path = prefix + inner.name
        yield LayerRef(inner, path)
        yield from _iter_sublayers(inner, path + "/")


def has_sublayers(model: keras.Model) -> bool:
    """True when a layer of ``model`` (not a model) holds layers of its own, whose
    shapes only a trace of the model can tell."""
    return any(
        not isinstance(ref.layer, keras.Model) and _sublayers(ref.layer) for ref in iter_layers(model)
    )


def output_shape(layer: keras.layers.Layer, shapes: dict | None = None) -> tuple | None:
    """The layer's output shape, or None where it is not known.

    Args:
        layer: a Keras layer.
        shapes: output shapes found by tracing the model, by layer; used for the layers
            it holds. Defaults to ``None``.

    Returns:
        The shape, batch first; ``None`` for a layer called more than once, or of a
        subclassed model or inside another layer when ``shapes`` does not hold it.
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


def token_grid(count) -> tuple[int, int] | None:
    """``(extra, g)`` when ``count`` tokens are ``extra + g * g`` patches of a ``g x g``
    grid (``extra`` is 0, or 1 for a class token first; ``g >= 2``); else ``None``."""
    if not isinstance(count, int):
        return None
    for extra in (0, 1):
        side = math.isqrt(max(count - extra, 0))
        if side >= 2 and side * side == count - extra:
            return extra, side
    return None


def tokens_to_grid(tokens):
    """``(batch, extra + g*g, channels)`` tokens as a ``(batch, g, g, channels)`` grid.

    The class token (``extra = 1``) is dropped; the patches are read row by row, as
    ViT's patch embedding writes them.

    Args:
        tokens: a backend tensor whose number of tokens is known when it is traced.

    Returns:
        The grid, a backend tensor.

    Raises:
        ValueError: the number of tokens is not ``g*g`` or ``1 + g*g``.
    """
    shape = tuple(tokens.shape)
    grid = token_grid(shape[1])
    if grid is None:
        raise ValueError(_token_message(shape))
    extra, side = grid
    return keras.ops.reshape(tokens[:, extra:, :], (-1, side, side, shape[2]))


def _token_message(shape) -> str:
    return (
        f"{shape[1]} tokens (shape {tuple(shape)}) do not make a square grid: a token layer "
        "is explained as a g x g grid when it has g*g tokens, or 1 + g*g with a class token "
        "first. Pass reshape= a function that turns the layer's output into "
        "(batch, height, width, channels) for other layouts (Swin, register tokens)."
    )


def is_spatial(layer: keras.layers.Layer, shapes: dict | None = None) -> bool:
    """True when the layer's output is 4-D: (batch, height, width, channels)."""
    shape = output_shape(layer, shapes)
    return shape is not None and len(shape) == 4


def is_token_layer(layer: keras.layers.Layer, shapes: dict | None = None) -> bool:
    """True when the layer's output is ``(batch, g*g or 1 + g*g tokens, channels)``."""
    shape = output_shape(layer, shapes)
    return shape is not None and len(shape) == 3 and token_grid(shape[1]) is not None


def _ordered(model, refs: list[LayerRef], shapes: dict | None) -> list[LayerRef]:
    """``refs`` in call order where a trace recorded it (``shapes``), else in model order."""
    if shapes is None:
        return refs
    order = {layer: i for i, layer in enumerate(shapes)}
    if getattr(model, "inputs", None):  # a symbolic graph: inner layers after their parent
        return sorted(refs, key=lambda ref: order.get(ref.layer, len(order)))
    return sorted(refs, key=lambda ref: order.get(ref.layer, -1))


def usable_layers(model: keras.Model, shapes: dict | None = None) -> list[LayerRef]:
    """The layers whose output can be explained (4-D or a token layer), in call order.

    A nested model is not listed itself: its own layers are; layers inside other
    layers are listed when ``shapes`` (a trace of the model) knows their shapes.
    """
    refs = [
        ref
        for ref in iter_layers(model, sublayers=True)
        if not isinstance(ref.layer, (keras.Model, keras.layers.InputLayer))
        and (is_spatial(ref.layer, shapes) or is_token_layer(ref.layer, shapes))
    ]
    return _ordered(model, refs, shapes)


def spatial_layers(model: keras.Model, shapes: dict | None = None) -> list[LayerRef]:
    """The layers with a 4-D output, in model order (call order for a traced model).

    A nested model is not listed itself: its own layers are. With ``shapes`` (a traced
    subclassed model), the order is the order of the calls that ``shapes`` records.
    """
    return [ref for ref in usable_layers(model, shapes) if is_spatial(ref.layer, shapes)]


def _describe(model: keras.Model, refs: list[LayerRef], limit: int = 5) -> str:
    names = [ref.path for ref in refs[-limit:]]
    if not names:
        return f"Model {model.name!r} has no layer with a 4-D output or a token grid."
    more = "the last ones: " if len(refs) > limit else ""
    return f"Layers with a 4-D output or a token grid ({more}{', '.join(names)})."


def _check_usable(model: keras.Model, ref: LayerRef, shapes: dict | None, reshape) -> LayerRef:
    if reshape is not None:
        return ref
    shape = explained_shape(ref, shapes)
    what = "input" if ref.of_input else "output"
    if shape is None or len(shape) == 4:
        return ref
    if len(shape) == 3 and shape[1] is not None and token_grid(shape[1]) is None:
        raise ValueError(f"Layer {ref.name!r}: {_token_message(shape)}")
    if len(shape) != 3 or shape[1] is None:
        raise ValueError(
            f"Layer {ref.name!r} has {what} shape {tuple(shape)}; a class-activation map needs "
            f"a 4-D (batch, height, width, channels) {what}, or (batch, tokens, channels) "
            f"tokens of a square grid. {_describe(model, usable_layers(model, shapes))}"
        )
    return ref


def explained_shape(ref: LayerRef, shapes: dict | None = None) -> tuple | None:
    """The shape of the tensor ``ref`` names: the layer's input when :attr:`LayerRef.of_input`,
    else its output (see :func:`output_shape`); ``None`` where it is not known."""
    return _input_shape(ref.layer) if ref.of_input else output_shape(ref.layer, shapes)


def _input_shape(layer) -> tuple | None:
    try:
        inputs = layer.input
    except (AttributeError, ValueError, RuntimeError):
        return None
    shape = getattr(inputs, "shape", None)
    return tuple(shape) if shape is not None else None


def _called_once(layer, graph) -> bool:
    """Whether ``layer`` is called once in ``graph``'s own nodes (a functional model's):
    a sub-model made later from the model's tensors (``keras.Model(layer.output, ...)``)
    calls its layers again on copies of them, which adds nodes to the layers but not to
    ``graph``."""
    nodes = getattr(layer, "_inbound_nodes", [])
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if not by_depth:
        return len(nodes) == 1
    own = {id(node) for depth in by_depth.values() for node in depth}
    return sum(id(node) in own for node in nodes) == 1


def _large_4d(tensor) -> bool:
    shape = tuple(tensor.shape)
    return len(shape) == 4 and not (shape[1] == 1 and shape[2] == 1)


def head_input(model: keras.Model) -> LayerRef | None:
    """What the head's pooling (or flatten) receives: the last 4-D tensor larger than
    1 x 1 on the path from the output back to the input, in a model with a symbolic graph.

    Returns:
        The layer that made it (its output), or, when an operation that is not a layer
        made it, the layer that receives it (``of_input=True``); ``None`` when the path
        has no such tensor, or no layer to read it from.
    """
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    # (tensor, path prefix of its graph, the layer on the path that receives it, the graph)
    queue = deque([(outputs[0], "", None, model)])
    seen = set()
    while queue:
        tensor, prefix, consumer, graph = queue.popleft()
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation = history.operation
        if isinstance(operation, keras.layers.InputLayer):
            continue
        node = operation._inbound_nodes[history.node_index]
        if isinstance(operation, keras.Model):  # look inside, then before it
            queue.append((operation.outputs[history.tensor_index], f"{prefix}{operation.name}/", consumer, operation))
            for inner in node.input_tensors:
                queue.append((inner, prefix, None, graph))
            continue
        if _large_4d(tensor):
            if isinstance(operation, keras.layers.Layer) and _called_once(operation, graph):
                return LayerRef(operation, prefix + operation.name)
            if consumer is not None:
                return consumer
        inputs = node.input_tensors
        receiver = None  # a layer with one input can read it (capture(of_input=True))
        if isinstance(operation, keras.layers.Layer) and _called_once(operation, graph) and len(inputs) == 1:
            receiver = LayerRef(operation, prefix + operation.name, of_input=True)
        for inner in inputs:
            queue.append((inner, prefix, receiver, graph))
    return None


def transformer_layer(model: keras.Model, shapes: dict | None = None) -> LayerRef | None:
    """The automatic layer of a transformer: the last token layer called before the
    model's last attention layer (in a pre-norm ViT, the last block's first
    normalisation); ``None`` for a model without attention layers."""
    layers = [
        ref
        for ref in iter_layers(model, sublayers=True)
        if not isinstance(ref.layer, (keras.Model, keras.layers.InputLayer))
    ]
    refs = _ordered(model, layers, shapes)
    last = max((i for i, ref in enumerate(refs) if _is_attention(ref.layer)), default=None)
    if last is None:
        return None
    for ref in reversed(refs[:last]):
        if is_token_layer(ref.layer, shapes):
            return ref
    return None


def _automatic(model: keras.Model, shapes: dict | None) -> LayerRef:
    ref = transformer_layer(model, shapes)
    if ref is None and getattr(model, "inputs", None):
        ref = head_input(model)
    if ref is None:
        candidates = spatial_layers(model, shapes) or usable_layers(model, shapes)
        ref = candidates[-1] if candidates else None
    if ref is None:
        raise ValueError(
            f"Model {model.name!r} has no layer usable for Grad-CAM: none has a 4-D "
            "(batch, height, width, channels) output or a (batch, tokens, channels) output "
            "of a square grid of tokens. Class-activation maps explain image models; pass "
            "layer= and reshape= for other layouts."
        )
    return ref


def find_layer(model: keras.Model, layer=None, shapes: dict | None = None, reshape=None) -> LayerRef:
    """Resolve ``layer`` to the tensor of ``model`` to explain.

    Args:
        model: a Keras model (Sequential, Functional, possibly nested, or subclassed).
        layer: ``None`` for the automatic choice (see :mod:`gradcam.layers`); a name,
            an ``"outer/inner"`` path (also into layers that hold layers), or
            ``"input of <name or path>"`` for the tensor a layer receives; an integer
            index into ``model.layers``; or a ``keras.layers.Layer`` of the model.
        shapes: layers' output shapes found by tracing the model, in call order
            (:attr:`gradcam.capture.ModelInfo.layer_shapes`): every layer's for a
            subclassed model, the inner layers' for a model whose layers hold layers.
            Defaults to ``None``.
        reshape: the engine's ``reshape`` function, or ``None``; with one, any layer is
            accepted (the function decides what its output means). Defaults to ``None``.

    Returns:
        A :class:`LayerRef` with the layer and its path.

    Raises:
        ValueError: no such layer (the message lists the closest names), a name that
            matches layers in several nested models, a layer whose output is neither
            4-D nor a square grid of tokens (without ``reshape``), or a model without any
            layer usable for a class-activation map.
        TypeError: ``layer`` is of another type.
    """
    if layer is None:
        return _automatic(model, shapes)
    if isinstance(layer, keras.layers.Layer):
        for ref in iter_layers(model, sublayers=True):
            if ref.layer is layer:
                return _check_usable(model, ref, shapes, reshape)
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
        return _check_usable(model, LayerRef(chosen, chosen.name), shapes, reshape)
    of_input = layer.startswith(INPUT_OF)
    wanted = layer[len(INPUT_OF):] if of_input else layer
    refs = list(iter_layers(model, sublayers=True))
    matches = [ref for ref in refs if ref.path == wanted]
    if not matches:
        matches = [ref for ref in refs if ("/" + ref.path).endswith("/" + wanted)]
    if len(matches) > 1:
        paths = ", ".join(ref.path for ref in matches)
        raise ValueError(
            f"Layer name {wanted!r} is ambiguous in model {model.name!r}: it matches {paths}. "
            "Pass the full 'outer/inner' path."
        )
    if not matches:
        names = [ref.path for ref in refs] + [ref.layer.name for ref in refs]
        close = close_matches(wanted, names)
        hint = f" Closest layer names: {', '.join(repr(n) for n in close)}." if close else ""
        raise ValueError(f"No layer named {wanted!r} in model {model.name!r}.{hint}")
    ref = LayerRef(matches[0].layer, matches[0].path, of_input=of_input)
    return _check_usable(model, ref, shapes, reshape)
