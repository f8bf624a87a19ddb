"""The PyTorch adapter: eager calls under ``torch.no_grad()``, and ``torch.autograd``."""

from __future__ import annotations

import functools
import weakref

import keras
import numpy as np
import torch


#: Nothing is compiled: PyTorch runs eagerly (see :mod:`gradcam.backend`).
compiles_per_shape = False
#: Everything called runs (see :mod:`gradcam.backend`).
prunes_unused = False


def compile(model, fn, signature):
    """Run ``fn(call, *args)`` eagerly, with no gradient graph recorded.

    PyTorch needs no tracing; the model runs as it is (Keras passes ``training=False``;
    the model's own mode is not changed). Gradients are recorded only inside
    :func:`probe_gradients`, and only from the probe onward.

    Args:
        model: the Keras model that ``call`` runs; held weakly.
        fn: the computation, written with ``keras.ops``.
        signature: unused.

    Returns:
        A function of ``*args`` (numpy arrays or tensors, made tensors on Keras' device)
        returning ``fn``'s tensors, none of which holds a gradient graph.
    """
    model_ref = weakref.ref(model)

    def call(x):
        return model_ref()(x, training=False)

    return compile_function(functools.partial(fn, call), signature)


def _detached(tree):
    if isinstance(tree, torch.Tensor):
        return tree.detach()
    if isinstance(tree, (tuple, list)):
        return type(tree)(_detached(t) for t in tree)
    return tree


def compile_function(fn, signature):
    """Run ``fn(*args)``, a computation of tensors alone (no model), eagerly, with no
    gradient graph recorded.

    Args:
        fn: the computation, written with ``keras.ops``.
        signature: unused.

    Returns:
        A function of ``*args`` (numpy arrays or tensors, made tensors on Keras' device)
        returning ``fn``'s tensors.
    """
    del signature

    def run(*args):
        tensors = [keras.ops.convert_to_tensor(arg) for arg in args]  # on Keras' device
        with torch.no_grad():
            return fn(*tensors)

    return run


def fused(fn):
    """``fn`` as it is: PyTorch runs eagerly, one kernel per operation.

    Args:
        fn: a computation of tensors written with ``keras.ops``.

    Returns:
        ``fn``.
    """
    return fn


def traced(tensor) -> bool:
    """Always ``False``: PyTorch runs eagerly, so every tensor's value can be read."""
    del tensor
    return False


def on_accelerator() -> bool:
    """Whether Keras places PyTorch tensors on a GPU (or another accelerator)."""
    return keras.ops.convert_to_tensor(0.0).device.type != "cpu"


def probe_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to the zero probe.

    The model runs with gradient recording off until the probe: ``probe`` turns it on
    (for this thread), so that only the layers after the explained one record a graph,
    which the backward pass frees. ``K > 1`` uses one batched backward pass
    (``is_grads_batched``). With ``differentiable``, the whole forward pass records a
    graph and the gradients are taken with ``create_graph=True``, one target at a time:
    the gradients, and what is computed from them, can be differentiated again (with
    respect to the weights too).

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is known when the totals are).
        differentiable: keep the graph, as above. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``, detached unless ``differentiable``; ``gradients`` is
        ``(K,) + activation.shape``, or ``None`` when the totals do not depend on the probe.
    """
    del many
    probes = []

    def probe(activation):
        torch.set_grad_enabled(True)
        zero = torch.zeros_like(activation, requires_grad=True)
        probes.append(zero)
        return zero

    if differentiable:
        with torch.enable_grad():  # restores the caller's grad mode on exit
            totals, aux = forward(probe)
            gradients = [
                torch.autograd.grad(total, probes[0], retain_graph=True, create_graph=True, allow_unused=True)[0]
                for total in totals
            ] if totals.requires_grad else [None]
        return (None if gradients[0] is None else torch.stack(gradients)), aux
    with torch.no_grad():  # restores the caller's grad mode on exit
        totals, aux = forward(probe)
        if not totals.requires_grad:
            return None, _detached(aux)
        count = totals.shape[0]
        if count == 1:
            (gradients,) = torch.autograd.grad(totals[0], probes[0], allow_unused=True)
            gradients = None if gradients is None else gradients[None]
        else:
            eye = torch.eye(count, dtype=totals.dtype, device=totals.device)
            (gradients,) = torch.autograd.grad(
                totals, probes[0], grad_outputs=eye, is_grads_batched=True, allow_unused=True
            )
    return gradients, _detached(aux)


def tap_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to every tensor it taps.

    Gradient recording starts at the first tap (as at :func:`probe_gradients`' probe). A
    tapped tensor that already records a graph is differentiated as it is (nothing is
    added to the forward pass); one that does not (the model's input) gets a zero probe.

    Args:
        forward: ``forward(tap) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is known when the totals are).
        differentiable: as for :func:`probe_gradients`. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``, detached unless ``differentiable``; ``gradients`` is a list,
        one ``(K,) + tensor.shape`` per call of ``tap``, in call order (zeros for a
        tensor that the totals do not depend on).
    """
    del many
    sources = []

    def tap(tensor):
        torch.set_grad_enabled(True)
        if tensor.requires_grad:
            sources.append(tensor)
            return tensor
        zero = torch.zeros_like(tensor, requires_grad=True)
        sources.append(zero)
        return tensor + zero

    def filled(gradients, count):  # the zeros of tensors the totals do not depend on
        return [torch.zeros((count,) + tuple(source.shape), dtype=source.dtype, device=source.device)
                if gradient is None else gradient for gradient, source in zip(gradients, sources)]

    if differentiable:
        with torch.enable_grad():  # restores the caller's grad mode on exit
            totals, aux = forward(tap)
            count = totals.shape[0]
            if not totals.requires_grad:
                return filled([None] * len(sources), count), aux
            found = [filled([None if g is None else g[None] for g in torch.autograd.grad(
                total, sources, retain_graph=True, create_graph=True, allow_unused=True)], 1) for total in totals]
        return [torch.cat(each) for each in zip(*found)], aux
    with torch.no_grad():  # restores the caller's grad mode on exit
        totals, aux = forward(tap)
        count = totals.shape[0]
        if not totals.requires_grad:
            gradients = [None] * len(sources)
        elif count == 1:
            gradients = [None if g is None else g[None] for g in torch.autograd.grad(totals[0], sources,
                                                                                      allow_unused=True)]
        else:
            eye = torch.eye(count, dtype=totals.dtype, device=totals.device)
            gradients = torch.autograd.grad(totals, sources, grad_outputs=eye, is_grads_batched=True,
                                            allow_unused=True)
    return filled(gradients, count), _detached(aux)


def probe_hessian_products(forward, many):
    """Gradients and Hessian-vector products of ``forward``'s ``(K,)`` totals at the probe.

    Double backward: each target's gradient ``G = d y / dA`` is computed with its own
    graph (``create_graph=True``), and differentiating it again in the direction of the
    activation ``A`` (a constant) gives ``H A``, the Hessian of ``y`` with respect to
    the layer's output times that output. One pair of backward passes per target.

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is known when the totals are).

    Returns:
        ``(gradients, products, aux)``, detached; ``gradients`` and ``products`` are
        ``(K,) + activation.shape``; ``gradients`` is ``None`` when the totals do not
        depend on the probe, ``products`` are zeros where the gradients do not depend on
        it (a score linear in the layer's output).
    """
    del many
    probes, values = [], []

    def probe(activation):
        torch.set_grad_enabled(True)
        zero = torch.zeros_like(activation, requires_grad=True)
        probes.append(zero)
        values.append(activation.detach())
        return zero

    with torch.no_grad():  # restores the caller's grad mode on exit
        totals, aux = forward(probe)
        if not totals.requires_grad:
            return None, None, _detached(aux)
        gradients, products = [], []
        for k in range(totals.shape[0]):
            (gradient,) = torch.autograd.grad(totals[k], probes[0], create_graph=True, retain_graph=True,
                                              allow_unused=True)
            if gradient is None:
                return None, None, _detached(aux)
            product = None
            if gradient.requires_grad:
                (product,) = torch.autograd.grad(gradient, probes[0], grad_outputs=values[0], retain_graph=True,
                                                 allow_unused=True)
            gradients.append(gradient.detach())
            products.append(torch.zeros_like(gradient) if product is None else product.detach())
    return torch.stack(gradients), torch.stack(products), _detached(aux)


def to_numpy(tensor) -> np.ndarray:
    """A tensor's value as a numpy array (copied to the CPU first if needed)."""
    return tensor.detach().cpu().numpy()


def fetch(tensors) -> list[np.ndarray]:
    """Several tensors' values as numpy arrays, in their order."""
    return [to_numpy(tensor) for tensor in tensors]
