"""Training with maps: a small classifier with fixed weights, and a loss's value and
gradients with respect to a model's trainable variables, taken the way a training step
takes them on the current Keras backend."""

from __future__ import annotations

import keras
import numpy as np


def value_and_gradients(model, loss_of_model):
    """``loss_of_model(model)`` and its gradients with respect to
    ``model.trainable_variables``, as numpy: under a ``tf.GradientTape`` on TensorFlow, by
    ``torch.autograd.grad`` on PyTorch, and by ``jax.value_and_grad`` of the trainable
    values, the model called under ``keras.StatelessScope``, on JAX."""
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of_model(model)
        gradients = tape.gradient(loss, [v.value for v in variables])
    elif backend == "torch":
        import torch

        loss = loss_of_model(model)
        gradients = torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
        gradients = [g if g is None else g.detach().cpu() for g in gradients]
        loss = loss.detach()
    else:
        import jax

        def loss_of(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_of_model(model)

        loss, gradients = jax.value_and_grad(loss_of)([v.value for v in variables])
    gradients = [np.zeros(v.shape, np.float32) if g is None else np.asarray(g) for v, g in zip(variables, gradients)]
    return float(np.asarray(loss)), gradients


def small_classifier():
    """6x6 one-channel images, a ReLU convolution ``conv`` (3 filters, fixed random
    weights), global average pooling, and a softmax Dense ``predictions`` (2 classes,
    hand-set kernel): maps and losses on them that depend on every weight."""
    inputs = keras.Input((6, 6, 1))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))), name="small")
    rng = np.random.default_rng(1)
    conv.set_weights([rng.uniform(-0.2, 1, (3, 3, 1, 3)).astype(np.float32), np.full(3, 0.05, np.float32)])
    dense.set_weights([np.array([[1.0, -1.0], [0.5, 0.5], [-0.3, 1.0]], np.float32), np.zeros(2, np.float32)])
    return model
