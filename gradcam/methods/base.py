"""The method template: everything a class-activation method does but its own formula.

This module is the engine. A method is a subclass of :class:`Method` that names itself
and overrides one hook; the template does the rest, once for all methods, written with
``keras.ops`` (so it runs on every Keras backend) and compiled by the backend's adapter
(:mod:`gradcam.backend`):

1. **targets**: class indices, class names or the top prediction, resolved before the
   model runs (:func:`gradcam.targets.resolve_targets`), except the top prediction,
   which is read inside the compiled computation; or :mod:`gradcam.targets` objects,
   checked against the model's outputs (:func:`gradcam.targets.plan`), whose arrays are
   arguments of the compiled computation; images go through in batches, after the
   engine's ``preprocess`` (on a copy: the caller's array is never changed);
2. **capture**: one forward pass of the user's model reads the layer's activations
   ``A`` ``(N, h, w, C)`` and the scores ``y`` ``(N, K)`` of the ``K`` targets, each a
   function of the model's outputs, with the pre-softmax logits in place of the outputs
   when the model ends in a softmax (:mod:`gradcam.capture`);
3. **gradients**, only when the method's :attr:`Method.uses_gradients` is true:
   ``G = d y / d A`` ``(K, N, h, w, C)``, one backward pass per target, from the same
   forward pass;
4. **perturbations**, only for methods of
   :class:`~gradcam.methods.perturbation.PerturbationMethod`: the method's ``perturb``
   makes a batch of perturbed activations (the model then runs from the layer onward on
   them) or perturbed inputs (the model runs on them), and the target scores of each are
   kept, ``(N, K, P)``;
5. **the hook**: :meth:`Method.channel_weights` ``(K, N, C)`` for methods that weigh
   channels (the map is then ``sum_k w_k A_k``), or :meth:`Method.element_map`
   ``(K, N, h, w)`` for any other map;
6. **ReLU and normalisation**: each map divided by its maximum, so that it lies in
   [0, 1]; a map with no positive value stays all zero (never NaN), is marked
   (:attr:`Result.empty`) and warned about (:class:`EmptyMapWarning`).

Steps 2 to 6 run as one compiled computation per batch, a method that perturbs included
(its scoring is a loop over chunks of perturbations padded to one size,
:mod:`gradcam.methods.perturbation`). Where the backend compiles once per shape (JAX),
a run's last partial batch is padded to a batch size already compiled
(:func:`padded_size`; the padding rows are dropped before anything is returned).

Nothing waits for the host between batches: the numpy path (the default) copies a
batch's results while the device computes the next batch, and the tensor path
(``as_tensor=True``) leaves them on the model's device and returns backend tensors. Images and class labels may be given as backend tensors too: they are checked
by their shapes and dtypes, and by their values on the device, read once per call.

Where things plug in:

* **a backend** is a module of :mod:`gradcam.backend` with ``compile``,
  ``probe_gradients``, ``to_numpy`` and ``fetch``; the template calls nothing else of it;
* **a method** is a module of :mod:`gradcam.methods` with one :class:`Method` subclass,
  and one row of :mod:`gradcam.methods.registry` (from which
  :data:`gradcam.methods.METHODS` is built); its hooks see a :class:`Capture` of backend
  tensors and use ``keras.ops`` only, so one file serves every backend.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from typing import ClassVar, NamedTuple

import keras
import numpy as np
from keras import ops

from gradcam import backend, hub
from gradcam.capture import capture, model_info
from gradcam.checks import ArgumentError, check_bool, check_positive_int
from gradcam.explanation import Explanation, TargetExplanation
from gradcam.image import image_from_array
from gradcam.layers import find_layer, tokens_to_grid
from gradcam.methods.registry import SCORES
from gradcam.methods.smoothing import augmented, first_component
from gradcam.model_input import as_batch, check_input_shape, model_input
from gradcam.targets import TOP, Class, ClassNames, OutputSpec, Plan, View, check_classifier, plan


class EmptyMapWarning(UserWarning):
    """Some maps are all zero: nothing in the layer's output raised the explained score.

    Issued by :meth:`Method.compute` (and so by every way of explaining) with the same
    text for one engine, so Python's warning filters show it once per line of the
    caller's code; ``warnings.filterwarnings("ignore", category=EmptyMapWarning)``
    silences it. :attr:`Result.empty` and :attr:`~gradcam.TargetExplanation.empty` mark
    the empty maps either way.
    """


class Capture(NamedTuple):
    """What a method's hooks receive for one batch of images (backend tensors).

    Attributes:
        inputs: the model's input batch ``(N, H, W, channels)``.
        activations: float32 ``(N, h, w, C)``, the layer's output.
        gradients: float32 ``(K, N, h, w, C)``, the gradient of each target's score with
            respect to ``activations``; ``None`` for methods that do not use gradients.
        scores: float32 ``(N, K)``, each target's score ``y_c``.
        targets: int32 ``(N, K)``, the class index of each target (-1 for a target that
            is not one class).
        perturbation_scores: float32 ``(N, K, P)``, each target's score on each of the
            ``P`` perturbations; ``None`` for methods that do not perturb.
        hessian_products: float32 ``(K, N, h, w, C)``, ``H A``: the Hessian of each
            target's score with respect to ``activations``, times ``activations``;
            ``None`` for methods whose :attr:`Method.uses_hessian_products` is false.
    """

    inputs: object
    activations: object
    gradients: object
    scores: object
    targets: object
    perturbation_scores: object = None
    hessian_products: object = None


class Result(NamedTuple):
    """Everything one run of a method computes, as numpy arrays, or as backend tensors on
    the model's device with ``as_tensor=True`` (also known by its earlier name,
    ``gradcam.GradCAMResult``).

    Attributes:
        heatmaps: float32 ``(N, K, h, w)`` in [0, 1], one map per image and target.
        targets: int32 ``(N, K)``, the class index explained by each map (-1 for a
            target that is not one class).
        scores: float32 ``(N, K)``, the explained score ``y_c`` (a logit or an output).
        probas: float32 ``(N, K)`` softmax probabilities of the targets, or ``None`` when
            the model does not end in a softmax.
        outputs: float32 ``(N, classes)``, the model's outputs (for other models, the
            outputs in the structure the model returns them: an array, a list or a dict).
        empty: bool ``(N, K)``, ``True`` where a map is all zero (see
            :class:`EmptyMapWarning`).
        explained: the :class:`~gradcam.targets.Target` objects explained (``K``), or
            ``None`` for class indices, names and the top prediction. ``targets`` is -1
            and ``probas`` NaN where such a target is not one class.
        pixels: float32 ``(N, K, H, W, channels)``, a per-pixel map of the input for
            methods that make one (:attr:`Method.makes_pixels`, e.g. guided Grad-CAM),
            else ``None``.
    """

    heatmaps: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    probas: np.ndarray | None
    outputs: np.ndarray
    empty: np.ndarray
    explained: tuple | None = None
    pixels: np.ndarray | None = None


#: The ``preprocess=`` of :meth:`Method.compute`, :meth:`Method.heatmaps` and
#: :meth:`Method.explain` that stands for the engine's own ``preprocess``.
ENGINE_PREPROCESS = "engine"


def padded_size(rows: int, batch_size: int, compiled) -> int:
    """How many rows a batch of ``rows`` images runs as, on a backend that compiles once
    per shape: the smallest size in ``compiled`` (the sizes the engine already ran, so
    compiled) that holds ``rows`` and is at most ``batch_size``; else the next power of
    two, at most ``batch_size``, so that calls of many sizes compile few.

    Args:
        rows: the batch's number of images, ``1..batch_size``.
        batch_size: the call's batch size.
        compiled: the batch sizes already run.

    Returns:
        The size to pad the batch to, ``rows..batch_size``.

    Example:
        >>> padded_size(1, 32, {32})  # the last image of a run of 33 at batch 32
        32
        >>> padded_size(5, 32, set())
        8
    """
    fitting = [size for size in tuple(compiled) if rows <= size <= batch_size]
    return min(fitting) if fitting else min(batch_size, 1 << (rows - 1).bit_length())


def _is_tensor(value) -> bool:
    """Whether ``value`` is a tensor of the backend Keras runs on (not a numpy array)."""
    return not isinstance(value, np.ndarray) and ops.is_tensor(value)


def _padded(values, start: int, stop: int, size: int):
    """Rows ``start:stop`` of ``values`` (an array or a backend tensor), with the last row
    repeated up to ``size`` rows (copies of a real image, so nothing in them can fail)."""
    part = values[start:stop]
    missing = size - (stop - start)
    if missing == 0:
        return part
    if isinstance(part, np.ndarray):
        return np.concatenate([part, np.repeat(part[-1:], missing, axis=0)])
    return ops.concatenate([part, ops.repeat(part[-1:], missing, axis=0)], axis=0)


def _joined(pieces):
    """The pieces (arrays or backend tensors) concatenated along the first axis."""
    if len(pieces) == 1:
        return pieces[0]
    if isinstance(pieces[0], np.ndarray):
        return np.concatenate(pieces)
    return ops.concatenate(pieces, axis=0)


def _stacklevel_outside_package() -> int:
    """The ``stacklevel`` at which ``warnings.warn``, called by the caller of this function,
    names the first frame outside the gradcam package (the user's line)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "gradcam":
        level, frame = level + 1, frame.f_back
    return level


class Method:
    """The template of a class-activation method, for one model and one layer: a reusable
    engine, built once and compiled on first use.

    Subclasses set :attr:`name` and override :meth:`channel_weights` or
    :meth:`element_map` (methods that score perturbations subclass
    :class:`~gradcam.methods.perturbation.PerturbationMethod`). Hooks receive a
    :class:`Capture` of backend tensors and are written with ``keras.ops``: one method
    file serves every backend.

    ``y_c``, the explained score, is the pre-softmax logit when the model ends in a
    softmax (read during the forward pass; the model is not changed or rebuilt),
    otherwise the model's output. Calls with any batch size and any targets reuse the
    compiled computation; several targets share one forward pass. The engine adds
    nothing to the model, and several threads may use one engine, or engines of one
    model, at once. A map with no positive evidence stays all zero, is marked
    (:attr:`Result.empty`) and warned about (:class:`EmptyMapWarning`).

    Args:
        model: a built Keras 3 model with one image input: Sequential, Functional, either
            with nested models inside, or a subclassed ``keras.Model`` that has been called
            once on a batch of images. Class targets need one ``(batch, classes)`` output;
            :mod:`gradcam.targets` objects explain any outputs (per-pixel scores,
            embeddings, a detector's boxes and scores, several outputs).
        layer: the layer to explain: ``None`` for the automatic choice (what the head's
            pooling receives in a convolutional model; the last block's first
            normalisation in a Vision Transformer; see :mod:`gradcam.layers`), a name,
            an ``"outer/inner"`` path (also into layers that hold layers, e.g.
            ``"vi_t_backbone/vit_encoder/transformer_block_2/ln_1"``), ``"input of
            <name>"`` for the tensor a layer receives, an index into ``model.layers``, or
            a ``keras.layers.Layer``. A layer with a 4-D output is explained as it is; a
            token layer, ``(batch, tokens, channels)`` with ``g*g`` tokens or ``1 + g*g``
            (a class token first, dropped), as a ``g x g`` grid. Defaults to ``None``.
        score: ``"auto"`` (logits when the model ends in a softmax, else the output),
            ``"logit"`` (require a final softmax and explain its input) or ``"output"``
            (explain the model's output as it is, e.g. a probability). Defaults to ``"auto"``.
        class_names: names of the model's classes, for targets given by name and for
            labels; ImageNet's names are used for 1000-class models when ``None``.
            Defaults to ``None``.
        preprocess: the model's preprocessing, e.g. ``resnet50.preprocess_input``. When
            given, images are passed raw (RGB, 0..255, as from
            :func:`~gradcam.image_from_path`); the engine gives ``preprocess`` a float32
            copy of them (the caller's array is never changed) and draws explanations on
            the raw images, in their true colours. ``None``: images are passed ready for
            the model. A keras-hub ``ImageClassifier`` is explained with its own
            ``preprocessor``, as ``predict()`` runs it, after ``preprocess``
            (:mod:`gradcam.hub`). Defaults to ``None``.
        reshape: for layers of other layouts (Swin's windows, register tokens), a function
            ``reshape(activations) -> (batch, height, width, channels)`` that turns the
            layer's output for a batch of images into a grid. It is applied to the
            activations and, image by image, to their gradients (as pytorch-grad-cam's
            ``reshape_transform``), so it must be a rearrangement of the values that
            treats each image alone (slicing, ``keras.ops.reshape``, ``transpose``), written
            with ``keras.ops`` so that it traces and differentiates on every backend.
            ``None``: 4-D outputs as they are, square token grids as above. Defaults to
            ``None``.
        weak_model: hold the model by a weak reference only, so that the engine does not
            keep a model deleted elsewhere alive (it then raises ``RuntimeError`` when
            used); what a cache of engines needs (:class:`gradcam.methods.EngineCache`).
            Defaults to ``False``: the engine keeps its model alive, as any object that
            takes one does.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` or ``reshape`` is not
            callable.
        ValueError: the model has several inputs or outputs, or is not built (a
            subclassed model: never called). An :class:`~gradcam.checks.ArgumentError`
            (a ``ValueError`` that names the argument): the layer cannot be found, or its
            output is neither 4-D nor a square grid of tokens (without ``reshape``)
            (``argument="layer"``); ``score`` is unknown or ``"logit"`` without a final
            softmax (``argument="score"``).
        RuntimeError: Keras runs on a backend that cannot differentiate.
    """

    #: The method's name in :data:`gradcam.methods.METHODS`.
    name: ClassVar[str] = ""
    #: Whether the hooks read :attr:`Capture.gradients` (else no backward pass is run).
    uses_gradients: ClassVar[bool] = True
    #: Whether the hooks read :attr:`Capture.hessian_products` too (a second backward
    #: pass, through the first).
    uses_hessian_products: ClassVar[bool] = False
    #: Whether the method also makes a per-pixel map of the input (:attr:`Result.pixels`),
    #: which its compiled computation returns after the targets' notes.
    makes_pixels: ClassVar[bool] = False
    #: Whether the map is already a principal component (Eigen-CAM and its kin), which
    #: ``eigen_smooth`` leaves as it is.
    principal_component: ClassVar[bool] = False
    #: Whether all-zero maps issue :class:`EmptyMapWarning` (``Result.empty`` marks them
    #: either way). Set it to ``False`` on an engine of your own to turn the warning off for
    #: that engine alone, without changing the process's warning filters.
    warn_empty: bool = True
    #: Whether a run's last partial batch is padded to a compiled size on backends that
    #: compile once per shape (:func:`padded_size`).
    _pads_batches: ClassVar[bool] = True

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, *, weak_model: bool = False):
        if score not in SCORES:
            raise ArgumentError("score", f"score must be one of {', '.join(map(repr, SCORES))}; got {score!r}.")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a function or None; got {preprocess!r}.")
        if reshape is not None and not callable(reshape):
            raise TypeError(f"reshape must be a function or None; got {reshape!r}.")
        info = model_info(model)
        if score == "logit" and info.softmax is None:
            raise ArgumentError(
                "score",
                f"score='logit' needs a model that ends in a softmax; model {model.name!r} "
                "does not. Use score='output'."
            )
        ref = self._find_layer(model, layer, info, reshape)
        self._backend = backend.current()
        #: The explained tensor: a layer's path, or ``"input of <path>"``.
        self.layer: str = ref.name
        self.reshape = reshape
        self._of_input = ref.of_input
        self.score = score
        self.classes = ClassNames(info.num_classes, class_names)
        self.preprocess = preprocess
        self._input_shape = info.input_shape[1:]
        self._input_dtype = info.input_dtype
        self._has_softmax = info.softmax is not None
        # The model, its layer and its softmax are held weakly, so that a cache of engines
        # (gradcam.methods.factory.EngineCache) does not keep a deleted model alive; an
        # engine keeps its model alive (_strong_model) unless weak_model is set.
        self._model_ref = weakref.ref(model)
        self._strong_model = None if weak_model else model
        self._layer_ref = weakref.ref(ref.layer)
        logits = info.softmax is not None and score != "output"
        self._softmax_ref = (weakref.ref(info.softmax[0]), info.softmax[1]) if logits else None
        self._spec = OutputSpec(info.output_shapes, self.classes, logits, model.name)
        self._compiled: dict = {}
        self._batch_sizes: set[int] = set()  # the batch sizes run, so compiled (padded_size)

    @property
    def model(self):
        """The explained model (``None`` once a model held only weakly has been deleted)."""
        return self._model_ref()

    def __repr__(self) -> str:
        model = self.model
        name = model.name if model is not None else "<deleted>"
        return f"{type(self).__name__}(model={name!r}, layer={self.layer!r}, score={self.score!r})"

    def _find_layer(self, model, layer, info, reshape):
        """The explained tensor's :class:`~gradcam.layers.LayerRef`: ``layer=`` found in
        ``model`` (a method that reads no single layer, FullGrad, overrides it)."""
        try:
            return find_layer(model, layer, shapes=info.layer_shapes, reshape=reshape)
        except ValueError as error:
            raise ArgumentError("layer", str(error)) from error

    # -- the hooks ---------------------------------------------------------------------
    def channel_weights(self, capture: Capture):
        """The weight of each channel, for each target and image.

        Args:
            capture: the batch's :class:`Capture`.

        Returns:
            float32 tensor ``(K, N, C)``.

        Raises:
            NotImplementedError: the method overrides neither this nor :meth:`element_map`.
        """
        raise NotImplementedError(f"{type(self).__name__} must override channel_weights or element_map.")

    def weighted_activations(self, capture: Capture):
        """Each channel's part of the map, whose sum over channels is the map (and whose
        first principal component is the map with ``eigen_smooth``); by default
        ``w_k A_k``.

        Args:
            capture: the batch's :class:`Capture`.

        Returns:
            float32 tensor ``(K, N, h, w, C)``.
        """
        return self.channel_weights(capture)[:, :, None, None, :] * capture.activations[None]

    def eigen_map(self, capture: Capture):
        """The map with ``eigen_smooth``: by default the first principal component of
        :meth:`weighted_activations` (:func:`~gradcam.methods.smoothing.first_component`).

        Args:
            capture: the batch's :class:`Capture`.

        Returns:
            float32 tensor ``(K, N, h, w)``.

        Raises:
            ArgumentError: (``argument="eigen_smooth"``) the layer has one channel.
        """
        if capture.activations.shape[-1] < 2:
            raise ArgumentError(
                "eigen_smooth",
                f"eigen_smooth needs a layer with 2 channels or more; layer {self.layer!r} has "
                f"{capture.activations.shape[-1]}.",
            )
        return first_component(self.weighted_activations(capture))

    def element_map(self, capture: Capture):
        """The map before ReLU and normalisation; by default the sum over channels of
        :meth:`weighted_activations`, ``sum_k w_k A_k``.

        Args:
            capture: the batch's :class:`Capture`.

        Returns:
            float32 tensor ``(K, N, h, w)``.
        """
        if type(self).weighted_activations is not Method.weighted_activations:
            return ops.sum(self.weighted_activations(capture), axis=-1)
        weights = self.channel_weights(capture)
        return ops.einsum("knc,nhwc->knhw", weights, capture.activations)

    # -- the compiled computations -------------------------------------------------------
    def _alive(self):
        """``(model, layer, softmax)``, or an error once the model has been deleted."""
        model, layer = self._model_ref(), self._layer_ref()
        if model is None or layer is None:
            raise RuntimeError(f"The model explained by this {type(self).__name__} engine has been deleted.")
        softmax = None
        if self._softmax_ref is not None:
            softmax = (self._softmax_ref[0](), self._softmax_ref[1])
        return model, layer, softmax

    def _function(self, key, fn, signature):
        if key not in self._compiled:
            self._compiled[key] = self._backend.compile(self._alive()[0], fn, signature)
        return self._compiled[key]

    def _one_activation(self, recording):
        if len(recording.activations) != 1:
            raise ArgumentError(
                "layer",
                f"Layer {self.layer!r} ran {len(recording.activations)} times in one forward pass "
                f"of model {self.model.name!r}; a class-activation map needs a layer that runs "
                "exactly once."
            )
        return recording.activations[0]

    def _grid(self, activations):
        """The layer's output as a ``(batch, h, w, C)`` grid: as it is when 4-D, through
        ``reshape`` when the engine has one, else a token layer's patches."""
        if self.reshape is not None:
            grid = self.reshape(activations)
            if len(grid.shape) != 4:
                raise ValueError(
                    f"reshape turned the output of layer {self.layer!r}, shape "
                    f"{tuple(activations.shape)}, into shape {tuple(grid.shape)}; it must return "
                    "(batch, height, width, channels)."
                )
            return grid
        if len(activations.shape) == 4:
            return activations
        if len(activations.shape) == 3:
            try:
                return tokens_to_grid(activations)
            except ValueError as error:
                raise ArgumentError("layer", f"Layer {self.layer!r}: {error}") from None
        raise ArgumentError(
            "layer",
            f"Layer {self.layer!r} produced a tensor of shape {tuple(activations.shape)}; a "
            "class-activation map needs a 4-D (batch, height, width, channels) output, a token "
            "layer's (batch, tokens, channels), or reshape=."
        )

    def _grid_gradients(self, gradients, activations):
        """``(K, N) + activations.shape[1:]`` gradients as ``(K, N, h, w, C)`` grids."""
        if self.reshape is None and len(activations.shape) == 4:
            return gradients
        count = ops.shape(gradients)[0]
        flat = ops.reshape(gradients, (-1,) + tuple(activations.shape[1:]))
        grids = self._grid(flat)
        return ops.reshape(grids, (count, -1) + tuple(grids.shape[1:]))

    def _scores(self, recording, outputs):
        """``(scores, outputs)`` as float32: what targets score (the logits of a final
        softmax when the engine explains them) and the model's outputs."""
        outputs = keras.tree.map_structure(lambda t: ops.cast(t, "float32"), outputs)
        if self._softmax_ref is None:
            return outputs, outputs
        return ops.cast(recording.logits[0], "float32"), outputs

    @staticmethod
    def _class_score(targets):
        """Scoring of class indices ``(N, K)`` (``TOP``: the top prediction):
        ``score(scores, outputs) -> (y, (resolved, probas, notes, outputs))``."""

        def score(scores, outputs):
            top = ops.cast(ops.argmax(outputs, axis=-1), "int32")[:, None]
            resolved = ops.where(ops.equal(targets, TOP), top, targets)
            y = ops.take_along_axis(scores, resolved, axis=1)
            probas = ops.take_along_axis(outputs, resolved, axis=1)
            return y, (resolved, probas, ops.zeros_like(y), outputs)

        return score

    @staticmethod
    def _plan_score(wanted: Plan, arrays):
        """Scoring of a :class:`~gradcam.targets.Plan`: as :meth:`_class_score`."""

        def score(scores, outputs):
            y, probas, notes = wanted.evaluate(View(scores, outputs), arrays)
            resolved = ops.zeros_like(ops.cast(y, "int32")) - 1  # the indices are read from the plan
            return y, (resolved, probas, notes, outputs)

        return score

    def _run_model(self, call, x, score, probe):
        """One forward pass: ``(totals (K,), (A, y, (resolved, probas, notes, outputs), raw))``."""
        _, layer, softmax = self._alive()
        with capture(layer, softmax, probe=probe, of_input=self._of_input) as recording:
            outputs = call(x)
        raw = self._one_activation(recording)
        activations = self._grid(raw)
        y, extras = score(*self._scores(recording, outputs))
        return ops.sum(y, axis=0), (ops.cast(activations, "float32"), y, extras, raw)

    def _forward(self, call, x, score, many, eigen_smooth=False, differentiable=False):
        def forward(probe):
            return self._run_model(call, x, score, probe)

        products = None
        if self.uses_gradients or self.uses_hessian_products:
            if self.uses_hessian_products:
                gradients, products, aux = self._backend.probe_hessian_products(forward, many)
            else:
                gradients, aux = self._backend.probe_gradients(forward, many, differentiable=differentiable)
        else:
            _, aux = forward(None)
            gradients = None
        return self._forward_from(x, gradients, products, aux, eigen_smooth)

    def _forward_from(self, x, gradients, products, aux, eigen_smooth):
        """:meth:`_forward`'s result from what the backward pass gave: ``gradients`` and
        ``products`` ``(K,) + raw.shape`` (``None`` when not computed) and
        :meth:`_run_model`'s ``aux``."""
        if gradients is None and (self.uses_gradients or self.uses_hessian_products):
            raise ArgumentError(
                "layer",
                f"The output of model {self.model.name!r} does not depend on layer "
                f"{self.layer!r}; choose a layer on the path from the input to the output."
            )
        if gradients is not None:
            gradients = ops.cast(self._grid_gradients(gradients, aux[-1]), "float32")
        if products is not None:
            products = ops.cast(self._grid_gradients(products, aux[-1]), "float32")
        activations, y, (resolved, probas, notes, outputs), _ = aux
        capture = Capture(x, activations, gradients, y, resolved, hessian_products=products)
        return self._forward_result(capture, probas, notes, tuple(keras.tree.flatten(outputs)), eigen_smooth)

    def _forward_result(self, capture, probas, notes, outputs, eigen_smooth):
        """What the compiled forward computation returns: the maps, with the scores
        (``outputs``: the model's outputs, flat)."""
        return (self._maps(capture, eigen_smooth), capture.scores, capture.targets, probas, notes) + outputs

    def _flags(self, x, maps):
        """What the host checks, computed with the maps and returned last by the compiled
        forward computation (:meth:`_forward_call`): bool ``(N, 1 + K)``, whether each
        image's values are finite, then whether each of its maps is empty."""
        if "float" in self._input_dtype:
            finite = ops.all(ops.isfinite(x), axis=tuple(range(1, len(x.shape))))
        else:
            finite = ops.ones(ops.shape(x)[:1], "bool")
        empty = ops.less_equal(ops.max(maps, axis=(2, 3)), 0.0)
        return ops.concatenate([ops.expand_dims(finite, 1), empty], axis=1)

    def _maps(self, capture, eigen_smooth=False):
        if eigen_smooth and not self.principal_component:
            element = self.eigen_map(capture)
        else:
            element = self.element_map(capture)
        maps = ops.relu(ops.cast(element, "float32"))
        peaks = ops.max(maps, axis=(2, 3), keepdims=True)
        maps = maps / ops.where(peaks > 0, peaks, ops.ones_like(peaks))
        return ops.transpose(maps, (1, 0, 2, 3))

    # -- running -------------------------------------------------------------------------
    def _preprocess_for(self, preprocess):
        """The call's ``preprocess`` (:data:`ENGINE_PREPROCESS`: the engine's own), checked."""
        if isinstance(preprocess, str) and preprocess == ENGINE_PREPROCESS:
            return self.preprocess
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a function, None or {ENGINE_PREPROCESS!r}; got {preprocess!r}.")
        return preprocess

    def _prepare(self, docs, preprocess) -> tuple[np.ndarray, np.ndarray]:
        """Check ``docs``; return the model's input batch and the pictures' batch, with
        ``preprocess`` (:data:`ENGINE_PREPROCESS`: the engine's own)."""
        preprocess = self._preprocess_for(preprocess)
        if _is_tensor(docs):
            docs = self._backend.to_numpy(docs)
        pictures = as_batch(docs, name="docs")
        # a copy for preprocess: preprocess_input functions may work in place (resnet50's does)
        batch = pictures if preprocess is None else np.array(pictures, dtype=np.float32)
        model = self._alive()[0]
        batch = model_input(model, batch, preprocess, self._input_shape, self._input_dtype)
        # keras-hub classifiers: the maps cover the part of each picture that their
        # preprocessor keeps (gradcam.hub)
        return batch, hub.model_view(model, pictures)

    def _model_batch(self, docs, preprocess):
        """The model's input batch for :meth:`compute`. A backend tensor stays on its
        device (through a keras-hub classifier's preprocessor, which runs on the host, it
        goes the host's way), checked here by its shape and dtype, and by its values with
        the maps (:meth:`_flags`). Anything else is checked on the host by
        :meth:`_prepare`."""
        if not _is_tensor(docs) or hub.image_classifier_preprocessor(self._alive()[0]) is not None:
            return self._prepare(docs, preprocess)[0]
        preprocess = self._preprocess_for(preprocess)
        x = ops.expand_dims(docs, 0) if len(docs.shape) == 3 else docs
        dtype = keras.backend.standardize_dtype(x.dtype)
        if dtype == "string" or dtype.startswith("complex"):
            raise TypeError(f"docs must be a tensor of numbers; got a tensor of dtype {dtype}.")
        if len(x.shape) != 4:
            raise ValueError(
                "Expected docs to have rank 4 (batch, height, width, channels) or rank 3 (one image); got a "
                f"tensor of shape {tuple(docs.shape)}."
            )
        count = x.shape[0]
        if count == 0:
            raise ValueError(f"docs is an empty batch (shape {tuple(x.shape)}).")
        if preprocess is not None:
            x = ops.convert_to_tensor(preprocess(ops.cast(x, "float32")))
            if len(x.shape) != 4 or x.shape[0] != count:
                raise ValueError(
                    f"preprocess returned a batch of shape {tuple(x.shape)} for {count} images; it must "
                    "keep the batch as it is."
                )
        check_input_shape(self._alive()[0], x.shape, self._input_shape, preprocess is not None)
        return ops.cast(x, self._input_dtype)

    def _labels(self, labels, count):
        """Class labels given as a backend tensor, ``(N,)`` (one per image) or ``(N, K)``,
        as an int32 ``(N, K)`` tensor on the device; ``TOP`` (-1) marks the top
        prediction. Their range is checked once (one read of their minimum and maximum)
        unless they are being traced, whose values cannot be read."""
        dtype = keras.backend.standardize_dtype(labels.dtype)
        if "int" not in dtype:
            raise TypeError(f"Class labels given as a tensor must be integers; got a tensor of dtype {dtype}.")
        shape = tuple(labels.shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] == 0) or (
                None not in (shape[0], count) and shape[0] != count):
            raise ValueError(
                f"Class labels given as a tensor must have shape ({count},) (one per image) or ({count}, K) "
                f"for {count} images; got shape {shape}."
            )
        check_classifier(self._spec, "class labels")
        labels = ops.cast(labels if len(shape) == 2 else ops.expand_dims(labels, 1), "int32")
        if not self._backend.traced(labels):
            low, high = (int(v) for v in self._backend.fetch([ops.min(labels), ops.max(labels)]))
            classes = self.classes.num_classes
            if low < TOP or high >= classes:
                raise ValueError(
                    f"Label {low if low < TOP else high} is out of range: the model has {classes} classes "
                    f"(0..{classes - 1}; {TOP} for the top prediction)."
                )
        return labels

    def _wanted(self, targets, count):
        """The targets of one call: class labels given as a backend tensor (:meth:`_labels`),
        else :func:`gradcam.targets.plan`'s int32 array or :class:`~gradcam.targets.Plan`."""
        if _is_tensor(targets):
            return self._labels(targets, count)
        return plan(targets, self._spec, count)

    def _forward_call(self, x: np.ndarray, wanted, arrays=None, eigen_smooth: bool = False,
                      aug_smooth: bool = False):
        """The compiled forward computation on one batch; ``wanted`` is an int32 ``(N, K)``
        array of class indices or a :class:`~gradcam.targets.Plan` (with its ``arrays``
        for the batch). Equal kinds of targets share one compiled computation; with
        ``aug_smooth``, one that augments the batch and averages the maps itself."""
        image_spec = ((None,) + self._input_shape, self._input_dtype)
        smooth = ("eigen_smooth",) * eigen_smooth + ("aug_smooth",) * aug_smooth
        if isinstance(wanted, Plan):
            many = len(wanted.targets) > 1
            signature = [image_spec] + wanted.signature()
            key, inputs = ("forward", many, wanted.key), (x, *arrays)

            def forward(call, x, *batch_arrays):
                return self._forward(call, x, self._plan_score(wanted, batch_arrays), many, eigen_smooth)
        else:
            many = wanted.shape[1] > 1
            signature = [image_spec, ((None, None if many else 1), "int32")]
            key, inputs = ("forward", many), (x, wanted)

            def forward(call, x, targets):
                return self._forward(call, x, self._class_score(targets), many, eigen_smooth)

        smoothed = self._augmented(forward) if aug_smooth else forward

        def run(call, x, *batch_arrays):
            results = tuple(smoothed(call, x, *batch_arrays))
            return results + (self._flags(x, results[0]),)

        return self._function(key + smooth, run, signature)(*inputs)

    def _run_batch(self, x, wanted, arrays=None, eigen_smooth: bool = False):
        """One batch through the model: backend tensors ``(maps, scores, targets, probas,
        notes, *outputs)``, left on the device; ``wanted`` and ``arrays`` as for
        :meth:`_forward_call`."""
        return self._forward_call(x, wanted, arrays, eigen_smooth)

    def _run_augmented(self, x, wanted, arrays, eigen_smooth: bool):
        """:meth:`_run_batch` with ``aug_smooth``: the six augmented copies of the batch
        made, run and their maps averaged in one compiled call
        (:func:`~gradcam.methods.smoothing.augmented`); the scores of the images as they
        are; backend tensors, left on the device, as :meth:`_run_batch`'s."""
        return self._forward_call(x, wanted, arrays, eigen_smooth, aug_smooth=True)

    def _augmented(self, run):
        """``run`` with ``aug_smooth`` (:func:`~gradcam.methods.smoothing.augmented`): its
        maps averaged, and its per-pixel maps, after the notes, where it makes them."""
        return augmented(run, {0: -1, 5: -2} if self.makes_pixels else {0: -1})

    def _batches(self, count: int, batch_size: int):
        """``(start, stop, size)`` of each batch of a run of ``count`` images: the batch
        is rows ``start:stop``, run as ``size`` rows (:func:`padded_size` where the backend
        compiles once per shape, else ``stop - start``)."""
        pads = self._pads_batches and self._backend.compiles_per_shape
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            size = padded_size(stop - start, batch_size, self._batch_sizes) if pads else stop - start
            self._batch_sizes.add(size)
            yield start, stop, size

    def _run(self, batch, targets, batch_size, eigen_smooth=False, aug_smooth=False, as_tensor=False) -> Result:
        """:meth:`compute` on a batch made by :meth:`_model_batch`."""
        check_positive_int(batch_size, "batch_size")
        eigen_smooth, aug_smooth = check_bool(eigen_smooth, "eigen_smooth"), check_bool(aug_smooth, "aug_smooth")
        as_tensor = check_bool(as_tensor, "as_tensor")
        count = int(batch.shape[0])
        wanted = self._wanted(targets, count)
        run = self._run_augmented if aug_smooth else self._run_batch
        to_host = not as_tensor
        parts = []
        for start, stop, size in self._batches(count, batch_size):
            if isinstance(wanted, Plan):
                batch_wanted, arrays = wanted, [_padded(a, start, stop, size) for a in wanted.flat()]
            else:
                batch_wanted, arrays = _padded(wanted, start, stop, size), None
            parts.append((stop - start, run(_padded(batch, start, stop, size), batch_wanted, arrays, eigen_smooth)))
            if to_host:  # the batch before, while the device computes this one
                parts[-2:-1] = [(rows, self._backend.fetch(part)) for rows, part in parts[-2:-1]]
        if to_host:
            parts[-1] = (parts[-1][0], self._backend.fetch(parts[-1][1]))
        fields = [_joined([part[i] if len(part[i]) == rows else part[i][:rows] for rows, part in parts])
                  for i in range(len(parts[0][1]))]
        maps, scores, resolved, probas, notes, *outputs, flags = fields
        pixels = outputs.pop(0) if self.makes_pixels else None
        explained = wanted.targets if isinstance(wanted, Plan) else None
        if explained is not None:
            resolved = wanted.indices(count)
        if as_tensor:
            # the one read of the call: the flags (and the targets' notes)
            host_flags, *host_notes = self._backend.fetch([flags] + ([notes] if explained is not None else []))
            host_notes, empty, any_empty = (host_notes or [None])[0], flags[:, 1:], host_flags[:, 1:].any()
        else:
            host_flags, host_notes = flags, notes
            empty = ~maps.any(axis=(2, 3))
            any_empty = empty.any()
            maps, resolved = maps.astype(np.float32, copy=False), resolved.astype(np.int32, copy=False)
            pixels = None if pixels is None else pixels.astype(np.float32, copy=False)
        if not host_flags[:, 0].all():
            raise ValueError(
                f"docs contains NaN or infinite values in {int(np.sum(~host_flags[:, 0]))} of its {count} images; "
                "expected finite pixel values."
            )
        if explained is not None:
            wanted.check(host_notes, _stacklevel_outside_package() + 1)
        if any_empty and self.warn_empty:
            self._warn_empty(explained)
        return Result(
            heatmaps=maps,
            targets=resolved,
            scores=scores,
            probas=probas if self._has_softmax else None,
            outputs=self._spec.pack(outputs),
            empty=empty,
            explained=explained,
            pixels=pixels,
        )

    def _warn_empty(self, explained=None) -> None:
        # One text per engine and kind of target: Python's warning filters then show it
        # once per line of the caller's code, and a call made under "ignore" (a warm-up)
        # uses nothing up. ``explained``: the target objects, or None for class indices.
        logits = self._softmax_ref is not None
        kinds = {"output" if t.score_kind == "output" else "auto" for t in explained or ()
                 if type(t) is Class} if explained is not None else {"auto"}
        if explained is not None and not all(type(t) is Class for t in explained):
            score = "the explained score"
        elif kinds == {"output"} or not logits:
            score = "the output of their class"
        else:
            score = "the logit of their class" if kinds == {"auto"} else "the score of their class"
        way_out = "score='output' or another layer (layer=...)" if logits else "another layer (layer=...)"
        warnings.warn(
            f"Some {self.name} maps at layer {self.layer!r} are all zero: no part of that "
            f"layer's output raises {score} by this method's measure (after "
            f"Flatten and Dense, for example, the gradients average out over the map). Try "
            f"{way_out}. Result.empty and TargetExplanation.empty mark the empty maps.",
            EmptyMapWarning,
            stacklevel=_stacklevel_outside_package(),
        )

    def compute(self, docs, targets=None, batch_size: int = 32, *, preprocess=ENGINE_PREPROCESS,
                eigen_smooth: bool = False, aug_smooth: bool = False, as_tensor: bool = False) -> Result:
        """Run the method on a batch and return maps, targets, scores and outputs.

        Args:
            docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``: preprocessed for the
                model, or raw (RGB, 0..255) when the engine has a ``preprocess``; an array,
                or a tensor of the Keras backend, which stays on its device (its values are
                checked there, and read once, when the call ends; ``preprocess`` then gets
                a float32 tensor, as ``keras.applications``' ``preprocess_input`` takes).
            targets: ``None`` (each image's top prediction), a class index or name, a
                :mod:`gradcam.targets` object (``Segmentation``, ``Similarity``, ``Output``,
                ``Box``, ``Contrast``...) or a function of the model's outputs, a list of
                them shared by all images, a 2-D integer array of class indices with one
                row per image, or class labels as an integer tensor of the Keras backend:
                ``(N,)``, one label per image, or ``(N, K)`` (``-1``: the top prediction),
                kept on the device. Defaults to ``None``.
            batch_size: how many images go through the model at once. Defaults to ``32``.
            preprocess: ``"engine"`` (the engine's own ``preprocess``), ``None`` (images
                are ready for the model) or a function applied to a float32 copy of the
                images, for this call only. Defaults to ``"engine"``.
            eigen_smooth: the first principal component of the method's weighted
                activations (:meth:`weighted_activations`) instead of their sum, as
                pytorch-grad-cam's option; methods whose map is already a principal
                component are left as they are. Defaults to ``False``.
            aug_smooth: test-time augmentation: the average of the maps of each image as it
                is and flipped horizontally, each multiplied by 0.9, 1.0 and 1.1 (six
                copies of the batch in one call), flipped back; each copy's targets are
                resolved on it (the top prediction may differ between copies); the scores
                are those of the images as they are. The copies' maps are averaged on the
                host. Defaults to ``False``.
            as_tensor: return the :class:`Result`'s arrays as tensors of the Keras backend
                on the model's device, not copied to the host (one read of a few flags
                per call checks the inputs and warns of empty maps). Defaults to
                ``False``: numpy arrays (each batch's copied while the next one computes).

        Returns:
            A :class:`Result` (of backend tensors with ``as_tensor``).

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type; a target
                function that is not backend-neutral (numpy, or another backend's functions);
                ``preprocess`` is not callable.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; a target index is out of range or a class name is unknown; a
                class target for a model that is not a classifier; a target that does not
                fit the model's outputs (a mask's or an embedding's shape, a ``Box`` on
                outputs that are not boxes and scores) or returns another shape than
                ``(N,)``; ``batch_size`` is not a positive integer; ``eigen_smooth``,
                ``aug_smooth`` or ``as_tensor`` is not a bool; ``eigen_smooth`` on a layer
                with one channel; class labels given as a tensor of another shape than
                ``(N,)`` or ``(N, K)``, or out of range.

        Warns:
            EmptyMapWarning: some maps are all zero.
            NoBoxWarning: a :class:`~gradcam.targets.Box` overlaps no predicted box enough.
        """
        return self._run(self._model_batch(docs, preprocess), targets, batch_size, eigen_smooth, aug_smooth,
                         as_tensor)

    def heatmaps(self, docs, targets=None, batch_size: int = 32, *, preprocess=ENGINE_PREPROCESS,
                 eigen_smooth: bool = False, aug_smooth: bool = False, as_tensor: bool = False):
        """The method's maps for a batch of images.

        Args:
            docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``: preprocessed for the
                model, or raw (RGB, 0..255) when the engine has a ``preprocess``; an array
                or a backend tensor, as for :meth:`compute`.
            targets: as for :meth:`compute`. Defaults to ``None``.
            batch_size: how many images go through the model at once. Defaults to ``32``.
            preprocess: ``"engine"`` (the engine's own ``preprocess``), ``None`` (images
                are ready for the model) or a function applied to a float32 copy of the
                images, for this call only. Defaults to ``"engine"``.
            eigen_smooth: as for :meth:`compute`. Defaults to ``False``.
            aug_smooth: as for :meth:`compute`. Defaults to ``False``.
            as_tensor: return a tensor of the Keras backend on the model's device, not
                copied to the host (see :meth:`compute`). Defaults to ``False``.

        Returns:
            float32 array ``(N, K, h, w)`` in [0, 1], at the layer's resolution (a backend
            tensor with ``as_tensor``).

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type;
                ``preprocess`` is not callable.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; a target index is out of range or a class name is unknown;
                ``batch_size`` is not a positive integer; as for :meth:`compute`.

        Warns:
            EmptyMapWarning: some maps are all zero.
        """
        return self.compute(docs, targets, batch_size, preprocess=preprocess, eigen_smooth=eigen_smooth,
                            aug_smooth=aug_smooth, as_tensor=as_tensor).heatmaps

    def differentiable_maps(self, x, targets=None):
        """The method's maps of a batch as backend tensors that gradients flow through.

        The same maps as :meth:`heatmaps`, computed by the model's own call on ``x``
        (inference mode, not compiled by the engine) and kept as backend tensors on the
        model's device, so that a loss on them can be differentiated with respect to the
        model's weights (double backpropagation): under a ``tf.GradientTape`` on
        TensorFlow, by autograd on PyTorch, and on JAX inside a function of the weights
        that calls the model under ``keras.StatelessScope`` (a stateless training step).
        Only the methods that compute their maps from one forward and backward pass can
        be differentiated so; those that score perturbations cannot.

        Args:
            x: the model's input batch ``(N, H, W, C)``, ready for the model (a backend
                tensor or an array; the engine's ``preprocess`` is not applied).
            targets: as for :meth:`compute`; class labels as an integer backend tensor
                ``(N,)`` or ``(N, K)`` may be values of the training step (traced inside
                ``tf.function`` or ``jax.jit``, where their range cannot be checked).
                Defaults to ``None``.

        Returns:
            float32 backend tensor ``(N, K, h, w)`` in [0, 1].

        Raises:
            TypeError: the method scores perturbations (a
                :class:`~gradcam.methods.perturbation.PerturbationMethod`); a target of
                another type; class labels in a tensor that is not of integers.
            ValueError: ``x`` is not of the model's input shape; a target index is out of
                range or a class name is unknown; class labels in a tensor of another shape
                than ``(N,)`` or ``(N, K)``.
        """
        shape = tuple(x.shape)
        check_input_shape(self._alive()[0], shape, self._input_shape, False)
        # In a traced training step the batch may be unknown (None): the targets shared by
        # every image are then planned for one and broadcast over the batch.
        wanted = self._wanted(targets, shape[0]) if _is_tensor(targets) else plan(
            targets, self._spec, 1 if shape[0] is None else shape[0])
        model = self._alive()[0]

        def call(inputs):
            return model(inputs, training=False)

        x = ops.cast(x, self._input_dtype)
        if isinstance(wanted, Plan):
            score = self._plan_score(wanted, [ops.convert_to_tensor(a) for a in wanted.flat()])
            many = len(wanted.targets) > 1
        else:
            score, many = self._class_score(ops.convert_to_tensor(wanted)), wanted.shape[1] != 1
        maps, *_ = self._forward(call, x, score, many, differentiable=True)
        return maps

    def explain(self, docs, targets=None, images=None, batch_size: int = 32, *,
                preprocess=ENGINE_PREPROCESS, eigen_smooth: bool = False, aug_smooth: bool = False) -> list[Explanation]:
        """Explain a batch of images: one :class:`~gradcam.Explanation` per image.

        Args:
            docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``: preprocessed for the
                model, or raw (RGB, 0..255) when the engine has a ``preprocess``.
            targets: as for :meth:`compute`. Defaults to ``None``.
            images: the images to draw the maps on (PIL images or arrays), one per image;
                ``None`` draws on the raw images when the engine has a ``preprocess``, else
                rebuilds them from ``docs``. Defaults to ``None``.
            batch_size: how many images go through the model at once. Defaults to ``32``.
            preprocess: ``"engine"`` (the engine's own ``preprocess``), ``None`` (images
                are ready for the model) or a function applied to a float32 copy of the
                images, for this call only. Defaults to ``"engine"``.
            eigen_smooth: as for :meth:`compute`. Defaults to ``False``.
            aug_smooth: as for :meth:`compute`. Defaults to ``False``.

        Returns:
            A list of :class:`~gradcam.Explanation`, in the order of ``docs``.

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type;
                ``preprocess`` is not callable.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; ``images`` has another length than ``docs``; a target index is out
                of range or a class name is unknown; as for :meth:`compute`.

        Warns:
            EmptyMapWarning: some maps are all zero.
        """
        batch, pictures = self._prepare(docs, preprocess)
        count = len(batch)
        if images is not None and len(images) != count:
            raise ValueError(f"images has {len(images)} entries for {count} images.")
        result = self._run(batch, targets, batch_size, eigen_smooth, aug_smooth)
        explanations = []
        for n in range(count):
            image = images[n] if images is not None else pictures[n]
            targets_n = [self._target_explanation(result, n, k) for k in range(result.targets.shape[1])]
            if not hasattr(image, "mode"):
                image = image_from_array(image)
            explanations.append(Explanation(image=image.convert("RGB"), targets=targets_n, layer=self.layer,
                                            input_size=tuple(batch.shape[1:3])))
        return explanations

    def _target_explanation(self, result: Result, n: int, k: int) -> TargetExplanation:
        """Map ``k`` of image ``n`` with its target's name and description."""
        index = int(result.targets[n, k])
        explained = None if result.explained is None else result.explained[k].for_image(n)
        proba = None if result.probas is None else float(result.probas[n, k])
        if explained is None or (type(explained).__name__ == "Class" and index >= 0):
            name = self.classes.name(index) if index >= 0 else None
            what = "logit" if self._softmax_ref is not None else "output"
            description = explained.description if explained is not None else (
                f"the {what} of class {self.classes.label(index)}")
        else:
            name, description = explained.name, explained.description
        return TargetExplanation(
            target=index,
            name=name,
            score=float(result.scores[n, k]),
            proba=None if proba is None or np.isnan(proba) else proba,
            heatmap=result.heatmaps[n, k],
            description=description,
            explained=explained,
            pixels=None if result.pixels is None else result.pixels[n, k],
        )
