"""The TensorFlow adapter: ``tf.function`` and ``tf.GradientTape``."""

from __future__ import annotations

import functools
import weakref

import numpy as np
import tensorflow as tf


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


def on_accelerator() -> bool:
    """Whether TensorFlow places tensors on a GPU (or another accelerator) by default."""
    return any(device.device_type != "CPU" for device in tf.config.list_logical_devices())


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

        def probe(activation):
            # float32 whatever the layer computes in: the Jacobian's loop stores the
            # gradients in an array of the totals' dtype (float32), also under mixed precision
            zero = tf.zeros(tf.shape(activation), tf.float32)
            tape.watch(zero)
            probes.append(zero)
            return tf.cast(zero, activation.dtype)

        totals, aux = forward(probe)
        total = tf.reduce_sum(totals)
        parts = tf.unstack(totals) if differentiable else None
    if differentiable:
        found = [tape.gradient(part, probes[0]) for part in parts]
        gradients = None if found[0] is None else tf.stack(found)
    elif many:
        gradients = tape.jacobian(totals, probes[0], experimental_use_pfor=False)
    else:
        gradient = tape.gradient(total, probes[0])
        gradients = None if gradient is None else gradient[None]
    return gradients, aux


def to_numpy(tensor) -> np.ndarray:
    """A tensor's value as a numpy array."""
    return np.asarray(tensor)


def fetch(tensors) -> list[np.ndarray]:
    """Several tensors' values as numpy arrays, in their order."""
    return [to_numpy(tensor) for tensor in tensors]
