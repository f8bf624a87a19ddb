"""gradcam.maps: differentiable maps, checked against finite differences on every backend.

A small classifier (6x6 one-channel inputs, a ReLU convolution, global average pooling, a
softmax Dense, fixed random weights) and a loss on its Grad-CAM maps, ``sum(maps * MASK)``
(a penalty on attention where ``MASK`` is large). The gradient of that loss with respect
to a weight of the convolution (before the explained layer's output: the activations and
their gradients both depend on it) and of the Dense layer (after it: only the gradients
do) must match central finite differences of the loss.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.training import small_classifier

import gradcam

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
X = RNG.uniform(0, 1, (2, 6, 6, 1)).astype(np.float32)
MASK = RNG.uniform(0, 1, (6, 6)).astype(np.float32)


def map_loss(model, targets):
    maps = gradcam.maps(model, keras.ops.convert_to_tensor(X), targets)
    return keras.ops.sum(keras.ops.multiply(maps, MASK))


def loss_gradient(model, targets, index):
    """The loss and its gradient with respect to ``model.trainable_variables[index]``,
    the way a training step on this backend takes it."""
    variables = model.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = map_loss(model, targets)
        return float(loss), np.asarray(tape.gradient(loss, variables[index].value))
    if BACKEND == "torch":
        import torch

        loss = map_loss(model, targets)
        (gradient,) = torch.autograd.grad(loss, variables[index].value)
        return float(loss), gradient.detach().cpu().numpy()
    import jax

    def loss_of(values):  # a stateless training step's loss: the weights are arguments
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return map_loss(model, targets)

    loss, gradients = jax.value_and_grad(loss_of)([v.value for v in variables])
    return float(loss), np.asarray(gradients[index])


def finite_difference(model, targets, index, position, step=1e-3):
    variable = model.trainable_variables[index]
    value = np.array(variable.numpy())
    losses = []
    for sign in (1, -1):
        moved = value.copy()
        moved[position] += sign * step
        variable.assign(moved)
        losses.append(float(keras.ops.convert_to_numpy(keras.ops.stop_gradient(map_loss(model, targets)))))
    variable.assign(value)
    return (losses[0] - losses[1]) / (2 * step)


@pytest.mark.parametrize(
    "index, position",
    [(0, (1, 1, 0, 0)), (0, (0, 2, 0, 2)), (1, (1,)), (2, (0, 0)), (2, (2, 0))],
    ids=["conv-kernel-a", "conv-kernel-b", "conv-bias", "dense-a", "dense-b"],
)
@pytest.mark.parametrize("targets", [[0], [0, 1]], ids=["one-target", "two-targets"])
def test_gradient_of_a_map_loss_matches_finite_differences(index, position, targets):
    model = small_classifier()
    loss, gradient = loss_gradient(model, targets, index)
    expected = finite_difference(model, targets, index, position)
    assert abs(gradient[position] - expected) <= 2e-2 * abs(expected) + 2e-3, (gradient[position], expected)
    assert abs(expected) > 1e-2  # the loss does depend on this weight


def test_differentiable_maps_equal_the_engines_maps():
    model = small_classifier()
    expected = gradcam.GradCAM(model).heatmaps(X, targets=[0, 1])
    maps = keras.ops.convert_to_numpy(keras.ops.stop_gradient(gradcam.maps(model, X, [0, 1])))
    assert maps.dtype == np.float32 and maps.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    assert maps[:, 0].max() == pytest.approx(1.0)  # not empty: the check above means something


def test_a_perturbation_method_cannot_be_differentiated():
    with pytest.raises(TypeError, match=r"The scorecam method scores perturbations of the inputs, which cannot be "
                                        r"differentiated; differentiable maps need a gradient-based method"):
        gradcam.maps(small_classifier(), X, [0], method="scorecam")


def test_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expects images of shape \(6, 6, 1\).*got a batch of shape \(2, 5, 6, 1\)"):
        gradcam.maps(small_classifier(), X[:, :5], [0])


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch runs a training step eagerly")
def test_gradients_inside_a_compiled_training_step_equal_the_eager_ones():
    model = small_classifier()
    variables = model.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def step(x):
            with tf.GradientTape() as tape:
                loss = keras.ops.sum(keras.ops.multiply(gradcam.maps(model, x, [0, 1]), MASK))
            return tape.gradient(loss, [v.value for v in variables[:3]])

        compiled, eager = tf.function(step)(tf.constant(X)), step(tf.constant(X))
    else:
        import jax

        def loss_of(values, x):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return keras.ops.sum(keras.ops.multiply(gradcam.maps(model, x, [0, 1]), MASK))

        values = [v.value for v in variables]
        compiled, eager = jax.jit(jax.grad(loss_of))(values, X)[:3], jax.grad(loss_of)(values, X)[:3]
    for a, b in zip(compiled, eager):
        assert np.abs(np.asarray(b)).max() > 1e-2
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)
