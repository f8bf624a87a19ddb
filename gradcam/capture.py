"""What a class-activation map needs from a model, read without changing it, on any backend.

Two things, both written with Keras alone (no backend is named here):

* :func:`model_info` checks that a model is a built image model and describes it: its
  input, its outputs' shapes (a classifier's ``(batch, classes)``, a segmenter's per-pixel
  scores, an embedding, several outputs: what to explain in them is the target's concern,
  :mod:`gradcam.targets`), the softmax that ends it (:func:`find_softmax`), and, for a
  subclassed model, its layers' output shapes in call order;
* :func:`capture` reads the explained layer during the model's own call.

Keras 3 has no forward hooks, so :func:`capture` wraps the ``call`` of the explained
layer for one call of the model, in one of three modes:

* **record**: the layer's output ``A`` (the activations) is recorded;
* **probe**: the layer also returns ``A + probe(A)`` instead of ``A``, where ``probe``
  gives a zero tensor that the backend differentiates against: the gradient with respect
  to the probe is the gradient with respect to ``A`` (see :mod:`gradcam.backend`), and
  nothing about the model has to be rebuilt or split;
* **replace**: the layer returns given activations instead of computing its own (or,
  given a function, what the function makes of its own output), so the rest of the
  model runs on them: a batch of ``B`` perturbed activations for an input batch of one
  image runs the model from the layer onward ``B`` times at once. Tensors from before
  the layer that reach past it (a skip connection around the layer) keep their batch of
  one and are broadcast over the ``B``.

Each mode reads the layer's output, or, with ``of_input=True``, the tensor the layer
receives (its first argument): what a head's pooling receives when an operation that is
not a layer made it (a residual ``+``), which has no layer of its own to wrap. Either
way the wrapped object is a layer, so every method and backend works on both alike.

:func:`capture_layers` reads several layers in one call of the model (FullGrad's
every convolution and batch normalisation), each before its fused activation, and
:func:`layer_calls` lists their calls and output shapes from one symbolic trace.

When the model ends in a softmax, the same capture records the softmax's input, the
logits, by wrapping the softmax itself (a ``Softmax`` layer's ``call``, or the
``activation`` of a ``Dense(..., activation="softmax")``): that works on every backend,
where a tensor attribute such as TensorFlow's ``_keras_logits`` does not.

The user's model is never modified in a way another thread could see:

* the wrappers are installed only while an engine's computation is traced (once per
  compiled function with TensorFlow and JAX; at every call with PyTorch, which does not
  trace), never while a compiled function runs;
* each wrapped object has its own lock, taken (in a fixed order) for as long as its
  wrapper is installed, so two captures never stack wrappers on one layer, even a layer
  shared by two models (a base used alone and inside a wrapper);
* a wrapper acts only for the thread that installed it: any other thread that calls the
  model meanwhile (``model(x)``, ``model.predict(x)``) goes straight through to the
  layer's own ``call``;
* the attributes are restored in ``finally``: an attribute the wrapper shadowed is put
  back, one that did not exist is deleted, so ``vars(layer)`` is as before.

Layers held by other layers (not models) have no symbolic output either: for a model
that has some, the same trace records their shapes.

Subclassed models (a ``keras.Model`` subclass with its own ``call``) have no symbolic
graph: their input shape comes from their first call, and their layers' output shapes,
the number of classes and the softmax that ends them from one symbolic trace of the
model (Keras's own shape inference: nothing is computed), recorded by the same wrappers.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass, field

import keras

from gradcam.guided_relu import guided
from gradcam.layers import has_sublayers, iter_layers

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@dataclass
class Recording:
    """What :func:`capture` recorded during one call of the model, in call order.

    Attributes:
        activations: the layer's outputs (or the replacements it returned), one per call
            of the layer.
        logits: the inputs of the final softmax, one per call of it.
    """

    activations: list = field(default_factory=list)
    logits: list = field(default_factory=list)


@dataclass(frozen=True)
class ModelInfo:
    """What an engine needs to know about a model.

    Attributes:
        input_shape: the image input's shape, batch dimension first (``None``).
        input_dtype: the input's dtype name.
        num_classes: the size of the last axis of the model's one output (the classes of a
            ``(batch, classes)`` classifier or of a per-pixel ``(batch, h, w, classes)``
            segmenter), or ``None`` for a model with several outputs.
        softmax: where the softmax that ends the model is (see :func:`find_softmax`), or
            ``None`` when the model does not end in one.
        layer_shapes: each layer's traced output shape (layers called once, nested and
            inside other layers), in the order their calls return: for subclassed models,
            and for models with a symbolic graph whose layers hold layers (a keras-hub
            backbone's encoder); ``None`` for other models with a symbolic graph.
        output_shapes: the outputs' shapes, batch first (``None``), in the structure the
            model returns: one shape, or a list or dict of them.
    """

    input_shape: tuple
    input_dtype: str
    num_classes: int | None
    softmax: tuple | None
    layer_shapes: dict | None = None
    output_shapes: object = None


# -- wrapping, thread by thread ------------------------------------------------------------
def _lock(obj) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(obj)
        if lock is None:
            lock = _LOCKS[obj] = threading.RLock()
        return lock


@contextlib.contextmanager
def _wrapped(patches):
    """Install ``wrap(original)`` as ``obj.<name>`` for each ``(obj, name, wrap)``, under
    each object's lock (taken in ``id`` order), and restore every attribute on exit."""
    objects = sorted({id(obj): obj for obj, _, _ in patches}.values(), key=id)
    with contextlib.ExitStack() as locks:
        for obj in objects:
            locks.enter_context(_lock(obj))
        saved = []
        try:
            for obj, name, wrap in patches:
                own = vars(obj)
                saved.append((obj, name, name in own, own.get(name)))
                object.__setattr__(obj, name, wrap(getattr(obj, name)))
            yield
        finally:
            for obj, name, had, old in reversed(saved):
                if had:
                    object.__setattr__(obj, name, old)
                else:
                    object.__delattr__(obj, name)


def _read(tensor, recording, probe, replace):
    """The tensor the wrapped layer goes on with: recorded, probed or replaced."""
    if replace is not None:
        tensor = replace(tensor) if callable(replace) else replace
        recording.activations.append(tensor)
        return tensor
    recording.activations.append(tensor)
    return tensor if probe is None else tensor + probe(tensor)


def _layer_call(original, owner, recording, probe, replace, of_input):
    def call(*args, **kwargs):
        if threading.get_ident() != owner:
            return original(*args, **kwargs)
        if of_input:
            if not args:  # called as layer(inputs=x)
                return original(_read(kwargs.pop("inputs"), recording, probe, replace), **kwargs)
            return original(_read(args[0], recording, probe, replace), *args[1:], **kwargs)
        if replace is not None and not callable(replace):
            return _read(None, recording, probe, replace)
        return _read(original(*args, **kwargs), recording, probe, replace)

    return call


def _softmax_input(original, owner, recording):
    def softmax(inputs, *args, **kwargs):
        if threading.get_ident() == owner:
            recording.logits.append(inputs)
        return original(inputs, *args, **kwargs)

    return softmax


def _guided_call(original, owner):
    def call(*args, **kwargs):
        if threading.get_ident() != owner:
            return original(*args, **kwargs)
        return guided(original(*args, **kwargs))

    return call


@contextlib.contextmanager
def capture(layer=None, softmax=None, probe=None, replace=None, of_input=False, guided_relus=()):
    """Record (and probe or replace) ``layer``'s output while this thread calls the model.

    Args:
        layer: the layer to read, or ``None`` to record the logits only.
        softmax: :attr:`ModelInfo.softmax` (``find_softmax(model)``): whose input to
            record as the logits, or ``None``. Defaults to ``None``.
        probe: ``probe(activation) -> zero tensor`` added to the layer's output (the
            backend's probe), or ``None``. Defaults to ``None``.
        replace: a tensor for the layer to return instead of its own output, a function
            of the layer's own output that returns the tensor to go on with, or
            ``None``. Defaults to ``None``.
        of_input: read (probe, replace) the tensor the layer receives, its first
            argument, instead of its output; the layer then runs on what is read.
            Defaults to ``False``.
        guided_relus: ``(layer, attribute)`` pairs of
            :func:`gradcam.guided_relu.find_relus`: ReLUs whose output this thread's call
            follows by :func:`gradcam.guided_relu.guided` (guided backpropagation),
            installed under the same locks as the rest. Defaults to ``()``.

    Yields:
        A :class:`Recording`, filled as the model runs inside the block.

    Raises:
        ValueError: both ``probe`` and ``replace`` are given.
    """
    if probe is not None and replace is not None:
        raise ValueError("capture() takes a probe or a replacement, not both.")
    owner = threading.get_ident()
    recording = Recording()
    patches = []
    if layer is not None:
        patches.append(
            (layer, "call", lambda original: _layer_call(original, owner, recording, probe, replace, of_input))
        )
    if softmax is not None:
        obj, name = softmax
        patches.append((obj, name, lambda original: _softmax_input(original, owner, recording)))
    patches += [(obj, name, lambda original: _guided_call(original, owner)) for obj, name in guided_relus]
    with _wrapped(patches):
        yield recording


def _reader(layer, owner, recording, edit, before_call):
    """A wrapper of ``layer.activation`` (``before_call``: it reads and edits the
    activation's input) or of ``layer.call`` (it reads and edits the output)."""

    def read(tensor):
        recording.activations.append(tensor)
        return tensor if edit is None else edit(layer, tensor)

    def wrapper(original):
        def call(*args, **kwargs):
            if threading.get_ident() != owner:
                return original(*args, **kwargs)
            if before_call:
                return original(read(args[0]), *args[1:], **kwargs)
            return read(original(*args, **kwargs))

        return call

    return wrapper


@contextlib.contextmanager
def capture_layers(layers, softmax=None, edit=None):
    """Record (and edit) what several layers compute while this thread calls the model.

    What is read of each layer is its output before its activation: for a layer with an
    ``activation`` function (a convolution's fused ``activation="relu"``, linear by
    default), the activation's input, for any other layer its output. Every call of a
    listed layer is read, in call order, so one forward pass reads them all.

    Args:
        layers: the layers to read.
        softmax: :attr:`ModelInfo.softmax`: whose input to record as the logits, or
            ``None``. Defaults to ``None``.
        edit: ``edit(layer, tensor) -> tensor``, called with each tensor read; the layer
            goes on with what it returns (the tensor plus a backend's probe, for
            example), or ``None`` to go on unchanged. Defaults to ``None``.

    Yields:
        A :class:`Recording` whose ``activations`` are the tensors read (before
        ``edit``), in call order, and ``logits`` the softmax's inputs.
    """
    owner = threading.get_ident()
    recording = Recording()
    patches = []
    if softmax is not None:  # first, so that a layer's own softmax records its edited input
        obj, name = softmax
        patches.append((obj, name, lambda original: _softmax_input(original, owner, recording)))
    for layer in dict.fromkeys(layers):
        before = callable(getattr(layer, "activation", None))
        patches.append((layer, "activation" if before else "call", _reader(layer, owner, recording, edit, before)))
    with _wrapped(patches):
        yield recording


def layer_calls(model, layers) -> list:
    """Each call of ``layers`` in one forward pass of ``model``, in call order, with the
    shape of its output, from one symbolic trace (nothing is computed).

    Args:
        model: a model that :func:`model_info` describes.
        layers: the layers (of ``model``, nested or inside other layers) to look for.

    Returns:
        ``[(layer, shape)]``, the shape with the batch first as ``None``.
    """
    info = model_info(model)
    wanted = set(map(id, layers))
    _, calls, _ = _trace(model, info.input_shape, info.input_dtype)
    return [(layer, _static(output.shape)) for layer, output in calls if id(layer) in wanted]


@contextlib.contextmanager
def _record_calls(layers, calls: list):
    """Append ``(layer, output)`` to ``calls`` for every call of ``layers`` by this thread."""
    owner = threading.get_ident()

    def wrap(layer):
        def wrapper(original):
            def call(*args, **kwargs):
                output = original(*args, **kwargs)
                if threading.get_ident() == owner:
                    calls.append((layer, output))
                return output

            return call

        return wrapper

    with _wrapped([(layer, "call", wrap(layer)) for layer in dict.fromkeys(layers)]):
        yield


# -- describing a model --------------------------------------------------------------------
def _is_softmax(function) -> bool:
    return getattr(function, "__name__", None) == "softmax"


def _softmax_of(layer):
    """``(layer, "call")`` or ``(layer, "activation")`` when ``layer`` computes a softmax
    last; else ``None``."""
    if isinstance(layer, keras.layers.Softmax):
        return layer, "call"
    if _is_softmax(getattr(layer, "activation", None)):
        return layer, ("call" if isinstance(layer, keras.layers.Activation) else "activation")
    return None


def find_softmax(model: keras.Model):
    """Find the softmax that ends ``model``, a model with a symbolic graph, without
    changing the model.

    Returns:
        ``(layer, "activation")`` for a layer whose ``activation`` is softmax (e.g. a
        ``Dense(..., activation="softmax")``), ``(layer, "call")`` for a ``Softmax`` or
        ``Activation("softmax")`` layer, or ``None`` when the model does not end in a
        softmax or has no symbolic graph (for a subclassed model, see
        :attr:`ModelInfo.softmax`).
    """
    layer = model
    while isinstance(layer, keras.Model):
        outputs = getattr(layer, "outputs", None)
        if not outputs or len(outputs) != 1:
            return None
        history = getattr(outputs[0], "_keras_history", None)
        layer = history.operation if history is not None else layer.layers[-1]
    return _softmax_of(layer)


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value)


def _output_shapes(model, outputs):
    """The shapes of ``outputs`` (a tensor, or a list, tuple or dict of tensors), batch
    first as ``None``, in their structure.

    Raises:
        ValueError: an output is not a tensor with a batch axis.
    """
    leaves = keras.tree.flatten(outputs)
    if not leaves or not all(hasattr(t, "shape") and len(t.shape) >= 1 for t in leaves):
        raise ValueError(
            f"Model {model.name!r} returns {type(outputs).__name__}; a class-activation map explains "
            "a model whose outputs are tensors (batch, ...), or a list or dict of them."
        )
    return keras.tree.map_structure(lambda t: _static(t.shape), outputs)


def _num_classes(shapes):
    """The size of the last axis of a single output, or ``None``."""
    return shapes[-1] if _is_shape(shapes) and len(shapes) >= 2 else None


def _check_image_input(model, shape) -> tuple:
    if len(shape) != 4:
        raise ValueError(
            f"Model {model.name!r} takes inputs of shape {tuple(shape)}; a class-activation "
            "map needs an image input of shape (batch, height, width, channels)."
        )
    return (None,) + tuple(shape[1:])


def _graph_model_info(model: keras.Model) -> ModelInfo:
    inputs = model.inputs
    if len(inputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(inputs)} inputs; a class-activation map needs one image input."
        )
    outputs = model.outputs
    # model.output keeps a functional model's dict or list; a Sequential model has none
    output_shapes = _output_shapes(model, outputs[0] if len(outputs) == 1 else model.output)
    input_shape = tuple(inputs[0].shape)
    input_dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    layer_shapes = None
    if has_sublayers(model):  # layers inside layers: only a trace knows their shapes
        layer_shapes, _, _ = _trace(model, input_shape, input_dtype)
    return ModelInfo(
        input_shape=input_shape,
        input_dtype=input_dtype,
        num_classes=_num_classes(output_shapes),
        softmax=find_softmax(model),
        layer_shapes=layer_shapes,
        output_shapes=output_shapes,
    )


class _SymbolicCall(keras.Operation):
    """Runs a function on symbolic inputs the way the backend infers shapes (a TensorFlow
    graph, ``jax.eval_shape``, PyTorch's meta device): nothing is computed."""

    def __init__(self, function):
        super().__init__(name="gradcam_trace")
        self._function = function

    def call(self, x):
        return self._function(x)


def _static(shape) -> tuple:
    """A traced shape with the batch and every non-integer size (a JAX symbolic size) as None."""
    return (None,) + tuple(d if isinstance(d, int) else None for d in tuple(shape)[1:])


def _merged(shapes: list) -> tuple:
    """One shape from the shapes a layer had in several traces: sizes that differ are None
    (PyTorch traces twice, with two sizes in place of each unknown one)."""
    return tuple(dims[0] if len(set(dims)) == 1 else None for dims in zip(*shapes))


def _trace(model, input_shape, input_dtype):
    """Trace the model once, symbolically: ``(layer_shapes, calls, outputs)``, where
    ``layer_shapes`` holds the output shape of each layer (nested, and inside other
    layers) called once, in the order the calls returned, and ``calls`` is the last
    trace's ``[(layer, output)]``."""
    layers = [
        ref.layer for ref in iter_layers(model, sublayers=True) if not isinstance(ref.layer, keras.layers.InputLayer)
    ]
    traces = []  # (calls, outputs) of each trace the backend runs

    def trace(x):
        calls = []
        with _record_calls(layers, calls):
            outputs = model(x, training=False)
        traces.append((calls, outputs))
        return outputs

    _SymbolicCall(trace)(keras.KerasTensor(input_shape, input_dtype))
    calls, outputs = traces[-1]
    counts: dict = {}
    for layer, _ in calls:
        counts[layer] = counts.get(layer, 0) + 1
    seen: dict = {}
    for trace_calls, _ in traces:
        for layer, output in trace_calls:
            if counts.get(layer) == 1 and hasattr(output, "shape"):
                seen.setdefault(layer, []).append(_static(output.shape))
    layer_shapes = {layer: _merged(seen[layer]) for layer, _ in calls if layer in seen}
    return layer_shapes, calls, outputs


def _subclassed_model_info(model: keras.Model) -> ModelInfo:
    name = f"Model {model.name!r} is a subclassed keras.Model ({type(model).__name__})"
    config = model.get_build_config() if model.built else None
    if not config:
        raise ValueError(
            f"{name} that has not been called yet, so its input shape and its layers' outputs "
            "are unknown. Call it once on a batch of images (model(images)) before explaining it."
        )
    shape = config.get("input_shape")  # the first call's shape; "shapes_dict" for several inputs
    if not isinstance(shape, (tuple, list)) or not all(d is None or isinstance(d, int) for d in shape):
        raise ValueError(
            f"{name} was first called on {config.get('shapes_dict', shape)!r}; a class-activation "
            "map needs a model called on one batch of images."
        )
    input_shape = _check_image_input(model, shape)
    input_dtype = keras.backend.standardize_dtype(model.input_dtype)
    layer_shapes, calls, outputs = _trace(model, input_shape, input_dtype)
    output_shapes = _output_shapes(model, outputs)
    softmax = None
    for layer, output in reversed(calls):  # the layers whose output the model returns
        if not _is_shape(output_shapes) or output is not outputs:
            continue
        softmax = find_softmax(layer) if getattr(layer, "inputs", None) else _softmax_of(layer)
        if softmax is not None:
            break
    return ModelInfo(
        input_shape=input_shape,
        input_dtype=input_dtype,
        num_classes=_num_classes(output_shapes),
        softmax=softmax,
        layer_shapes=layer_shapes,
        output_shapes=output_shapes,
    )


# model -> its ModelInfo, computed once per model (held weakly: an entry goes when its
# model does). A model whose layers or weights change keeps its inputs, outputs and layer
# shapes: what ModelInfo describes.
_MODEL_INFO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MODEL_INFO_LOCK = threading.Lock()


def model_info(model) -> ModelInfo:
    """Check that ``model`` is a built image model and describe it, once per model.

    Sequential and Functional models (nested ones too) are read from their symbolic graph;
    a subclassed model that has been called once is traced once, symbolically. The result
    is cached per model (held weakly, so a model deleted elsewhere is freed), so the
    engines, the metrics and the command line read or trace a model once between them;
    several threads may ask at once.

    Args:
        model: the model to describe.

    Returns:
        A :class:`ModelInfo`.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: the model is not built (or, subclassed, never called), has several
            inputs, its input is not an image batch, or its outputs are not tensors.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; got {type(model).__name__}.")
    with _MODEL_INFO_LOCK:
        info = _MODEL_INFO.get(model)
        if info is None:
            info = _MODEL_INFO[model] = _describe(model)
    return info


def _describe(model) -> ModelInfo:
    """:func:`model_info`, computed."""
    if getattr(model, "inputs", None):
        return _graph_model_info(model)
    if isinstance(model, keras.Sequential) or type(model) is keras.Model:
        raise ValueError(
            f"Model {model.name!r} is not built: build it with an Input layer (or call it "
            "once on an image batch) before explaining it."
        )
    return _subclassed_model_info(model)
