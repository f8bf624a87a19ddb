"""A loss's value and gradients with respect to a model's trainable variables, taken the
way a training step takes them on the current Keras backend."""

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
