"""The Grad-CAM engine: one compiled forward + backward pass per batch.

This is the only module that touches gradients. Its steps are kept apart so that other
class-activation methods can plug in:

1. capture the target layer's activations ``A`` and the score ``y`` (pre-softmax logits
   when the model ends in a softmax) during one forward pass of the user's model, which
   is read and never changed (:mod:`gradcam.capture`);
2. differentiate each target score with respect to ``A``;
3. turn activations and gradients into channel weights (:meth:`GradCAM.channel_weights`,
   the one step in which Grad-CAM's variants differ);
4. weight, ReLU and normalise each map to [0, 1].
"""

from __future__ import annotations

import functools
import sys
import warnings
import weakref
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from gradcam.capture import logits_of, model_info, record_outputs
from gradcam.explanation import Explanation, TargetExplanation
from gradcam.image import image_from_array, to_batch
from gradcam.layers import find_layer
from gradcam.targets import TOP, ClassNames, resolve_targets

SCORES = ("auto", "logit", "output")


def _stacklevel_outside_package() -> int:
    """The ``stacklevel`` at which ``warnings.warn``, called by the caller of this function,
    names the first frame outside the gradcam package (the user's line)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "gradcam":
        level, frame = level + 1, frame.f_back
    return level


class GradCAMResult(NamedTuple):
    """Everything one engine run computes, as numpy arrays.

    Attributes:
        heatmaps: float32 ``(N, K, h, w)`` in [0, 1], one map per image and target.
        targets: int ``(N, K)``, the class index explained by each map.
        scores: float32 ``(N, K)``, the explained score ``y_c`` (a logit or an output).
        probas: float32 ``(N, K)`` softmax probabilities of the targets, or ``None`` when
            the model does not end in a softmax.
        outputs: float32 ``(N, classes)``, the model's outputs.
        empty: bool ``(N, K)``, ``True`` where a map is all zero (see :class:`GradCAM`).
    """

    heatmaps: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    probas: np.ndarray | None
    outputs: np.ndarray
    empty: np.ndarray


class GradCAM:
    """Reusable Grad-CAM engine for one model and one layer.

    Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", arXiv 1610.02391) weighs each channel ``k`` of a
    convolutional layer's activations ``A`` by the mean gradient of the class score:
    ``alpha_k = mean_ij d y_c / d A_k[i, j]``, then ``L = ReLU(sum_k alpha_k A_k)``,
    scaled to ``L / max(L)``.

    ``y_c`` is the pre-softmax logit when the model ends in a softmax (read during the
    forward pass; the model is not changed or rebuilt), otherwise the model's output.

    A map with no positive evidence stays all zero. That is also what a layer whose
    gradients average out gives (a convolution followed by ``Flatten`` and ``Dense``), so
    the first all-zero map an engine computes raises a ``UserWarning`` (once per engine)
    that names the ways out: ``score="output"`` or another layer. Every empty map is
    marked: :attr:`GradCAMResult.empty`, :attr:`TargetExplanation.empty`.

    The gradient computation is compiled once (``tf.function`` with a fixed input
    signature): calls with any batch size and any targets reuse it. Several targets share
    one forward pass. The engine adds nothing to the model, and several threads may use
    one engine, or engines of one model, at once.

    Args:
        model: a built Keras 3 model with one image input and one ``(batch, classes)``
            output: Sequential, Functional, either with nested models inside, or a
            subclassed ``keras.Model`` that has been called once on a batch of images.
        layer: the layer to explain: ``None`` (the last layer with a 4-D output, looking
            inside nested models), a name, an ``"outer/inner"`` path, an index into
            ``model.layers``, or a ``keras.layers.Layer``. Defaults to ``None``.
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
            the model. Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: the model has several inputs or outputs, or is not built (a
            subclassed model: never called); the layer cannot be found or has no 4-D
            output; ``score`` is unknown or ``"logit"`` without a final softmax.

    Example:
        >>> cam = GradCAM(model, preprocess=efficientnet_lite.preprocess_input)
        >>> maps = cam.heatmaps(photos, targets=["tiger cat", "espresso"])
        >>> maps.shape
        (32, 2, 7, 7)
    """

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None):
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}; got {score!r}.")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a function or None; got {preprocess!r}.")
        info = model_info(model)
        if score == "logit" and not info.softmax:
            raise ValueError(
                f"score='logit' needs a model that ends in a softmax; model {model.name!r} "
                "does not. Use score='output'."
            )
        ref = find_layer(model, layer, shapes=info.layer_shapes)
        self.layer: str = ref.path
        self.score = score
        self.classes = ClassNames(info.num_classes, class_names)
        self.preprocess = preprocess
        self._input_shape = info.input_shape[1:]
        self._input_dtype = info.input_dtype
        self._softmax = info.softmax
        self._logits = info.softmax and score != "output"
        self._model_ref = weakref.ref(model)
        self._layer_ref = weakref.ref(ref.layer)
        self._strong_model = model  # set to None by caches that must not keep models alive
        self._warned_empty = False
        x_spec = tf.TensorSpec((None,) + self._input_shape, self._input_dtype)
        t_spec = tf.TensorSpec((None, None), tf.int32)
        # autograph=False: the graph functions have no tensor-dependent Python control flow,
        # and converting them would add about half a second to the first call.
        # functools.partial, not bound methods: TensorFlow counts traces per Python code
        # object, so the bound methods of several engines (six layers of one model) would
        # share one count and print its "triggered tf.function retracing" warning.
        compile_ = dict(input_signature=[x_spec, t_spec], autograph=False)
        self._one_target = tf.function(functools.partial(type(self)._one_target_graph, self), **compile_)
        self._many_targets = tf.function(functools.partial(type(self)._many_targets_graph, self), **compile_)

    @property
    def model(self) -> keras.Model | None:
        """The explained model (``None`` once a model held only weakly has been deleted)."""
        return self._model_ref()

    def __repr__(self) -> str:
        name = self.model.name if self.model is not None else "<deleted>"
        return f"GradCAM(model={name!r}, layer={self.layer!r}, score={self.score!r})"

    # -- step 1: capture activations and scores --------------------------------------
    def _forward(self, x, tape):
        model, layer = self._model_ref(), self._layer_ref()
        if model is None or layer is None:
            raise RuntimeError("The model explained by this GradCAM engine has been deleted.")
        with record_outputs([layer], on_output=tape.watch) as recording:
            outputs = model(x, training=False)
        activations = recording.outputs_of(layer)
        if len(activations) != 1:
            raise ValueError(
                f"Layer {self.layer!r} ran {len(activations)} times in one forward pass of "
                f"model {model.name!r}; Grad-CAM needs a layer that runs exactly once."
            )
        if activations[0].shape.rank != 4:
            raise ValueError(
                f"Layer {self.layer!r} produced a tensor of shape {activations[0].shape}; "
                "Grad-CAM needs a 4-D (batch, height, width, channels) output."
            )
        scores = outputs
        if self._logits:
            scores = logits_of(outputs)
            if scores is None:
                raise ValueError(
                    f"Model {model.name!r} ends in a softmax, but its output does not carry the "
                    "softmax's input (Keras keeps it when it computes the softmax). Use "
                    "score='output' to explain the probability."
                )
        return activations[0], tf.cast(scores, tf.float32), tf.cast(outputs, tf.float32)

    def _targets_and_scores(self, scores, outputs, targets):
        top = tf.cast(tf.argmax(outputs, axis=-1, output_type=tf.int64), tf.int32)[:, None]
        resolved = tf.where(targets == TOP, top, targets)
        return resolved, tf.gather(scores, resolved, batch_dims=1)

    # -- step 2: gradients -------------------------------------------------------------
    def _one_target_graph(self, x, targets):
        with tf.GradientTape() as tape:
            activations, scores, outputs = self._forward(x, tape)
            resolved, y = self._targets_and_scores(scores, outputs, targets)
            total = tf.reduce_sum(y[:, 0])
        gradients = tape.gradient(total, activations)
        self._check_connected(gradients)
        return self._finish(activations, gradients[None], resolved, y, outputs)

    def _many_targets_graph(self, x, targets):
        with tf.GradientTape() as tape:
            activations, scores, outputs = self._forward(x, tape)
            resolved, y = self._targets_and_scores(scores, outputs, targets)
            totals = tf.reduce_sum(y, axis=0)  # (K,): images are independent at inference
        gradients = tape.jacobian(totals, activations, experimental_use_pfor=True)
        self._check_connected(gradients)
        return self._finish(activations, gradients, resolved, y, outputs)

    def _check_connected(self, gradients):
        if gradients is None:
            raise ValueError(
                f"The model's output does not depend on layer {self.layer!r}; choose a layer "
                "on the path from the input to the output."
            )

    # -- steps 3 and 4: channel weights, weighted sum, ReLU, normalisation ---------------
    @staticmethod
    def channel_weights(activations, gradients):
        """Grad-CAM's channel weights: the gradients averaged over height and width.

        Args:
            activations: float32 tensor ``(N, h, w, C)``.
            gradients: float32 tensor ``(K, N, h, w, C)``, one gradient per target.

        Returns:
            float32 tensor ``(K, N, C)``.
        """
        del activations  # Grad-CAM uses the gradients only; variants may use both
        return tf.reduce_mean(gradients, axis=[2, 3])

    def _finish(self, activations, gradients, resolved, y, outputs):
        activations = tf.cast(activations, tf.float32)
        gradients = tf.cast(gradients, tf.float32)
        weights = self.channel_weights(activations, gradients)
        maps = tf.nn.relu(tf.einsum("nhwc,knc->nkhw", activations, weights))
        peaks = tf.reduce_max(maps, axis=[2, 3], keepdims=True)
        maps = tf.math.divide_no_nan(maps, peaks)
        probas = tf.gather(outputs, resolved, batch_dims=1)
        return maps, resolved, y, probas, outputs

    # -- public API ----------------------------------------------------------------------
    def _prepare(self, docs, preprocess) -> tuple[np.ndarray, np.ndarray]:
        """Check ``docs``; return the model's input batch and the pictures' batch."""
        pictures = to_batch(docs, name="docs")
        batch = pictures
        if preprocess is not None:
            # a copy: preprocess_input functions may work in place (resnet50's does)
            batch = to_batch(
                preprocess(np.array(pictures, dtype=np.float32)), name="the output of preprocess"
            )
            if len(batch) != len(pictures):
                raise ValueError(
                    f"preprocess returned {len(batch)} images for {len(pictures)}; it must keep "
                    "the batch as it is."
                )
        expected = self._input_shape
        if len(expected) != 3 or any(
            e is not None and e != got for e, got in zip(expected, batch.shape[1:])
        ):
            what = "preprocess made a batch" if preprocess is not None else "got a batch"
            raise ValueError(
                f"Model {self.model.name!r} expects images of shape {expected} "
                f"(height, width, channels); {what} of shape {batch.shape}. Load images "
                f"with gradcam.image_from_path(path, image_shape={expected[:2]})."
            )
        return batch.astype(self._input_dtype, copy=False), pictures

    def compute(self, docs, targets=None, batch_size: int = 32) -> GradCAMResult:
        """Run Grad-CAM on a batch and return maps, targets, scores and outputs.

        Args:
            docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``: preprocessed for the
                model, or raw (RGB, 0..255) when the engine has a ``preprocess``.
            targets: ``None`` (each image's top prediction), a class index or name, a list
                of them shared by all images, or a 2-D integer array with one row per image.
                Defaults to ``None``.
            batch_size: how many images go through the model at once. Defaults to ``32``.

        Returns:
            A :class:`GradCAMResult`.

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; a target index is out of range or a class name is unknown.
        """
        batch, _ = self._prepare(docs, self.preprocess)
        return self._run(batch, targets, batch_size)

    def _run(self, batch: np.ndarray, targets, batch_size) -> GradCAMResult:
        """:meth:`compute` on a batch already checked by :meth:`_prepare`."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        wanted = resolve_targets(targets, self.classes, len(batch))
        graph = self._one_target if wanted.shape[1] == 1 else self._many_targets
        parts = []
        for start in range(0, len(batch), batch_size):
            stop = start + batch_size
            outputs = graph(tf.constant(batch[start:stop]), tf.constant(wanted[start:stop]))
            parts.append([t.numpy() for t in outputs])
        maps, resolved, scores, probas, outputs = (np.concatenate(p) for p in zip(*parts))
        empty = ~maps.any(axis=(2, 3))
        if empty.any():
            self._warn_empty(empty, resolved)
        return GradCAMResult(
            heatmaps=maps,
            targets=resolved,
            scores=scores,
            probas=probas if self._softmax else None,
            outputs=outputs,
            empty=empty,
        )

    def _warn_empty(self, empty: np.ndarray, resolved: np.ndarray) -> None:
        if self._warned_empty:
            return
        self._warned_empty = True
        n, k = np.argwhere(empty)[0]
        target = int(resolved[n, k])
        name = self.classes.name(target)
        label = f"{target} ({name})" if name else str(target)
        score = "the logit" if self._logits else "the output"
        warnings.warn(
            f"{int(empty.sum())} of {empty.size} Grad-CAM maps are all zero (the first: class "
            f"{label} of image {n}) at layer {self.layer!r}: "
            f"no part of that layer's output raises {score} of the class (after Flatten and "
            "Dense, for example, the gradients average out over the map). Try score='output' "
            "or another layer (layer=...). TargetExplanation.empty and GradCAMResult.empty "
            "mark empty maps; this warning is shown once per engine.",
            UserWarning,
            stacklevel=_stacklevel_outside_package(),
        )

    def heatmaps(self, docs, targets=None, batch_size: int = 32) -> np.ndarray:
        """Grad-CAM maps for a batch of images.

        Args:
            docs: as for :meth:`compute`.
            targets: as for :meth:`compute`. Defaults to ``None``.
            batch_size: as for :meth:`compute`. Defaults to ``32``.

        Returns:
            float32 array ``(N, K, h, w)`` in [0, 1], at the layer's resolution.

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; a target index is out of range or a class name is unknown.
        """
        return self.compute(docs, targets, batch_size).heatmaps

    def explain(self, docs, targets=None, images=None, batch_size: int = 32) -> list[Explanation]:
        """Explain a batch of images: one :class:`~gradcam.Explanation` per image.

        Args:
            docs: as for :meth:`compute`.
            targets: as for :meth:`compute`. Defaults to ``None``.
            images: the images to draw the maps on (PIL images or arrays), one per image;
                ``None`` draws on the raw images when the engine has a ``preprocess``, else
                rebuilds them from ``docs``. Defaults to ``None``.
            batch_size: as for :meth:`compute`. Defaults to ``32``.

        Returns:
            A list of :class:`~gradcam.Explanation`, in the order of ``docs``.

        Raises:
            TypeError: ``docs`` is not a numeric array; a target of another type.
            ValueError: ``docs`` has the wrong rank or shape for the model, or NaN / inf
                values; ``images`` has another length than ``docs``; a target index is out
                of range or a class name is unknown.
        """
        return self._explain(docs, targets, images, batch_size, self.preprocess)

    def _explain(self, docs, targets, images, batch_size, preprocess) -> list[Explanation]:
        """:meth:`explain` with the given ``preprocess`` in place of the engine's."""
        batch, pictures = self._prepare(docs, preprocess)
        count = len(batch)
        if images is not None and len(images) != count:
            raise ValueError(f"images has {len(images)} entries for {count} images.")
        result = self._run(batch, targets, batch_size)
        explanations = []
        for n in range(count):
            image = images[n] if images is not None else pictures[n]
            targets_n = [
                TargetExplanation(
                    target=int(result.targets[n, k]),
                    name=self.classes.name(int(result.targets[n, k])),
                    score=float(result.scores[n, k]),
                    proba=None if result.probas is None else float(result.probas[n, k]),
                    heatmap=result.heatmaps[n, k],
                )
                for k in range(result.targets.shape[1])
            ]
            if not hasattr(image, "mode"):
                image = image_from_array(image)
            explanations.append(Explanation(image=image.convert("RGB"), targets=targets_n, layer=self.layer))
        return explanations
