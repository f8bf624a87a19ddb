"""Reading one layer during the model's own call, on any backend: record, probe, replace.

Keras 3 has no forward hooks, so :func:`capture` wraps the ``call`` of the explained
layer for one call of the model, in one of three modes:

* **record**: the layer's output ``A`` (the activations) is recorded;
* **probe**: the layer also returns ``A + probe(A)`` instead of ``A``, where ``probe``
  gives a zero tensor that the backend differentiates against: the gradient with respect
  to the probe is the gradient with respect to ``A`` (see :mod:`gradcam.backend`), and
  nothing about the model has to be rebuilt or split;
* **replace**: the layer returns given activations instead of computing its own, so the
  rest of the model runs on them: a batch of ``B`` perturbed activations for an input
  batch of one image runs the model from the layer onward ``B`` times at once. Tensors
  from before the layer that reach past it (a skip connection around the layer) keep
  their batch of one and are broadcast over the ``B``.

When the model ends in a softmax (:func:`find_softmax`), its input, the logits, is
recorded too.

The user's model is never modified in a way another thread could see:

* the wrappers are installed only while an engine's computation is traced (once per
  compiled function with TensorFlow and JAX; at every call with PyTorch, which does not
  trace), never while a compiled function runs;
* each wrapped layer has its own lock, taken (in a fixed order) for as long as its
  wrapper is installed, so two captures never stack wrappers on one layer, even a layer
  shared by two models (a base used alone and inside a wrapper);
* a wrapper acts only for the thread that installed it: any other thread that calls the
  model meanwhile (``model(x)``, ``model.predict(x)``) goes straight through to the
  layer's own ``call``;
* the layer's attributes are restored in ``finally``: an attribute the wrapper shadowed
  is put back, one that did not exist is deleted, so ``vars(layer)`` is as before.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass, field

import keras

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


def _lock(obj) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(obj)
        if lock is None:
            lock = _LOCKS[obj] = threading.RLock()
        return lock


def _layer_call(original, owner, recording, probe, replace):
    def call(*args, **kwargs):
        if threading.get_ident() != owner:
            return original(*args, **kwargs)
        if replace is not None:
            recording.activations.append(replace)
            return replace
        output = original(*args, **kwargs)
        recording.activations.append(output)
        return output if probe is None else output + probe(output)

    return call


def _softmax_input(original, owner, recording):
    def softmax(inputs, *args, **kwargs):
        if threading.get_ident() == owner:
            recording.logits.append(inputs)
        return original(inputs, *args, **kwargs)

    return softmax


@contextlib.contextmanager
def capture(layer=None, softmax=None, probe=None, replace=None):
    """Record (and probe or replace) ``layer``'s output while this thread calls the model.

    Args:
        layer: the layer to read, or ``None`` to record the logits only.
        softmax: ``find_softmax(model)``: whose input to record as the logits, or
            ``None``. Defaults to ``None``.
        probe: ``probe(activation) -> zero tensor`` added to the layer's output (the
            backend's probe), or ``None``. Defaults to ``None``.
        replace: a tensor for the layer to return instead of its own output, or
            ``None``. Defaults to ``None``.

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
        patches.append((layer, "call", lambda original: _layer_call(original, owner, recording, probe, replace)))
    if softmax is not None:
        obj, name = softmax
        patches.append((obj, name, lambda original: _softmax_input(original, owner, recording)))
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
            yield recording
        finally:
            for obj, name, had, old in reversed(saved):
                if had:
                    object.__setattr__(obj, name, old)
                else:
                    object.__delattr__(obj, name)
