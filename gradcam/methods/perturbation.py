"""The template of methods that score perturbations: :class:`PerturbationMethod`.

A method that weighs what it sees by the model's scores on perturbed copies (Score-CAM's
masked inputs, Ablation-CAM's ablated channels) subclasses :class:`PerturbationMethod`,
sets :attr:`~PerturbationMethod.perturbs` and overrides
:meth:`~PerturbationMethod.perturbation_count`, :meth:`~PerturbationMethod.perturb` and a
hook of :class:`~gradcam.methods.base.Method`. The template runs three compiled
computations per batch: the capture; the scoring, once per chunk of
``perturbation_batch`` perturbations of one image (the last chunk padded by repeating
its last perturbation, so that nothing is compiled again); and the map, whose hook reads
the scores in :attr:`Capture.perturbation_scores <gradcam.methods.base.Capture>`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from keras import ops

from gradcam.capture import capture
from gradcam.checks import attributed_to, check_positive_int
from gradcam.methods.base import Capture, Method
from gradcam.methods.smoothing import augment, deaugment, identity, repeated
from gradcam.targets import Plan, View

#: What a :class:`PerturbationMethod` perturbs: the layer's activations (the model then
#: runs from the layer onward on them) or the model's inputs (the model runs on them).
PERTURBS = ("activations", "inputs")


class PerturbationMethod(Method):
    """A method that scores perturbations: :class:`~gradcam.methods.base.Method`'s
    template, with the targets' scores on perturbed activations or inputs,
    ``(N, K, P)``, in :attr:`Capture.perturbation_scores
    <gradcam.methods.base.Capture>`.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`.
        layer: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        score: as for :class:`~gradcam.methods.base.Method`. Defaults to ``"auto"``.
        class_names: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        preprocess: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        reshape: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        perturbation_batch: how many perturbations go through the model at once.
            Defaults to ``32``.
        weak_model: as for :class:`~gradcam.methods.base.Method`. Defaults to ``False``.

    Raises:
        TypeError: :attr:`perturbs` is not one of ``"activations"``, ``"inputs"``; as for
            :class:`~gradcam.methods.base.Method`.
        ValueError: ``perturbation_batch`` is not a positive integer; as for
            :class:`~gradcam.methods.base.Method`.
    """

    uses_gradients = False
    # the scoring, which costs the most, loops over the images: padding rows would be scored
    _pads_batches = False
    #: ``"activations"`` or ``"inputs"``: what :meth:`perturb` perturbs.
    perturbs: ClassVar[str] = "activations"
    #: How many perturbations go through the model at once.
    perturbation_batch: int = 32

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, perturbation_batch: int = 32, *, weak_model: bool = False):
        if self.perturbs not in PERTURBS:
            raise TypeError(f"{type(self).__name__}.perturbs must be one of {PERTURBS}; got {self.perturbs!r}.")
        with attributed_to("perturbation_batch"):
            perturbation_batch = check_positive_int(perturbation_batch, "perturbation_batch")
        super().__init__(model, layer, score, class_names, preprocess, reshape, weak_model=weak_model)
        self.perturbation_batch = perturbation_batch

    # -- the hooks ---------------------------------------------------------------------
    def perturbation_count(self, activations_shape) -> int:
        """How many perturbations :meth:`perturb` makes per image.

        Args:
            activations_shape: the layer's output shape ``(N, h, w, C)``.

        Returns:
            The number of perturbations ``P``.

        Raises:
            NotImplementedError: the method does not override this.
        """
        raise NotImplementedError(f"{type(self).__name__} must override perturbation_count.")

    def perturb(self, image, activations, index):
        """Perturbations number ``index`` of one image.

        Args:
            image: the model's input for the image, ``(1, H, W, channels)``.
            activations: float32 ``(1, h, w, C)``, the layer's output for it.
            index: int32 ``(B,)``, which of the :meth:`perturbation_count` perturbations.

        Returns:
            ``(B, h, w, C)`` perturbed activations (:attr:`perturbs` ``"activations"``) or
            ``(B, H, W, channels)`` perturbed inputs (``"inputs"``).

        Raises:
            NotImplementedError: the method does not override this.
        """
        raise NotImplementedError(f"{type(self).__name__} must override perturb.")

    def differentiable_maps(self, x, targets=None):
        """Not available: the maps of a method that scores perturbations cannot be
        differentiated (see :meth:`Method.differentiable_maps
        <gradcam.methods.base.Method.differentiable_maps>`).

        Raises:
            TypeError: always.
        """
        raise TypeError(
            f"The {self.name} method scores perturbations of the {self.perturbs}, which cannot "
            "be differentiated; differentiable maps need a gradient-based method, e.g. "
            "'gradcam', 'gradcam++', 'xgradcam', 'hirescam' or 'layercam'."
        )

    # -- the computations --------------------------------------------------------------
    def _forward_result(self, capture, probas, notes, outputs, eigen_smooth):
        del eigen_smooth  # the map is made after the scoring
        return (capture.activations, capture.scores, capture.targets, probas, notes) + outputs

    def _ungrid(self, perturbed, own):
        """The layer's output for perturbed grids ``(B, h, w, C)``: its own output ``own``
        (one image) with the grid's cells replaced, computed as ``own + R^T (perturbed -
        R(own))`` for the grid map ``R`` (a rearrangement, so its transpose puts values
        back where they came from; the backend differentiates it to get ``R^T``)."""
        base = ops.broadcast_to(own, (perturbed.shape[0],) + tuple(own.shape[1:]))
        delta = ops.cast(perturbed, base.dtype) - self._grid(base)

        def forward(probe):
            return ops.sum(self._grid(base + probe(base)) * delta)[None], None

        gradients, _ = self._backend.probe_gradients(forward, False)
        return base + gradients[0]

    def _score_perturbations(self, call, image, activations, index, score):
        """Each target's score on perturbations ``index`` of one image: ``(B, K)``;
        ``score(scores, outputs)`` scores ``B`` model outputs."""
        _, layer, softmax = self._alive()
        perturbed = self.perturb(image, activations, index)
        if self.perturbs == "activations":
            grid = ops.cast(perturbed, layer.compute_dtype)

            def replace(own):  # the layer's own output, for a grid of another layout
                return grid if self.reshape is None and len(own.shape) == 4 else self._ungrid(grid, own)

            with capture(layer, softmax, replace=replace, of_input=self._of_input) as recording:
                outputs = call(image)
            self._one_activation(recording)
        else:
            with capture(None, softmax) as recording:
                outputs = call(ops.cast(perturbed, self._input_dtype))
        return score(*self._scores(recording, outputs))

    def _finish(self, call, x, activations, y, resolved, perturbation_scores, eigen_smooth=False):
        del call  # the map needs no model call
        maps = self._maps(Capture(x, activations, None, y, resolved, perturbation_scores), eigen_smooth)
        return maps, self._flags(x, maps)

    def _perturbation_scores(self, x, activations, resolved, wanted) -> np.ndarray:
        """Each target's score on each perturbation ``(N, K, P)``; ``wanted`` is the batch's
        :class:`~gradcam.targets.Plan` and its arrays, or ``None`` for class indices."""
        count = self.perturbation_count(tuple(activations.shape))
        size = self.perturbation_batch
        image_spec = ((1,) + tuple(x.shape[1:]), self._input_dtype)
        signature = [image_spec, ((1,) + tuple(activations.shape[1:]), "float32"), ((size,), "int32")]
        if wanted is None:
            key = ("score", tuple(activations.shape[1:]))
            signature.append(((1, None), "int32"))

            def run(call, image, image_activations, index, targets):
                return self._score_perturbations(
                    call, image, image_activations, index, lambda scores, _: ops.take(scores, targets[0], axis=1)
                )

            def rows(n):
                return [resolved[n : n + 1]]
        else:
            target_plan, arrays = wanted
            key = ("score", tuple(activations.shape[1:]), target_plan.key)
            signature += target_plan.signature(1)

            def run(call, image, image_activations, index, *image_arrays):
                repeated = [ops.repeat(a, size, axis=0) for a in image_arrays]
                return self._score_perturbations(
                    call, image, image_activations, index,
                    lambda scores, outputs: target_plan.evaluate(View(scores, outputs), repeated)[0],
                )

            def rows(n):
                return [a[n : n + 1] for a in arrays]

        score = self._function(key, run, signature)
        scores = np.empty((len(x), resolved.shape[1], count), np.float32)
        for n in range(len(x)):
            image, image_activations = x[n : n + 1], activations[n : n + 1]
            for start in range(0, count, size):
                # The last chunk repeats the last perturbation: every chunk has one shape.
                index = np.minimum(np.arange(start, start + size), count - 1).astype(np.int32)
                chunk = self._backend.to_numpy(score(image, image_activations, index, *rows(n)))
                stop = min(start + size, count)
                scores[n, :, start:stop] = chunk[: stop - start].T
        return scores

    def _run_batch(self, x, wanted, arrays=None, eigen_smooth: bool = False):
        outputs = self._forward_call(x, wanted, arrays)
        activations, y, resolved, probas, notes = outputs[:5]
        resolved_np = self._backend.to_numpy(resolved)
        perturbation_scores = self._perturbation_scores(
            x, activations, resolved_np, (wanted, arrays) if isinstance(wanted, Plan) else None
        )
        shape = tuple(activations.shape[1:])
        signature = [
            ((None,) + self._input_shape, self._input_dtype),
            ((None,) + shape, "float32"),
            ((None, None), "float32"),
            ((None, None), "int32"),
            ((None, None, None), "float32"),
        ]
        finish = self._function(("finish", shape) + (("eigen_smooth",) if eigen_smooth else ()),
                                lambda call, *args: self._finish(call, *args, eigen_smooth=eigen_smooth), signature)
        maps, flags = finish(x, activations, y, resolved, perturbation_scores)
        return (maps,) + tuple(outputs[1:-1]) + (flags,)

    def _run_augmented(self, x, wanted, arrays, eigen_smooth: bool):
        """:meth:`_run_batch` with ``aug_smooth``: the six augmented copies of the batch
        (made on the host, as the scoring takes one image at a time) through the three
        computations, their maps averaged; the scores of the images as they are, and the
        flags (:meth:`~gradcam.methods.base.Method._flags`) of the images and the averaged
        maps."""
        to_numpy, count = self._backend.to_numpy, int(x.shape[0])
        if isinstance(wanted, Plan):
            arrays = [to_numpy(repeated(a)) for a in arrays]
        else:
            wanted = to_numpy(repeated(wanted))
        maps, *rest, _ = self._run_batch(to_numpy(augment(x)), wanted, arrays, eigen_smooth)
        maps = deaugment(maps, count)
        return (maps,) + tuple(identity(values, count) for values in rest) + (self._flags(x, maps),)
