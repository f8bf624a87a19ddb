"""Random-CAM: channels weighed at random, a control that a method must beat."""

from __future__ import annotations

import numpy as np
from keras import ops

from gradcam.checks import ArgumentError, attributed_to, check_positive_int
from gradcam.methods.base import Method


class RandomCAM(Method):
    """Random-CAM (pytorch-grad-cam's ``RandomCAM``): a control, not an explanation.

    No gradients. Each channel gets a weight drawn uniformly from [-1, 1], and
    ``L = ReLU(sum_k w_k A_k)``, ``L / max(L)``. A method whose maps score no better than
    these on a metric (:mod:`gradcam.metrics`) has shown nothing on it.

    Seeding: the ``C`` weights are ``numpy.random.RandomState(seed).uniform(-1, 1, C)``,
    drawn once per engine and used for every image and target, so a map depends only on
    the image and the seed, on every backend and batch size. pytorch-grad-cam draws
    ``(N, C)`` weights from numpy's global generator at each call: after
    ``numpy.random.seed(seed)``, its map of one image equals this engine's.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        seed: the seed of the weights, an integer in [0, 2**32). Defaults to ``0``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: ``seed`` is not an integer in [0, 2**32); the model, layer or score
            cannot be explained (see :class:`~gradcam.methods.base.Method`).
    """

    name = "randomcam"
    uses_gradients = False

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, seed: int = 0, *, weak_model: bool = False):
        with attributed_to("seed"):
            seed = check_positive_int(seed, "seed", allow_zero=True)
        if seed >= 2**32:
            raise ArgumentError("seed", f"seed must be an integer in [0, 2**32); got {seed!r}.")
        super().__init__(model, layer, score, class_names, preprocess, reshape, weak_model=weak_model)
        self.seed = seed

    def channel_weights(self, capture):
        channels = capture.activations.shape[-1]
        weights = np.random.RandomState(self.seed).uniform(-1, 1, channels).astype(np.float32)
        # The same weights for each image and target.
        return ops.convert_to_tensor(weights) + ops.zeros_like(ops.transpose(capture.scores))[:, :, None]
