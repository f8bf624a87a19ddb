"""A penalty on where a model looks: the share of its maps' mass outside an object's mask."""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from gradcam.api import maps
from gradcam.checks import ArgumentError
from gradcam.methods.perturbation import PerturbationMethod
from gradcam.methods.registry import check_method_name, load_method_class


class CAMPenalty:
    """A loss term for training with explanations: ``weight`` times the mean share of the
    maps' mass that lies outside the given masks ("right for the right reasons", guided
    attention).

    ``penalty(model, x, masks, targets)`` computes the method's maps of ``x`` with
    :func:`gradcam.maps` (backend tensors that gradients flow through), resizes them to
    the images' size (bilinear, :func:`keras.ops.image.resize`), and for each image ``n``
    and target ``k`` takes the share of the map ``M`` outside the mask ``m``::

        share[n, k] = sum(M * (1 - m)) / sum(M)          (0 for an all-zero map)
        penalty = weight * mean over n, k of share[n, k]

    The result is a scalar backend tensor whose gradient with respect to the model's
    weights is that of the maps (double backpropagation), so it is added to the model's
    own loss inside a training step of one's own: a ``train_step`` under a
    ``tf.GradientTape`` on TensorFlow, by autograd on PyTorch, and on JAX in the stateless
    ``train_step`` (the model called under ``keras.StatelessScope`` with the trainable
    variables being differentiated), eagerly or compiled. Gradient-based methods only: the
    maps of those that score perturbations cannot be differentiated.

    Args:
        weight: the factor of the mean share outside the masks, a finite number >= 0.
            Defaults to ``1.0``.
        layer: the layer to explain, as for :class:`~gradcam.GradCAM`. Defaults to
            ``None``.
        method: a name of :data:`gradcam.METHODS` whose maps come from one forward and
            backward pass (not ``"scorecam"`` or ``"ablationcam"``). Defaults to
            ``"gradcam"``.
        score: as for :class:`~gradcam.GradCAM`. Defaults to ``"auto"``.

    Raises:
        TypeError: a method that scores perturbations.
        ValueError: an unknown method; ``weight`` negative, infinite or not a number.

    Example:
        A TensorFlow model whose compiled training step (``model.fit``) adds the penalty on
        class 0's maps to its loss; the batches are ``((images, masks), labels)``. The
        targets are fixed or ``None`` (each image's top prediction), as the step is traced
        once::

            penalty = gradcam.keras.CAMPenalty(weight=0.5)

            class GuidedModel(keras.Model):
                def train_step(self, data):
                    (x, masks), y = data
                    with tf.GradientTape() as tape:
                        attention = penalty(self, x, masks, targets=[0])
                        loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True)) + attention
                    variables = self.trainable_variables
                    self.optimizer.apply(tape.gradient(loss, variables), variables)
                    return {"loss": loss, "penalty": attention}

        On PyTorch the step computes the same ``loss``, then ``self.zero_grad()``,
        ``loss.backward()`` and ``self.optimizer.apply([v.value.grad for v in variables],
        variables)``. On JAX, ``train_step(self, state, data)`` differentiates a function
        of the trainable values with ``jax.value_and_grad``, in which the model runs by
        ``self.stateless_call`` and the penalty under ``keras.StatelessScope(
        state_mapping=...)`` that maps the model's variables to those values. On both,
        compile the model with its optimizer alone and compute the task's loss in the
        step: ``fit`` builds a compiled loss by calling the model on the batches' inputs,
        here the pair of images and masks.

        The penalty of an all-zero map is 0, so the penalty alone can also be lowered by
        emptying the maps: add it to the task's loss rather than training on it alone.

        A class's map shows the evidence *for* that class only: evidence *against* the
        other classes is cut away by the map's ReLU, so a model whose class maps are kept
        on the object may go on using what lies outside it as evidence against the other
        classes. Penalising the maps of the contrasts the softmax decides on closes that
        way, for two classes ``targets=[Contrast(0, [1]), Contrast(1, [0])]``
        (:class:`gradcam.targets.Contrast`); the tutorial "Training with explanations"
        does so.
    """

    def __init__(self, weight: float = 1.0, layer=None, method: str = "gradcam", score: str = "auto"):
        ok = isinstance(weight, (int, float, np.integer, np.floating)) and not isinstance(weight, bool)
        if not ok or not math.isfinite(weight) or weight < 0:
            raise ArgumentError("weight", f"weight must be a finite number >= 0; got {weight!r}.")
        if issubclass(load_method_class(check_method_name(method)), PerturbationMethod):
            raise TypeError(
                f"CAMPenalty needs differentiable maps; the {method} method scores perturbations, "
                "which cannot be differentiated. Use a gradient-based method, e.g. 'gradcam'."
            )
        self.weight = float(weight)
        self.layer = layer
        self.method = method
        self.score = score

    def __call__(self, model, x, masks, targets=None):
        """The penalty of a batch: ``weight`` times the mean share of map mass outside
        ``masks``.

        Args:
            model: the Keras classifier being trained (see :class:`~gradcam.GradCAM`).
            x: the model's input batch ``(N, H, W, C)``, ready for the model (a backend
                tensor or an array).
            masks: one mask per image, ``(N, H, W)`` at the images' size: 1 on the object
                (where the maps may be), 0 elsewhere, soft values in between (a backend
                tensor or an array).
            targets: the maps' targets, as for :func:`gradcam.maps`: ``None`` (each
                image's top prediction), a class index or name, a list of them, or a 2-D
                integer array with one row per image (an array known when the step is
                traced, not a tensor of labels). Defaults to ``None``.

        Returns:
            A float32 scalar backend tensor.

        Raises:
            ValueError: ``masks`` is not of shape ``(N, H, W)`` for ``x`` of shape ``(N,
                H, W, C)`` (the message names both shapes); an array ``masks`` with values
                outside [0, 1] or NaN; as for :func:`gradcam.maps`.
            TypeError: as for :func:`gradcam.maps`.
        """
        x_shape, mask_shape = tuple(x.shape), tuple(masks.shape)
        expected = x_shape[:3]
        if len(x_shape) != 4 or len(mask_shape) != 3 or any(
                e is not None and m is not None and e != m for e, m in zip(expected, mask_shape)):
            raise ArgumentError(
                "masks",
                f"masks must have shape (N, H, W) = {expected}, one mask per image of x at its size "
                f"(x has shape {x_shape}); got masks of shape {mask_shape}.",
            )
        if isinstance(masks, np.ndarray) and not (np.all(masks >= 0) and np.all(masks <= 1)):
            raise ArgumentError(
                "masks", f"masks' values must lie in [0, 1]; got values from {np.nanmin(masks)} to "
                         f"{np.nanmax(masks)}{' and NaN' if np.isnan(masks).any() else ''}."
            )
        heat = maps(model, x, targets, layer=self.layer, method=self.method, score=self.score)  # (N, K, h, w)
        size = mask_shape[1:] if None not in mask_shape[1:] else tuple(ops.shape(masks)[1:])
        heat = ops.image.resize(ops.transpose(heat, (0, 2, 3, 1)), size, interpolation="bilinear",
                                data_format="channels_last")  # (N, H, W, K)
        outside = ops.expand_dims(1.0 - ops.cast(masks, heat.dtype), -1)
        total = ops.sum(heat, axis=(1, 2))
        # An all-zero map has no mass outside: 0 / 1, with no NaN in the value or its gradient.
        share = ops.sum(heat * outside, axis=(1, 2)) / ops.where(total > 0, total, 1.0)  # (N, K)
        return ops.mean(share) * self.weight
