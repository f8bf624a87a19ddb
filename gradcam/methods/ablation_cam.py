"""Ablation-CAM: channels weighed by the score lost when each is set to zero."""

from __future__ import annotations

from keras import ops

from gradcam.methods.perturbation import PerturbationMethod


class AblationCAM(PerturbationMethod):
    """Ablation-CAM (Desai and Ramaswamy, "Ablation-CAM: Visual Explanations for Deep
    Convolutional Network via Gradient-free Localization", WACV 2020).

    No gradients. ``s_k`` is the class score with channel ``k`` of the activations set to
    zero, computed by running the model from the layer onward only, on
    ``perturbation_batch`` ablated copies at once; ``w_k = (y_c - s_k) / y_c``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``.

    Departures: where ``y_c == 0`` the weights are 0 (the map is empty) instead of
    infinite; pytorch-grad-cam sets an ablated channel far below the minimum when
    activations can be negative, this sets it to zero, as the paper does.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        perturbation_batch: how many ablated copies of the activations go through the
            rest of the model at once. Defaults to ``32``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: ``perturbation_batch`` is not a positive integer; the model, layer
            or score cannot be explained (see :class:`~gradcam.methods.base.Method`).
    """

    name = "ablationcam"
    perturbs = "activations"

    def perturbation_count(self, activations_shape):
        return activations_shape[-1]

    def perturb(self, image, activations, index):
        keep = 1 - ops.one_hot(index, activations.shape[-1])  # (B, C): channel index[b] off
        return activations * keep[:, None, None, :]

    def channel_weights(self, capture):
        y = capture.scores[..., None]  # (N, K, 1)
        safe = ops.where(ops.equal(y, 0), ops.ones_like(y), y)
        weights = ops.where(ops.equal(y, 0), ops.zeros_like(y), (y - capture.perturbation_scores) / safe)
        return ops.transpose(weights, (1, 0, 2))
