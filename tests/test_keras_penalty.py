"""gradcam.keras.CAMPenalty: the share of map mass outside a mask, by hand, by finite
differences and in a few steps of training, on every backend.

The tiny classifier of ``helpers.tiny`` on ``X = arange(16)`` has the class-0 logit map
``M = [[0, 0.2], [0.8, 1]]`` and an all-zero class-1 map. Resized bilinearly (half-pixel
centres, edges clamped) to the 4x4 image, each axis mixes the map's two rows (columns) with
weights ``[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]``::

    U = [[0.0, 0.05, 0.15, 0.2],
         [0.2, 0.25, 0.35, 0.4],
         [0.6, 0.65, 0.75, 0.8],
         [0.8, 0.85, 0.95, 1.0]]      sum 8

Its mass in the top-left 2x2 block is 0.5 (share outside 7.5 / 8 = 0.9375), in the
bottom-right block 3.5 (share outside 4.5 / 8 = 0.5625).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.tiny import X, make_functional
from helpers.training import small_classifier, value_and_gradients

import gradcam
from gradcam.keras import CAMPenalty

TOP_LEFT = np.zeros((4, 4), np.float32)
TOP_LEFT[:2, :2] = 1
BOTTOM_RIGHT = TOP_LEFT[::-1, ::-1].copy()
X2 = np.concatenate([X, X])
MASKS = np.stack([TOP_LEFT, BOTTOM_RIGHT])


def value(tensor):
    return float(keras.ops.convert_to_numpy(keras.ops.stop_gradient(tensor)))


def test_the_penalty_equals_the_hand_computed_share_outside_the_masks():
    model = make_functional()
    assert value(CAMPenalty()(model, X, TOP_LEFT[None], targets=[0])) == pytest.approx(0.9375, abs=1e-5)
    assert value(CAMPenalty()(model, X, BOTTOM_RIGHT[None], targets=[0])) == pytest.approx(0.5625, abs=1e-5)
    # the mean over the images, times the weight: 2 * (0.9375 + 0.5625) / 2
    assert value(CAMPenalty(weight=2)(model, X2, MASKS, targets=[0])) == pytest.approx(1.5, abs=1e-5)
    # soft masks: 0.5 everywhere leaves half the mass outside
    assert value(CAMPenalty()(model, X, np.full((1, 4, 4), 0.5, np.float32), targets=[0])) == pytest.approx(0.5)


def test_an_empty_map_has_no_mass_outside():
    model = make_functional()  # class 1's map is all zero: its share is 0, not NaN
    assert value(CAMPenalty()(model, X, TOP_LEFT[None], targets=[1])) == 0.0
    assert value(CAMPenalty()(model, X, TOP_LEFT[None], targets=[0, 1])) == pytest.approx(0.9375 / 2, abs=1e-5)
    _, gradients = value_and_gradients(model, lambda m: CAMPenalty()(m, X, TOP_LEFT[None], targets=[1]))
    assert all(np.isfinite(g).all() for g in gradients)


def test_masks_may_be_backend_tensors():
    penalty = CAMPenalty()(make_functional(), keras.ops.convert_to_tensor(X2), keras.ops.convert_to_tensor(MASKS), [0])
    assert value(penalty) == pytest.approx(0.75, abs=1e-5)


RNG = np.random.default_rng(0)
SMALL_X = RNG.uniform(0, 1, (2, 6, 6, 1)).astype(np.float32)
SMALL_MASKS = np.zeros((2, 6, 6), np.float32)
SMALL_MASKS[0, :3, :3] = 1
SMALL_MASKS[1, 2:, 3:] = 1


@pytest.mark.parametrize("index, position", [(0, (0, 0, 0, 2)), (0, (0, 1, 0, 0)), (1, (1,)), (2, (1, 1))],
                         ids=["conv-kernel-a", "conv-kernel-b", "conv-bias", "dense"])
def test_gradient_of_the_penalty_matches_finite_differences(index, position):
    model = small_classifier()
    penalty = CAMPenalty(weight=10)

    def loss(m):
        return penalty(m, SMALL_X, SMALL_MASKS, targets=[0, 1])

    _, gradients = value_and_gradients(model, loss)
    variable = model.trainable_variables[index]
    original, step, losses = np.array(variable.numpy()), 1e-3, []
    for sign in (1, -1):
        moved = original.copy()
        moved[position] += sign * step
        variable.assign(moved)
        losses.append(value(loss(model)))
    variable.assign(original)
    expected = (losses[0] - losses[1]) / (2 * step)
    assert abs(expected) > 1e-2  # the penalty does depend on this weight
    assert abs(gradients[index][position] - expected) <= 2e-2 * abs(expected) + 2e-3, (gradients[index][position],
                                                                                        expected)


def test_a_few_training_steps_lower_the_penalty():
    model = small_classifier()
    penalty = CAMPenalty()

    def loss(m):
        return penalty(m, SMALL_X, SMALL_MASKS, targets=[0])

    values = []
    for _ in range(8):  # plain gradient descent on the penalty alone
        current, gradients = value_and_gradients(model, loss)
        values.append(current)
        for variable, gradient in zip(model.trainable_variables, gradients):
            variable.assign(np.asarray(variable.numpy()) - 5.0 * gradient)
    values.append(value(loss(model)))
    assert all(b < a for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0] - 0.05, values
    # the mass moved into the masks: the maps are not emptied (an empty map counts 0)
    heat = keras.ops.convert_to_numpy(keras.ops.stop_gradient(gradcam.maps(model, SMALL_X, [0])))
    assert heat.reshape(2, -1).max(axis=1).min() == pytest.approx(1.0)


@pytest.mark.parametrize("masks, shape", [
    (np.zeros((2, 4, 4), np.float32), r"\(2, 4, 4\)"),
    (np.zeros((1, 4, 4, 1), np.float32), r"\(1, 4, 4, 1\)"),
    (np.zeros((1, 2, 2), np.float32), r"\(1, 2, 2\)"),
], ids=["batch", "rank", "size"])
def test_masks_of_the_wrong_shape(masks, shape):
    with pytest.raises(ValueError, match=rf"masks must have shape \(N, H, W\) = \(1, 4, 4\).*x has shape "
                                         rf"\(1, 4, 4, 1\).*got masks of shape {shape}"):
        CAMPenalty()(make_functional(), X, masks, [0])


def test_masks_outside_zero_one():
    with pytest.raises(ValueError, match=r"masks' values must lie in \[0, 1\]; got values from 0.0 to 255.0"):
        CAMPenalty()(make_functional(), X, TOP_LEFT[None] * 255, [0])


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_a_perturbation_method_is_refused(method):
    with pytest.raises(TypeError, match=rf"CAMPenalty needs differentiable maps; the {method} method scores "
                                        r"perturbations.*Use a gradient-based method"):
        CAMPenalty(method=method)


@pytest.mark.parametrize("weight", [-1, float("nan"), float("inf"), "1", True])
def test_a_bad_weight(weight):
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0; got"):
        CAMPenalty(weight=weight)


def test_an_unknown_method():
    with pytest.raises(ValueError, match=r"Unknown method 'gradkam'"):
        CAMPenalty(method="gradkam")


def cross_entropy(labels, predictions):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, predictions))


class GuidedModel(keras.Model):
    """A Functional classifier whose training step adds the penalty on class 0's maps to
    the cross-entropy: the pattern of :class:`CAMPenalty`'s docstring, per backend. The
    batches are ``((images, masks), labels)``."""

    penalty = None
    targets = (0,)

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            return self._jax_train_step(*args)
        (x, masks), y, _ = keras.utils.unpack_x_y_sample_weight(args[0])
        variables = self.trainable_variables
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                penalty = self.penalty(self, x, masks, self.targets)
                loss = cross_entropy(y, self(x, training=True)) + penalty
            self.optimizer.apply(tape.gradient(loss, variables), variables)
        else:
            self.zero_grad()
            penalty = self.penalty(self, x, masks, self.targets)
            loss = cross_entropy(y, self(x, training=True)) + penalty
            loss.backward()
            self.optimizer.apply([v.value.grad for v in variables], variables)
        return {"loss": loss, "penalty": penalty}

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_variables, metrics_variables = state
        (x, masks), y, _ = keras.utils.unpack_x_y_sample_weight(data)

        def loss_of(values):
            predictions, _ = self.stateless_call(values, non_trainable, x, training=True)
            loss = cross_entropy(y, predictions)
            mapping = [*zip(self.trainable_variables, values), *zip(self.non_trainable_variables, non_trainable)]
            with keras.StatelessScope(state_mapping=mapping):
                penalty = self.penalty(self, x, masks, self.targets)
            return loss + penalty, penalty

        (loss, penalty), gradients = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        trainable, optimizer_variables = self.optimizer.stateless_apply(optimizer_variables, gradients, trainable)
        return {"loss": loss, "penalty": penalty}, (trainable, non_trainable, optimizer_variables, metrics_variables)


def guided_model(weight, targets=(0,), learning_rate=1.0):
    base = small_classifier()
    model = GuidedModel(base.inputs, base.outputs, name="guided")
    model.set_weights(base.get_weights())
    model.penalty, model.targets = CAMPenalty(weight=weight), targets
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))  # the loss is the training step's own
    return model


def test_the_penalty_in_a_compiled_train_step_of_model_fit():
    x = np.concatenate([SMALL_X] * 4)
    masks = np.concatenate([SMALL_MASKS] * 4)
    labels = np.zeros(len(x), np.int32)
    penalties = {}
    for weight in (0.0, 20.0):
        model = guided_model(weight)
        history = model.fit((x, masks), labels, batch_size=4, epochs=8, verbose=0, shuffle=False)
        logged = history.history
        assert np.isfinite(logged["loss"]).all() and min(logged["loss"]) > 0, logged
        if weight:  # the steps' own (weighted) penalty, logged by fit, went down
            assert logged["penalty"][-1] < logged["penalty"][0] - 1.0, logged
        penalties[weight] = value(CAMPenalty()(model, x, masks, [0]))
    before = value(CAMPenalty()(small_classifier(), x, masks, [0]))
    # with the penalty, training moves the maps into the masks; without, it does not as much
    assert penalties[20.0] < before - 0.05 and penalties[20.0] < penalties[0.0] - 0.05, (before, penalties)


@pytest.mark.parametrize("targets", [None, (0, 1)], ids=["top", "shared"])
def test_the_penalty_in_model_fit_with_a_partial_last_batch(targets):
    # 10 images in batches of 4: TensorFlow traces the step for batches of unknown size,
    # and targets shared by the batch are broadcast over it
    x, masks = np.concatenate([SMALL_X] * 5), np.concatenate([SMALL_MASKS] * 5)
    model = guided_model(1.0, targets, learning_rate=0.0)  # weights unchanged: the logged value is checkable
    history = model.fit((x, masks), np.zeros(10, np.int32), batch_size=4, epochs=1, verbose=0, shuffle=False)
    last_batch = value(CAMPenalty()(model, x[8:], masks[8:], targets))
    assert history.history["penalty"][-1] == pytest.approx(last_batch, abs=1e-5)
    assert 0.1 < last_batch < 0.9
