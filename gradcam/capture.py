"""What Grad-CAM needs from a model, read without changing it: checks and layer capture.

Keras 3 has no forward hooks, so a layer's output is read by wrapping the layer's
``call`` while the engine's computation is traced (once per engine and compiled
function; never while it runs). Two rules keep the user's model as it was, for every
thread:

* the wrapper records only for the thread that installed it; any other thread that calls
  the model meanwhile (``model(x)``, ``model.predict(x)``) goes straight through to the
  layer's own ``call`` and gets exactly what it would get without the wrapper;
* wrappers are installed and removed under one lock, so two traces never stack wrappers
  on the same layer, and the original is restored in ``finally``, even on error.

Subclassed models (a ``keras.Model`` subclass with its own ``call``) have no symbolic
graph: their input shape comes from their first call, and their layers' output shapes,
the number of classes and the presence of a final softmax from one trace of the model.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from gradcam.layers import iter_layers

# Serialises installing and removing wrappers, whichever the model: traces are rare, and
# one lock also covers a layer shared by two models (a base used alone and in a wrapper).
_CAPTURE_LOCK = threading.RLock()


@dataclass
class Recording:
    """The outputs recorded by :func:`record_outputs`, in call order."""

    calls: list = field(default_factory=list)  # (layer, output) pairs

    def outputs_of(self, layer) -> list:
        """The outputs of ``layer``, one per call."""
        return [output for called, output in self.calls if called is layer]


def _recording_call(layer, original, owner: int, recording: Recording, on_output):
    def call(*args, **kwargs):
        output = original(*args, **kwargs)
        if threading.get_ident() == owner:
            if on_output is not None:
                on_output(output)
            recording.calls.append((layer, output))
        return output

    return call


@contextlib.contextmanager
def record_outputs(layers, on_output=None):
    """Record the outputs of ``layers`` when this thread calls the model inside the block.

    Args:
        layers: the layers whose outputs to record.
        on_output: called with each recorded output as soon as the layer returns it
            (e.g. ``tape.watch``), before later layers use it. Defaults to ``None``.

    Yields:
        A :class:`Recording`, filled as the layers run.
    """
    owner = threading.get_ident()
    recording = Recording()
    with _CAPTURE_LOCK:
        saved = []
        try:
            for layer in dict.fromkeys(layers):  # each layer once, in order
                own = vars(layer)
                saved.append((layer, "call" in own, own.get("call")))
                wrapper = _recording_call(layer, layer.call, owner, recording, on_output)
                object.__setattr__(layer, "call", wrapper)
            yield recording
        finally:
            for layer, had, old in reversed(saved):
                if had:
                    object.__setattr__(layer, "call", old)
                else:
                    object.__delattr__(layer, "call")


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a model.

    Attributes:
        input_shape: the image input's shape, batch dimension first (``None``).
        input_dtype: the input's dtype name.
        num_classes: the size of the ``(batch, classes)`` output.
        softmax: whether the model ends in a softmax (its logits can be explained).
        layer_shapes: for subclassed models, each layer's traced output shape (layers
            called once), in call order; ``None`` for models with a symbolic graph.
    """

    input_shape: tuple
    input_dtype: str
    num_classes: int
    softmax: bool
    layer_shapes: dict | None = None


def _is_softmax(function) -> bool:
    return getattr(function, "__name__", None) == "softmax"


def find_softmax(model: keras.Model):
    """Find the softmax that ends ``model``, without changing the model.

    Returns:
        ``(layer, "activation")`` for a layer whose ``activation`` is softmax (e.g. a
        ``Dense(..., activation="softmax")``), ``(layer, "call")`` for a ``Softmax`` or
        ``Activation("softmax")`` layer, or ``None`` when the model does not end in a
        softmax or has no symbolic graph (a subclassed model).
    """
    layer = model
    while isinstance(layer, keras.Model):
        outputs = getattr(layer, "outputs", None)
        if not outputs or len(outputs) != 1:
            return None
        history = getattr(outputs[0], "_keras_history", None)
        layer = history.operation if history is not None else layer.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return layer, "call"
    if _is_softmax(getattr(layer, "activation", None)):
        return layer, ("call" if isinstance(layer, keras.layers.Activation) else "activation")
    return None


def logits_of(outputs):
    """The pre-softmax logits of a softmax output, as Keras records them; else ``None``.

    Keras's softmax (``keras.activations.softmax``, ``keras.ops.softmax``) keeps its
    input on its output as ``_keras_logits``, which its cross-entropy losses read too.
    """
    return getattr(outputs, "_keras_logits", None)


def _check_classifier_output(model, shape) -> int:
    if len(shape) != 2:
        raise ValueError(
            f"Model {model.name!r} has output shape {tuple(shape)}; Grad-CAM needs a "
            "classifier output of shape (batch, classes)."
        )
    return int(shape[-1])


def _check_image_input(model, shape) -> tuple:
    if len(shape) != 4:
        raise ValueError(
            f"Model {model.name!r} takes inputs of shape {tuple(shape)}; Grad-CAM needs an image "
            "input of shape (batch, height, width, channels)."
        )
    return (None,) + tuple(shape[1:])


def _graph_model_info(model: keras.Model) -> ModelInfo:
    inputs = model.inputs
    if len(inputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(inputs)} inputs; Grad-CAM needs one image input.")
    outputs = model.outputs
    if len(outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(outputs)} outputs; Grad-CAM explains a model with "
            "one output. Build a keras.Model(model.inputs, model.outputs[i]) for the output to explain."
        )
    return ModelInfo(
        input_shape=tuple(inputs[0].shape),
        input_dtype=keras.backend.standardize_dtype(inputs[0].dtype),
        num_classes=_check_classifier_output(model, outputs[0].shape),
        softmax=find_softmax(model) is not None,
    )


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
            f"{name} was first called on {config.get('shapes_dict', shape)!r}; Grad-CAM needs a "
            "model called on one batch of images."
        )
    input_shape = _check_image_input(model, shape)
    input_dtype = keras.backend.standardize_dtype(model.input_dtype)
    refs = [ref for ref in iter_layers(model) if not isinstance(ref.layer, keras.layers.InputLayer)]
    found = {}

    def forward(x):
        with record_outputs([ref.layer for ref in refs]) as recording:
            outputs = model(x, training=False)
        found["outputs"] = outputs
        found["calls"] = recording.calls
        return outputs

    # get_concrete_function traces without running anything (and without counting as a
    # call in TensorFlow's retracing statistics).
    spec = tf.TensorSpec(input_shape, input_dtype)
    tf.function(forward, autograph=False).get_concrete_function(spec)
    outputs = found["outputs"]
    if not isinstance(outputs, tf.Tensor):
        raise ValueError(
            f"{name} returns {type(outputs).__name__}; Grad-CAM explains a model with one "
            "(batch, classes) output."
        )
    counts: dict = {}
    for layer, _ in found["calls"]:
        counts[layer] = counts.get(layer, 0) + 1
    layer_shapes = {
        layer: tuple(output.shape)
        for layer, output in found["calls"]
        if counts[layer] == 1 and isinstance(output, tf.Tensor)
    }
    return ModelInfo(
        input_shape=input_shape,
        input_dtype=input_dtype,
        num_classes=_check_classifier_output(model, outputs.shape),
        softmax=logits_of(outputs) is not None,
        layer_shapes=layer_shapes,
    )


def model_info(model) -> ModelInfo:
    """Check that ``model`` is a built image classifier and describe it.

    Sequential and Functional models (nested ones too) are read from their symbolic graph;
    a subclassed model that has been called once is traced once.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: the model is not built (or, subclassed, never called), has several
            inputs or outputs, or its input or output has the wrong rank.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; got {type(model).__name__}.")
    if getattr(model, "inputs", None):
        return _graph_model_info(model)
    if isinstance(model, keras.Sequential) or type(model) is keras.Model:
        raise ValueError(
            f"Model {model.name!r} is not built: build it with an Input layer (or call it "
            "once on an image batch) before explaining it."
        )
    return _subclassed_model_info(model)
