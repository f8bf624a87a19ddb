"""The template of methods that score perturbations: :class:`PerturbationMethod`.

A method that weighs what it sees by the model's scores on perturbed copies (Score-CAM's
masked inputs, Ablation-CAM's ablated channels) subclasses :class:`PerturbationMethod`,
sets :attr:`~PerturbationMethod.perturbs` and overrides
:meth:`~PerturbationMethod.perturbation_count`, :meth:`~PerturbationMethod.perturb` and a
hook of :class:`~gradcam.methods.base.Method`. The template runs one compiled computation
per batch, as every method does: the capture (the layer's activations and the targets'
scores), then a loop (``keras.ops.fori_loop``) over the images and their chunks of
``perturbation_batch`` perturbations, each chunk through the model and its target scores
written into one ``(N, K, P)`` buffer (the last chunk of an image padded by repeating its
last perturbation, so that every chunk has one shape, the repeats' scores dropped), then
the map, whose hook reads the scores in :attr:`Capture.perturbation_scores
<gradcam.methods.base.Capture>`. The host sends the images and reads the results once.
With ``aug_smooth`` the six copies of the batch are made and their maps averaged inside
that computation too.

Where the perturbed tensor is the layer's output, each chunk runs the model on its image
with the layer's output replaced; the compilers of TensorFlow and JAX drop the part of the
model before the layer, whose result is then unused. PyTorch runs eagerly and would compute
it again for every chunk, so there the chunks run through the part of the model after the
layer alone, a model of the layer's output made from the same layers
(:meth:`PerturbationMethod._rest_of_model`), wherever one can be made: a functional
model whose layer is one of its own, called once, with nothing from before the layer
reaching past it. Elsewhere the whole model runs, as on the other backends.
"""

from __future__ import annotations

from typing import ClassVar

import keras
from keras import ops

from gradcam.capture import capture
from gradcam.checks import attributed_to, check_positive_int
from gradcam.methods.base import Method
from gradcam.targets import View

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
    @staticmethod
    def _plan_score(wanted, arrays):
        """:meth:`Method._plan_score <gradcam.methods.base.Method._plan_score>`, which
        also scores rows that are perturbations of the batch's images: its
        ``for_rows(rows)`` scores a batch of model outputs whose row ``b`` belongs to image
        ``rows[b]``, ``(B, K)``."""
        score = Method._plan_score(wanted, arrays)

        def for_rows(rows):
            def rows_score(scores, outputs):
                return wanted.evaluate(View(scores, outputs), [ops.take(a, rows, axis=0) for a in arrays])[0]

            return rows_score

        score.for_rows = for_rows
        return score

    def _forward_result(self, capture, probas, notes, outputs, eigen_smooth):
        del eigen_smooth  # the map is made after the scoring (_forward)
        return capture, probas, notes, outputs

    def _forward(self, call, x, score, many, eigen_smooth=False, differentiable=False):
        """The batch's capture, the scoring of every perturbation of each of its images
        (:meth:`_perturbation_scores`) and the maps: one computation, compiled as one."""
        del differentiable  # the maps of perturbations cannot be differentiated
        capture, probas, notes, outputs = super()._forward(call, x, score, many)
        capture = capture._replace(perturbation_scores=self._perturbation_scores(call, capture, score))
        return Method._forward_result(self, capture, probas, notes, outputs, eigen_smooth)

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

            rest = self._rest_of_model()
            if rest is not None:
                with capture(None, softmax) as recording:
                    outputs = rest(grid, training=False)
            else:
                with capture(layer, softmax, replace=replace, of_input=self._of_input) as recording:
                    outputs = call(image)
                self._one_activation(recording)
        else:
            with capture(None, softmax) as recording:
                outputs = call(ops.cast(perturbed, self._input_dtype))
        return score(*self._scores(recording, outputs))

    def _rest_of_model(self):
        """The part of the model after the layer, a ``keras.Model`` of the layer's output
        made from the model's own layers (nothing is copied), where the backend runs what
        is unused (:data:`gradcam.backend` ``prunes_unused`` false: PyTorch) and one can be
        made: a functional model, its layer one of its own layers called once, its output
        (not its input) perturbed as it is (no ``reshape`` or token grid), and no tensor
        from before the layer reaching past it. Else ``None``: the whole model runs. Made
        once per engine."""
        if "rest of model" not in self._compiled:
            model, layer, _ = self._alive()
            rest = None
            functional = isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")
            if (not self._backend.prunes_unused and functional and not self._of_input and self.reshape is None
                    and any(own is layer for own in model.layers)):
                try:
                    if len(layer.output.shape) == 4:
                        rest = keras.Model(layer.output, model.output, name=f"{model.name}_after_{layer.name}")
                except (ValueError, AttributeError):  # called twice; a tensor reaches past it
                    rest = None
            self._compiled["rest of model"] = rest
        return self._compiled["rest of model"]

    def _perturbation_scores(self, call, capture, score):
        """Each target's score on each perturbation of each image, ``(N, K, P)``: a loop
        (``keras.ops.fori_loop``) over the images and their chunks of
        :attr:`perturbation_batch` perturbations, each chunk's scores written into one
        buffer; the last chunk of an image repeats its last perturbation (every chunk has
        one shape) and the scores of the repeats are dropped. ``score`` is the batch's
        scoring: a :class:`~gradcam.targets.Plan`'s also scores the rows of one image's
        perturbations (:meth:`_plan_score`); class indices are read from
        ``capture.targets``, where the top prediction is already resolved."""
        x, activations = capture.inputs, capture.activations
        count = self.perturbation_count(tuple(activations.shape))
        size = self.perturbation_batch
        chunks = -(-count // size)
        for_rows = getattr(score, "for_rows", None)
        images, targets = ops.shape(x)[0], ops.shape(capture.scores)[1]

        def chunk(i, scores):
            n = ops.expand_dims(ops.cast(i // chunks, "int32"), 0)  # (1,): the image
            start = ops.cast(i % chunks, "int32") * size
            index = ops.minimum(start + ops.arange(size, dtype="int32"), count - 1)
            if for_rows is None:
                wanted = ops.take(capture.targets, n, axis=0)[0]  # (K,): the image's classes

                def image_score(scores_of_rows, _):
                    return ops.take(scores_of_rows, wanted, axis=1)
            else:
                image_score = for_rows(ops.repeat(n, size, axis=0))
            values = self._score_perturbations(call, ops.take(x, n, axis=0), ops.take(activations, n, axis=0),
                                               index, image_score)
            update = ops.expand_dims(ops.transpose(ops.cast(values, "float32")), 0)  # (1, K, B)
            return ops.slice_update(scores, (n[0], ops.cast(0, "int32"), start), update)

        scores = ops.fori_loop(0, images * chunks, chunk, ops.zeros((images, targets, chunks * size), "float32"))
        return scores[:, :, :count]
