"""The JAX adapter: ``jax.jit`` over ``stateless_call``, and ``jax.vjp``."""

from __future__ import annotations

import inspect
import weakref

import jax
import jax.numpy as jnp
import numpy as np


#: ``jax.jit`` compiles once per set of argument shapes (see :mod:`gradcam.backend`).
compiles_per_shape = True
#: XLA drops what a compiled function computes but does not use.
prunes_unused = True


def _takes_training(model) -> bool:
    parameters = inspect.signature(model.call).parameters.values()
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)


def compile(model, fn, signature):
    """Compile ``fn(call, *args)`` with ``jax.jit`` as a pure function of the weights.

    The model's trainable and non-trainable variables are arguments of the compiled
    function (``model.stateless_call``), read at every call: weights set after compiling
    are used, and the compiled code holds no copy of them. ``jax.jit`` compiles once per
    set of argument shapes.

    Args:
        model: the Keras model that ``call`` runs; held weakly.
        fn: the computation, written with ``keras.ops``.
        signature: unused (JAX traces on the arguments' shapes).

    Returns:
        A function of ``*args`` (numpy or JAX arrays) returning ``fn``'s arrays.
    """
    del signature
    model_ref = weakref.ref(model)
    kwargs = {"training": False} if _takes_training(model) else {}

    def pure(trainable, non_trainable, *args):
        def call(x):
            outputs, _ = model_ref().stateless_call(trainable, non_trainable, x, **kwargs)
            return outputs

        return fn(call, *args)

    jitted = jax.jit(pure)

    def run(*args):
        model = model_ref()
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        return jitted(trainable, non_trainable, *args)

    return run


def compile_function(fn, signature):
    """Compile ``fn(*args)``, a computation of arrays alone (no model), with ``jax.jit``.

    Args:
        fn: the computation, written with ``keras.ops``.
        signature: unused (JAX compiles once per set of argument shapes).

    Returns:
        A function of ``*args`` (numpy or JAX arrays) returning ``fn``'s arrays.
    """
    del signature
    return jax.jit(fn)


def fused(fn):
    """``fn`` as it is: ``jax.jit`` compiles the whole computation with XLA, which fuses
    its elementwise steps and reductions already.

    Args:
        fn: a computation of arrays written with ``keras.ops``.

    Returns:
        ``fn``.
    """
    return fn


def traced(tensor) -> bool:
    """Whether ``tensor`` is a tracer (inside ``jax.jit``, ``jax.grad``...) rather than a
    concrete array."""
    return isinstance(tensor, jax.core.Tracer)


def on_accelerator() -> bool:
    """Whether JAX's default device is a GPU or TPU."""
    return jax.default_backend() != "cpu"


def probe_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to the zero probe.

    The probe is the argument ``jax.vjp`` differentiates, so its shape must be known
    first: one abstract evaluation of ``forward`` (``jax.eval_shape``, no computation)
    reads the activation's shape. Then one forward pass and ``K`` backward passes,
    vectorised with ``jax.vmap`` when ``K > 1``.

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is static under ``jax.jit``).
        differentiable: unused: ``jax.vjp`` composes with a caller's ``jax.grad``, so the
            gradients can always be differentiated again. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``; ``gradients`` is ``(K,) + activation.shape`` (zeros when the
        totals do not depend on the probe).
    """
    del many, differentiable
    found = []

    def measure(activation):
        found.append(jax.ShapeDtypeStruct(activation.shape, activation.dtype))
        return jnp.zeros_like(activation)

    jax.eval_shape(lambda: forward(measure))
    zero = jnp.zeros(found[0].shape, found[0].dtype)
    totals, pullback, aux = jax.vjp(lambda p: forward(lambda activation: p), zero, has_aux=True)
    count = totals.shape[0]
    if count == 1:
        (gradient,) = pullback(jnp.ones_like(totals))
        return gradient[None], aux
    (gradients,) = jax.vmap(pullback)(jnp.eye(count, dtype=totals.dtype))
    return gradients, aux


def tap_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to every tensor it taps.

    Each tapped tensor gets a zero probe of its own (``jax.vjp`` differentiates with
    respect to its arguments; XLA drops the additions of zeros), their shapes read by one
    abstract evaluation of ``forward``, as :func:`probe_gradients` does.

    Args:
        forward: ``forward(tap) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is static under ``jax.jit``).
        differentiable: unused, as for :func:`probe_gradients`. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``; ``gradients`` is a list, one ``(K,) + tensor.shape`` per
        call of ``tap``, in call order (zeros for a tensor that the totals do not depend
        on).
    """
    del many, differentiable
    found = []

    def measure(tensor):
        found.append(jax.ShapeDtypeStruct(tensor.shape, tensor.dtype))
        return tensor

    jax.eval_shape(lambda: forward(measure))

    def run(probes):
        remaining = iter(probes)
        return forward(lambda tensor: tensor + next(remaining))

    zeros = [jnp.zeros(each.shape, each.dtype) for each in found]
    totals, pullback, aux = jax.vjp(run, zeros, has_aux=True)
    count = totals.shape[0]
    if count == 1:
        (gradients,) = pullback(jnp.ones_like(totals))
        return [gradient[None] for gradient in gradients], aux
    (gradients,) = jax.vmap(pullback)(jnp.eye(count, dtype=totals.dtype))
    return list(gradients), aux


def probe_hessian_products(forward, many):
    """Gradients and Hessian-vector products of ``forward``'s ``(K,)`` totals at the probe.

    Forward over reverse: the gradients ``G = d y / dA`` (as :func:`probe_gradients`)
    are computed at the probe ``p + s A`` (``A`` the activation, held constant), and
    ``jax.jvp`` differentiates them with respect to ``s`` at ``s = 0``: ``H A``, the
    Hessian of ``y`` with respect to the layer's output times that output.

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: unused (``K`` is static under ``jax.jit``).

    Returns:
        ``(gradients, products, aux)``; ``gradients`` and ``products`` are ``(K,) +
        activation.shape`` (zeros where the totals do not depend on the probe).
    """

    def gradients_at(scale):
        def shifted(activation, probe):
            return (probe + scale * jax.lax.stop_gradient(activation)).astype(activation.dtype)

        return probe_gradients(lambda probe: forward(lambda activation: shifted(activation, probe(activation))), many)

    gradients, products, aux = jax.jvp(gradients_at, (jnp.float32(0),), (jnp.float32(1),), has_aux=True)
    return gradients, products, aux


def to_numpy(array) -> np.ndarray:
    """An array's value as a numpy array."""
    return np.asarray(array)


def fetch(tensors) -> list[np.ndarray]:
    """Several tensors' values as numpy arrays, in their order."""
    return list(jax.device_get(list(tensors)))
