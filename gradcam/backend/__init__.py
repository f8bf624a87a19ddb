"""The backend adapters: the only code that knows which Keras backend runs.

Keras 3 runs a model on TensorFlow, JAX or PyTorch, chosen by ``KERAS_BACKEND`` before
Keras is imported. Everything in gradcam is written with ``keras.ops`` except the steps that each
backend does its own way, and that an adapter module provides:

``compile(model, fn, signature)``
    Turn ``fn(call, *args)``, a computation written with ``keras.ops`` in which
    ``call(x)`` runs the model in inference mode, into a function of ``*args`` that
    returns backend tensors. TensorFlow traces it once with ``tf.function`` and the
    ``signature`` (``(shape, dtype)`` per argument, ``None`` for a size that varies); JAX
    compiles it with ``jax.jit`` as a pure function of the model's variables
    (``model.stateless_call``), so that weights are arguments, not constants baked into
    the compiled code; PyTorch runs it eagerly under ``torch.no_grad()``. The compiled
    function holds the model weakly.

``compile_function(fn, signature)``
    The same for ``fn(*args)``, a computation of tensors alone that runs no model (ROAD's
    iterative imputation, :func:`gradcam.metrics.remove_and_debias.impute_iteratively`).

``compiles_per_shape``
    ``True`` when the compiled functions are compiled again for each new shape of their
    arguments (JAX: ``jax.jit`` specialises on shapes), ``False`` when one compiled
    function takes any batch size (TensorFlow's ``None`` in the signature; PyTorch runs
    eagerly). The engine pads a run's last partial batch to a size already compiled only
    where it is ``True``.

``prunes_unused``
    ``True`` when what a computation computes but does not use is dropped before it runs
    (TensorFlow's and JAX's compilers), ``False`` when everything runs as it is called
    (PyTorch, eagerly). Where it is ``False``, the methods that run the model again on
    perturbed activations run only the part of the model after the layer
    (:mod:`gradcam.methods.perturbation`).

``fused(fn)``
    ``fn``, a computation of tensors written with ``keras.ops`` called inside a compiled
    one, compiled so that its elementwise steps and reductions run as a few loops over
    memory: TensorFlow compiles it with XLA (``jit_compile``), which a ``tf.function``
    alone does not do, and on the CPU runs it on one row of its first argument at a time
    (a row's second loop finds it in the cache; the result's static shape may be unknown);
    JAX returns it as it is (``jax.jit`` compiles everything with XLA already), as does
    PyTorch (eager).

``traced(tensor)``
    Whether ``tensor`` is a symbolic value being traced (inside ``tf.function`` or
    ``jax.jit``), whose value cannot be read, rather than a concrete one.

``on_accelerator()``
    Whether Keras places new tensors on a GPU or another accelerator (rather than the CPU).

``probe_gradients(forward, many, differentiable=False)``
    The gradients of ``K`` scores with respect to a layer's activations, by way of a zero
    probe added to them. ``forward(probe)`` runs the model and returns ``(totals, aux)``:
    ``totals`` is a ``(K,)`` tensor of summed target scores, and ``probe(activation)`` is
    called by the patched layer with its output and returns the zero tensor that the layer
    adds to it; since ``d(A + p)/dp = 1``, the gradient with respect to ``p`` at ``p = 0``
    is the gradient with respect to ``A``. Returns ``(gradients, aux)``: ``gradients`` is
    ``(K,) + activation.shape``, or ``None`` where the backend can tell that the totals do
    not depend on the probe (TensorFlow, PyTorch; JAX returns zeros). ``many`` is
    ``False`` when ``K`` is known to be 1, which TensorFlow needs to know when it traces.
    ``differentiable=True`` is for a caller that differentiates the gradients again
    (a training loss on the maps); JAX ignores it.

``tap_gradients(forward, many, differentiable=False)``
    The gradients of ``K`` scores with respect to several tensors of one forward pass
    (FullGrad's input and every layer with a bias). ``forward(tap)`` runs the model and
    returns ``(totals, aux)``; ``tap(tensor)`` is called with each tensor whose gradient
    is wanted and returns the tensor to go on with, of the same values: the tensor
    itself where the backend can differentiate with respect to it as it is (TensorFlow's
    float32 tensors, watched by the tape; PyTorch's tensors that record a graph), else
    the tensor plus a zero probe of its own (JAX). Returns ``(gradients, aux)``:
    ``gradients`` is a list, one ``(K,) + tensor.shape`` per call of ``tap`` in call
    order, zeros for a tensor the totals do not depend on. No copy of the gradients is
    made (one joint probe would be split in the forward pass and its gradient
    concatenated in the backward pass).

``probe_hessian_products(forward, many)``
    As ``probe_gradients``, and also each target's Hessian-vector product ``H A``: the
    derivative of the gradient with respect to the probe in the direction of the
    layer's activation ``A`` (Shapley-CAM's second-order term). Returns ``(gradients,
    products, aux)``, both ``(K,) + activation.shape``; ``products`` are zeros where the
    gradient does not depend on the probe. TensorFlow nests two tapes, JAX runs
    ``jax.jvp`` over the ``jax.vjp`` of ``probe_gradients``, PyTorch differentiates the
    gradient again (``create_graph=True``).

``to_numpy(tensor)``
    A backend tensor as a numpy array (PyTorch's ``__array__`` lacks numpy 2's ``copy``
    argument, so ``keras.ops.convert_to_numpy`` warns on every call there).

``fetch(tensors)``
    Several tensors as numpy arrays, in one list. JAX starts every copy from the device
    before waiting for the first (``jax.device_get``): on a GPU each copy waits a fraction
    of a millisecond, and an engine call fetches five arrays.

A new backend is one more module with these functions and a line in ``_MODULES``.
"""

from __future__ import annotations

import importlib

import keras

_MODULES = {
    "tensorflow": "gradcam.backend.tensorflow",
    "jax": "gradcam.backend.jax",
    "torch": "gradcam.backend.torch",
}


def current():
    """The adapter module of the backend Keras runs on (``keras.backend.backend()``).

    Returns:
        The module ``gradcam.backend.tensorflow``, ``gradcam.backend.jax`` or
        ``gradcam.backend.torch``.

    Raises:
        RuntimeError: Keras runs on another backend (e.g. ``numpy``), which cannot
            differentiate.
    """
    name = keras.backend.backend()
    if name not in _MODULES:
        supported = ", ".join(map(repr, _MODULES))
        raise RuntimeError(
            f"gradcam runs on the Keras backends {supported}; Keras runs on {name!r}. "
            "Set the KERAS_BACKEND environment variable before importing Keras."
        )
    return importlib.import_module(_MODULES[name])
