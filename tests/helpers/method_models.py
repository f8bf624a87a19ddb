"""Tiny fixed-weight models for the methods' hand-computed maps (beside those of :mod:`helpers.tiny`).

``make_flat``: the tiny model's conv (``A0 = [[10, 18], [42, 50]]``, ``A1 = -5``
everywhere, for ``X = arange(16)``), then Flatten and Dense(2, softmax) with no bias, so
that the gradient of class 0's logit is any chosen ``(2, 2, 2)`` array ``G`` (position,
channel) and class 1's is -0.01 everywhere. Logits: ``z0 = sum G A``,
``z1 = -0.01 (120 - 20) = -1``.

``FLAT_GRADIENTS``: ``G0 = [[0.1, 0], [-0.1, 0.2]]`` on channel 0 and
``G1 = [[-0.1, 0], [0, 0.05]]`` on channel 1 (negative where ``A1`` is negative, so that
``G A`` and ``ReLU(G) A`` differ); ``z0 = (1 - 4.2 + 10) + (0.5 - 0.25) = 7.05``.

``make_pointwise``: an input ``(2, 2, C)`` -> a 1x1 convolution with the identity kernel,
named ``conv`` (so its activations ARE the input) -> global average pooling -> Dense(2,
softmax) with a chosen ``(C, 2)`` kernel and no bias.

``make_residual``: the tiny conv, a 1x1 ``block`` convolution added to it by an operation
(``features + block(features)``: no layer outputs the sum), global average pooling and
Dense(2, softmax); returns the model and the sum's symbolic tensor.
"""

from __future__ import annotations

import keras
import numpy as np

from helpers.tiny import CONV_KERNEL, DENSE_KERNEL

FLAT_GRADIENTS = np.stack(
    [np.array([[0.1, 0], [-0.1, 0.2]], np.float32), np.array([[-0.1, 0], [0, 0.05]], np.float32)], axis=-1
)


def make_flat(gradients=FLAT_GRADIENTS):
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))), name="flat")
    conv.set_weights([CONV_KERNEL])
    # Flatten's order is (i, j, channel), as the gradients' array.
    class_0 = np.asarray(gradients, np.float32).reshape(8)
    dense.set_weights([np.stack([class_0, np.full(8, -0.01, np.float32)], axis=-1)])
    return model


def make_pointwise(kernel):
    kernel = np.asarray(kernel, np.float32)
    channels = kernel.shape[0]
    inputs = keras.Input((2, 2, channels))
    conv = keras.layers.Conv2D(channels, 1, use_bias=False, name="conv")
    pool = keras.layers.GlobalAveragePooling2D()
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(pool(conv(inputs))), name="pointwise")
    conv.set_weights([np.eye(channels, dtype=np.float32)[None, None]])
    dense.set_weights([kernel])
    return model


def make_residual():
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    block = keras.layers.Conv2D(2, 1, use_bias=False, name="block")
    features = conv(inputs)
    residual = features + block(features)  # an operation: no layer outputs this tensor
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(pool(residual)), name="residual")
    conv.set_weights([CONV_KERNEL])
    block.set_weights([np.array([[1, 0], [0, 0]], np.float32).reshape(1, 1, 2, 2)])
    dense.set_weights([DENSE_KERNEL])
    return model, residual


def negate_svd(monkeypatch):
    """Make ``keras.ops.svd`` return its singular vectors negated (the other, equally
    valid, sign), for the tests of the sign rules."""
    from keras import ops

    svd = ops.svd

    def negated_svd(x, full_matrices=True, compute_uv=True):
        u, s, vh = svd(x, full_matrices=full_matrices, compute_uv=compute_uv)
        return -u, s, -vh

    monkeypatch.setattr(ops, "svd", negated_svd)
