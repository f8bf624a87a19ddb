"""The TensorFlow adapter: ``tf.function`` and ``tf.GradientTape``."""

from __future__ import annotations

import functools
import weakref

import numpy as np
import tensorflow as tf


#: One ``tf.function`` trace takes any batch size (see :mod:`gradcam.backend`).
compiles_per_shape = False
#: Grappler drops what a traced function computes but does not use.
prunes_unused = True


def _apply(fn, call, *args):
    return fn(call, *args)


def compile(model, fn, signature):
    """Trace ``fn(call, *args)`` once as a ``tf.function`` with ``signature``.

    Args:
        model: the Keras model that ``call`` runs; held weakly.
        fn: the computation, written with ``keras.ops``.
        signature: ``(shape, dtype)`` per argument; ``None`` marks a size that varies, so
            that calls with any batch size reuse one trace.

    Returns:
        A function of ``*args`` (numpy arrays or tensors) returning ``fn``'s tensors.
    """
    model_ref = weakref.ref(model)

    def call(x):
        return model_ref()(x, training=False)

    return compile_function(functools.partial(_apply, fn, call), signature)


def compile_function(fn, signature):
    """Trace ``fn(*args)``, a computation of tensors alone (no model), once as a
    ``tf.function`` with ``signature``.

    Args:
        fn: the computation, written with ``keras.ops``.
        signature: ``(shape, dtype)`` per argument; ``None`` marks a size that varies.

    Returns:
        A function of ``*args`` (numpy arrays or tensors) returning ``fn``'s tensors.
    """
    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in signature]
    # autograph=False: the computations have no tensor-dependent Python control flow, and
    # converting them would add about half a second to the first call. A partial (which
    # has no __code__) rather than the function itself: TensorFlow counts traces per code
    # object, so a closure would count every engine's one trace together and warn of
    # "retracing".
    return tf.function(functools.partial(fn), input_signature=specs, autograph=False)


def fused(fn):
    """``fn``, a computation of tensors written with ``keras.ops``, compiled by XLA
    (``jit_compile``) where it is called, so that its elementwise steps and reductions
    run as a few loops over memory (a ``tf.function`` alone runs each as a kernel of its
    own, each a pass over its tensors); compiled once per shape of its arguments.

    On the CPU, where XLA's loops run on one thread, ``fn`` runs on one row of its first
    argument at a time (``tf.map_fn``): a second loop over a row finds it in the cache,
    where a whole batch's tensor is far larger than the cache (FullGrad at batch 32 on
    MobileNetV2: 0.5x the time). The calls of several ``fused`` functions in one
    ``tf.function`` run side by side on the CPU's cores, each as soon as its arguments are
    computed.

    Args:
        fn: ``fn(rows, *rest)``: ``rows`` of shape ``(B, ...)``; the result, of ``rows``'
            dtype, has ``B`` rows, row ``b`` computed from row ``b`` of ``rows`` and ``rest``.

    Returns:
        A function of the same arguments, returning ``fn``'s tensor; inside a
        ``tf.function`` its static shape may be unknown (the loop hides it from
        TensorFlow's shape inference), so a caller that needs it reshapes the result.
    """

    def one_row_at_a_time(rows, *rest):
        if on_accelerator():
            return fn(rows, *rest)
        return tf.map_fn(lambda row: fn(row[None], *rest)[0], rows, fn_output_signature=rows.dtype,
                         parallel_iterations=1)

    return tf.function(one_row_at_a_time, jit_compile=True, autograph=False, reduce_retracing=True)


def traced(tensor) -> bool:
    """Whether ``tensor`` is a symbolic tensor of a graph being traced (``tf.function``)
    rather than an eager one."""
    return tf.is_symbolic_tensor(tensor)


def on_accelerator() -> bool:
    """Whether TensorFlow places tensors on a GPU (or another accelerator) by default."""
    return any(device.device_type != "CPU" for device in tf.config.list_logical_devices())


def _probe(tapes, probes, activations):
    """A probe (see :mod:`gradcam.backend`) whose zero tensor ``tapes`` watch; it keeps
    the zero in ``probes`` and the activation, as a float32 constant, in ``activations``."""

    def probe(activation):
        # float32 whatever the layer computes in: the Jacobian's loop stores the
        # gradients in an array of the totals' dtype (float32), also under mixed precision
        zero = tf.zeros(tf.shape(activation), tf.float32)
        for tape in tapes:
            tape.watch(zero)
        probes.append(zero)
        activations.append(tf.stop_gradient(tf.cast(activation, tf.float32)))
        return tf.cast(zero, activation.dtype)

    return probe


def _derivative(tape, target, probe, many):
    """``(K,) + probe.shape``: the Jacobian of ``target`` ``(K,)`` (``many``), or the
    gradient of ``target``, a sum recorded by ``tape``, as ``(1,) + probe.shape``;
    ``None`` when ``target`` does not depend on ``probe``."""
    if many:
        return tape.jacobian(target, probe, experimental_use_pfor=False)
    gradient = tape.gradient(target, probe)
    return None if gradient is None else gradient[None]


def probe_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to the zero probe.

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: ``False`` when ``K`` is 1 (one backward pass); ``True`` for any ``K``
            (a Jacobian, one backward pass per target in a ``tf.while_loop``). Not
            TensorFlow's vectorised Jacobian (``pfor``): on a Vision Transformer it makes
            rank-4 matrix products with a size-1 dimension, which TensorFlow 2.21's oneDNN
            kernels corrupt memory on (the process crashes). It was about 25% faster for
            several targets at MobileNetV2's default layer, and no faster at early layers.
        differentiable: for a caller that differentiates the result again under its own
            ``tf.GradientTape`` (which records these gradients), eagerly: one gradient per
            target from a persistent tape. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``; ``gradients`` is ``(K,) + activation.shape``, or ``None``
        when the totals do not depend on the probe.
    """
    probes = []
    # differentiable: the caller runs eagerly, where a Jacobian needs a persistent tape;
    # one gradient per target, each target's total taken while the tape records
    with tf.GradientTape(persistent=differentiable) as tape:
        totals, aux = forward(_probe([tape], probes, []))
        target = totals if many else tf.reduce_sum(totals)
        parts = tf.unstack(totals) if differentiable else None
    if differentiable:
        found = [tape.gradient(part, probes[0]) for part in parts]
        return (None if found[0] is None else tf.stack(found)), aux
    return _derivative(tape, target, probes[0], many), aux


def tap_gradients(forward, many, differentiable=False):
    """Gradients of ``forward``'s ``(K,)`` totals with respect to every tensor it taps.

    A tapped float32 tensor is watched as it is (no probe is added, so nothing is
    computed in the forward pass and the backward pass's own gradient is returned);
    one of another dtype through a float32 zero probe (as :func:`probe_gradients`).

    Args:
        forward: ``forward(tap) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: as for :func:`probe_gradients`.
        differentiable: as for :func:`probe_gradients`. Defaults to ``False``.

    Returns:
        ``(gradients, aux)``; ``gradients`` is a list, one ``(K,) + tensor.shape`` per
        call of ``tap``, in call order (zeros for a tensor that the totals do not depend
        on).
    """
    sources = []
    zero = tf.UnconnectedGradients.ZERO

    def tap(tensor):
        if tensor.dtype == tf.float32:
            tape.watch(tensor)
            sources.append(tensor)
            return tensor
        probe = tf.zeros(tf.shape(tensor), tf.float32)
        tape.watch(probe)
        sources.append(probe)
        return tensor + tf.cast(probe, tensor.dtype)

    with tf.GradientTape(persistent=differentiable) as tape:
        totals, aux = forward(tap)
        target = totals if many else tf.reduce_sum(totals)
        parts = tf.unstack(totals) if differentiable else None
    if differentiable:
        found = [tape.gradient(part, sources, unconnected_gradients=zero) for part in parts]
        return [tf.stack(each) for each in zip(*found)], aux
    if many:
        return tape.jacobian(target, sources, unconnected_gradients=zero, experimental_use_pfor=False), aux
    return [gradient[None] for gradient in tape.gradient(target, sources, unconnected_gradients=zero)], aux


def probe_hessian_products(forward, many):
    """Gradients and Hessian-vector products of ``forward``'s ``(K,)`` totals at the probe.

    Nested tapes: the inner one records the forward pass for the gradients ``G = d y /
    dA``, the outer one records that backward pass, and the outer gradient of ``G`` in
    the direction of the activation ``A`` (a constant) is ``H A``, the Hessian of ``y``
    with respect to the layer's output times that output.

    Args:
        forward: ``forward(probe) -> (totals, aux)``; see :mod:`gradcam.backend`.
        many: ``False`` when ``K`` is 1 (plain gradients); ``True`` for any ``K``
            (Jacobians, one backward pass per target in a ``tf.while_loop``, as
            :func:`probe_gradients`).

    Returns:
        ``(gradients, products, aux)``; ``gradients`` and ``products`` are ``(K,) +
        activation.shape``; ``gradients`` is ``None`` when the totals do not depend on
        the probe, ``products`` are zeros where the gradients do not depend on it (a
        score linear in the layer's output).
    """
    probes, activations = [], []
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            totals, aux = forward(_probe([inner, outer], probes, activations))
            target = totals if many else tf.reduce_sum(totals)
        gradients = _derivative(inner, target, probes[0], many)
        if gradients is None:
            return None, None, aux
        # (K,): each target's gradient in the direction of the activation (summed when
        # K is 1), computed while the outer tape records
        directional = tf.reduce_sum(gradients * activations[0][None], axis=tf.range(1, tf.rank(gradients)))
        target = directional if many else tf.reduce_sum(directional)
    products = _derivative(outer, target, probes[0], many)
    return gradients, tf.zeros_like(gradients) if products is None else products, aux


def to_numpy(tensor) -> np.ndarray:
    """A tensor's value as a numpy array."""
    return np.asarray(tensor)


def fetch(tensors) -> list[np.ndarray]:
    """Several tensors' values as numpy arrays, in their order."""
    return [to_numpy(tensor) for tensor in tensors]
