"""Ablation-CAM: channels weighed by the score lost when each is set to zero."""

from __future__ import annotations

from keras import ops

from gradcam.checks import attributed_to, check_positive_int
from gradcam.methods.perturbation import PerturbationMethod
from gradcam.methods.scorecam import spread_to_channels, top_variance_channels


class AblationCAM(PerturbationMethod):
    """Ablation-CAM (Desai and Ramaswamy, "Ablation-CAM: Visual Explanations for Deep
    Convolutional Network via Gradient-free Localization", WACV 2020).

    No gradients. ``s_k`` is the class score with channel ``k`` of the activations set to
    zero, computed by running the model with the layer's output replaced by
    ``perturbation_batch`` ablated copies at once; ``w_k = (y_c - s_k) / y_c``; then
    ``L = ReLU(sum_k w_k A_k)`` and ``L / max(L)``. The capture, every chunk of ablated
    copies and the map run as one compiled computation per batch; TensorFlow and JAX
    compile away the part of the model before the layer in the ablated passes, PyTorch,
    which runs eagerly, computes it again for each chunk (see
    :mod:`gradcam.methods.perturbation`).

    With ``max_channels=M``, only the ``M`` channels of largest variance over the map are
    ablated and the other channels weigh 0, as Score-CAM's ``max_channels``: ``M`` passes
    through the rest of the model instead of ``C`` (1,280 at EfficientNet-Lite0's last
    layer).

    Departures: where ``y_c == 0`` the weights are 0 (the map is empty) instead of
    infinite; pytorch-grad-cam sets an ablated channel far below the minimum when
    activations can be negative, this sets it to zero, as the paper does.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        perturbation_batch: how many ablated copies of the activations go through the
            rest of the model at once. Defaults to ``32``.
        max_channels: ablate only this many channels, those of largest variance;
            ``None`` ablates every channel. Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: ``perturbation_batch`` or ``max_channels`` is not a positive integer;
            the model, layer or score cannot be explained (see
            :class:`~gradcam.methods.base.Method`).
    """

    name = "ablationcam"
    perturbs = "activations"

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, perturbation_batch: int = 32, max_channels: int | None = None, *,
                 weak_model: bool = False):
        with attributed_to("max_channels"):
            max_channels = check_positive_int(max_channels, "max_channels", allow_none=True)
        super().__init__(model, layer, score, class_names, preprocess, reshape, perturbation_batch,
                         weak_model=weak_model)
        self.max_channels = max_channels

    def perturbation_count(self, activations_shape):
        return min(activations_shape[-1], self.max_channels or activations_shape[-1])

    def perturb(self, image, activations, index):
        channels = top_variance_channels(activations, self.max_channels)
        chosen = index if channels is None else ops.take(channels[0], index)
        keep = 1 - ops.one_hot(chosen, activations.shape[-1])  # (B, C): channel chosen[b] off
        return activations * keep[:, None, None, :]

    def channel_weights(self, capture):
        y = capture.scores[..., None]  # (N, K, 1)
        safe = ops.where(ops.equal(y, 0), ops.ones_like(y), y)
        weights = ops.where(ops.equal(y, 0), ops.zeros_like(y), (y - capture.perturbation_scores) / safe)
        return ops.transpose(spread_to_channels(weights, capture.activations, self.max_channels), (1, 0, 2))
