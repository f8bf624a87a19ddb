"""Guided ReLUs: the ReLUs of a model, found, and their backward pass made guided.

Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", arXiv 1412.6806) passes a gradient back through a ReLU only where
the ReLU's input was positive (as a ReLU's own gradient does) *and* the gradient coming
back is positive. Each ReLU's output ``y = relu(x)`` is followed by an identity
(:func:`guided`) whose gradient is ``relu(g)``; the ReLU's own gradient then masks by
``x > 0``: together, ``g * (g > 0) * (x > 0)``, the guided rule. The forward pass is
unchanged, and the identity keeps nothing for its backward pass, so guiding costs one
element-wise maximum per ReLU (about 4% of MobileNetV2's forward and backward pass on
TensorFlow).

Which activations are guided (:func:`find_relus`):

* ``keras.layers.ReLU`` with no negative slope and no threshold, with or without a
  ``max_value`` (ReLU6 too: its gradient already stops where ``x >= max_value``; guiding
  it passes the positive gradients where ``0 < x < max_value``);
* ``keras.layers.Activation("relu")`` / ``Activation("relu6")``, and any layer whose
  ``activation=`` is ``"relu"`` or ``"relu6"`` (a ``Conv2D``, ``Dense``...: the ReLU
  fused into the layer);
* not leaky or parametric ReLUs, ELU, GELU, SiLU...: their negative side passes
  gradients by design, and pytorch-grad-cam's ``GuidedBackpropReLUModel`` leaves them as
  they are too (it replaces ``torch.nn.ReLU`` modules alone, so it leaves ReLU6);
* not ``keras.ops.relu`` called inside a layer's own ``call`` (a subclassed layer or
  model): nothing outside the call can reach it.

The identity is ``keras.ops.custom_gradient`` on TensorFlow and JAX; on PyTorch, Keras'
``custom_gradient`` is an ``autograd.Function`` that cannot be batched
(``torch.func.vmap``, which the engine's several targets use), so a PyTorch
``autograd.Function`` of its own, with a vmap rule, takes its place.
:func:`gradcam.capture.capture` installs it (``guided=``) for the calling thread only.
"""

from __future__ import annotations

import keras
from keras import ops

from gradcam.layers import iter_layers

#: The activation functions (``keras.activations``) that are guided when a layer's
#: ``activation`` is one of them.
GUIDED_ACTIVATIONS = ("relu", "relu6")


def _guided_tensor(y):
    """``y``, with the guided gradient (keras.ops.custom_gradient: TensorFlow and JAX)."""

    @ops.custom_gradient
    def identity(value):
        def gradient(*args, upstream=None):
            return ops.relu(args[0] if upstream is None else upstream)

        return value, gradient

    return identity(y)


_TORCH_FUNCTION = None


def _torch_function():
    """A ``torch.autograd.Function`` for the identity, with a vmap rule (made once)."""
    global _TORCH_FUNCTION
    if _TORCH_FUNCTION is None:
        import torch

        class GuidedIdentity(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(value):
                return value.clone()

            @staticmethod
            def setup_context(ctx, inputs, output):
                pass

            @staticmethod
            def backward(ctx, upstream):
                return torch.relu(upstream)

        _TORCH_FUNCTION = GuidedIdentity
    return _TORCH_FUNCTION


def guided(y):
    """The identity on a ReLU's output ``y`` whose gradient is ``relu(g)`` (followed by
    the ReLU's own gradient, the guided rule).

    Args:
        y: a backend tensor, the output of a ReLU.

    Returns:
        ``y``, as a tensor whose gradient passes only positive gradients where ``y > 0``.
    """
    if keras.backend.backend() == "torch":
        return _torch_function().apply(y)
    return _guided_tensor(y)


def _is_guided_activation(function) -> bool:
    return any(function is getattr(keras.activations, name, None) for name in GUIDED_ACTIVATIONS)


def relu_of(layer):
    """``(layer, "call")`` for a ``ReLU`` layer that is a plain ReLU (or ReLU6),
    ``(layer, "activation")`` for a layer whose activation is ``relu`` or ``relu6``
    (``Activation`` layers and fused activations alike); else ``None``.

    Args:
        layer: a Keras layer.

    Returns:
        What :func:`gradcam.capture.capture` wraps to guide the layer's ReLU, or ``None``.
    """
    if isinstance(layer, keras.layers.ReLU):
        plain = not getattr(layer, "negative_slope", 0) and not getattr(layer, "threshold", 0)
        return (layer, "call") if plain else None
    if _is_guided_activation(getattr(layer, "activation", None)):
        return layer, "activation"
    return None


def find_relus(model) -> list:
    """The ReLUs of ``model`` that guided backpropagation guides, in the order of its layers.

    Nested models and the layers that layers hold are searched too.

    Args:
        model: a Keras model.

    Returns:
        A list of ``(layer, attribute)`` pairs (see :func:`relu_of`); empty when the model
        has no ReLU that can be guided.
    """
    found = (relu_of(ref.layer) for ref in iter_layers(model, sublayers=True))
    return list(dict.fromkeys(pair for pair in found if pair is not None))

