"""The Grad-CAM engine: one compiled forward + backward pass per batch.

This is the only module that touches gradients. Its steps are kept apart so that other
class-activation methods can plug in:

1. capture the target layer's activations ``A`` and the score ``y`` (pre-softmax logits
   when the model ends in a softmax) during one forward pass of the user's model;
2. differentiate each target score with respect to ``A``;
3. turn activations and gradients into channel weights (:meth:`GradCAM.channel_weights`,
   the one step in which Grad-CAM's variants differ);
4. weight, ReLU and normalise each map to [0, 1].
"""

from __future__ import annotations

import contextlib
import weakref
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from gradcam.explanation import Explanation, TargetExplanation
from gradcam.image import image_from_array, to_batch
from gradcam.layers import find_layer
from gradcam.targets import TOP, ClassNames, resolve_targets

SCORES = ("auto", "logit", "output")


class GradCAMResult(NamedTuple):
    """Everything one engine run computes, as numpy arrays.

    Attributes:
        heatmaps: float32 ``(N, K, h, w)`` in [0, 1], one map per image and target.
        targets: int ``(N, K)``, the class index explained by each map.
        scores: float32 ``(N, K)``, the explained score ``y_c`` (a logit or an output).
        probas: float32 ``(N, K)`` softmax probabilities of the targets, or ``None`` when
            the model does not end in a softmax.
        outputs: float32 ``(N, classes)``, the model's outputs.
    """

    heatmaps: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    probas: np.ndarray | None
    outputs: np.ndarray


def _is_softmax(function) -> bool:
    return getattr(function, "__name__", None) == "softmax"


def find_softmax(model: keras.Model):
    """Find the softmax that ends ``model``, without changing the model.

    Returns:
        ``(layer, "activation")`` for a layer whose ``activation`` is softmax (e.g. a
        ``Dense(..., activation="softmax")``), ``(layer, "call")`` for a ``Softmax`` or
        ``Activation("softmax")`` layer, or ``None`` when the model does not end in a softmax.
    """
    layer = model
    while isinstance(layer, keras.Model):
        outputs = getattr(layer, "outputs", None)
        if not outputs or len(outputs) != 1:
            return None
        history = getattr(outputs[0], "_keras_history", None)
        layer = history.operation if history is not None else layer.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return layer, "call"
    if _is_softmax(getattr(layer, "activation", None)):
        return layer, ("call" if isinstance(layer, keras.layers.Activation) else "activation")
    return None


@contextlib.contextmanager
def _patched(patches):
    """Temporarily set instance attributes, restoring them on exit (even on error)."""
    saved = []
    try:
        for obj, name, value in patches:
            saved.append((obj, name, name in vars(obj), vars(obj).get(name)))
            object.__setattr__(obj, name, value)
        yield
    finally:
        for obj, name, had, old in reversed(saved):
            if had:
                object.__setattr__(obj, name, old)
            else:
                object.__delattr__(obj, name)


def _model_signature(model: keras.Model) -> tuple[tuple, object]:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} is not built: build it with an Input layer (or call it "
            "once on an image batch) before explaining it."
        )
    if len(inputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(inputs)} inputs; Grad-CAM needs one image input.")
    outputs = model.outputs
    if len(outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(outputs)} outputs; Grad-CAM explains a model with "
            "one output. Build a keras.Model(model.inputs, model.outputs[i]) for the output to explain."
        )
    if len(outputs[0].shape) != 2:
        raise ValueError(
            f"Model {model.name!r} has output shape {tuple(outputs[0].shape)}; Grad-CAM needs a "
            "classifier output of shape (batch, classes)."
        )
    return tuple(inputs[0].shape), inputs[0].dtype


class GradCAM:
    """Reusable Grad-CAM engine for one model and one layer.

    Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", arXiv 1610.02391) weighs each channel ``k`` of a
    convolutional layer's activations ``A`` by the mean gradient of the class score:
    ``alpha_k = mean_ij d y_c / d A_k[i, j]``, then ``L = ReLU(sum_k alpha_k A_k)``,
    scaled to ``L / max(L)``. A map with no positive evidence stays all zero.

    ``y_c`` is the pre-softmax logit when the model ends in a softmax (read during the
    forward pass; the model is not changed or rebuilt), otherwise the model's output.

    The gradient computation is compiled once (``tf.function`` with a fixed input
    signature): calls with any batch size and any targets reuse it. Several targets share
    one forward pass. The model is held by the engine; the engine adds nothing to it.

    Args:
        model: a built Keras 3 model with one image input and one ``(batch, classes)``
            output: Sequential, Functional, or either with nested models inside.
        layer: the layer to explain: ``None`` (the last layer with a 4-D output, looking
            inside nested models), a name, an ``"outer/inner"`` path, an index into
            ``model.layers``, or a ``keras.layers.Layer``. Defaults to ``None``.
        score: ``"auto"`` (logits when the model ends in a softmax, else the output),
            ``"logit"`` (require a final softmax and explain its input) or ``"output"``
            (explain the model's output as it is, e.g. a probability). Defaults to ``"auto"``.
        class_names: names of the model's classes, for targets given by name and for
            labels; ImageNet's names are used for 1000-class models when ``None``.
            Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: the model has several inputs or outputs, or is not built; the layer
            cannot be found or has no 4-D output; ``score`` is unknown or ``"logit"``
            without a final softmax.

    Example:
        >>> cam = GradCAM(model)
        >>> maps = cam.heatmaps(batch, targets=["tiger cat", "espresso"])
        >>> maps.shape
        (32, 2, 7, 7)
    """

    def __init__(self, model, layer=None, score: str = "auto", class_names=None):
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model; got {type(model).__name__}.")
        input_shape, input_dtype = _model_signature(model)
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}; got {score!r}.")
        softmax = find_softmax(model)
        if score == "logit" and softmax is None:
            raise ValueError(
                f"score='logit' needs a model that ends in a softmax; model {model.name!r} "
                "does not. Use score='output'."
            )
        ref = find_layer(model, layer)
        self.layer: str = ref.path
        self.score = score
        self.classes = ClassNames(model.outputs[0].shape[-1], class_names)
        self.trace_count = 0
        self._input_shape = input_shape[1:]
        self._input_dtype = keras.backend.standardize_dtype(input_dtype)
        self._softmax = softmax
        self._logits = softmax is not None and score != "output"
        self._model_ref = weakref.ref(model)
        self._layer_ref = weakref.ref(ref.layer)
        self._strong_model = model  # set to None by caches that must not keep models alive
        x_spec = tf.TensorSpec((None,) + self._input_shape, self._input_dtype)
        t_spec = tf.TensorSpec((None, None), tf.int32)
        # autograph=False: the graph functions have no tensor-dependent Python control flow,
        # and converting them would add about half a second to the first call.
        compile_ = dict(input_signature=[x_spec, t_spec], autograph=False)
        self._one_target = tf.function(self._one_target_graph, **compile_)
        self._many_targets = tf.function(self._many_targets_graph, **compile_)

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
        activations, logits = [], []
        layer_call = layer.call

        def recording_call(*args, **kwargs):
            output = layer_call(*args, **kwargs)
            tape.watch(output)
            activations.append(output)
            return output

        patches = [(layer, "call", recording_call)]
        if self._logits:
            softmax_layer, where = self._softmax
            original = getattr(softmax_layer, where)

            def recording_softmax(inputs, *args, **kwargs):
                logits.append(inputs)
                return original(inputs, *args, **kwargs)

            patches.append((softmax_layer, where, recording_softmax))
        with _patched(patches):
            outputs = model(x, training=False)
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
        outputs = tf.cast(outputs, tf.float32)
        scores = tf.cast(logits[0], tf.float32) if self._logits else outputs
        return activations[0], scores, outputs

    def _targets_and_scores(self, scores, outputs, targets):
        top = tf.cast(tf.argmax(outputs, axis=-1, output_type=tf.int64), tf.int32)[:, None]
        resolved = tf.where(targets == TOP, top, targets)
        return resolved, tf.gather(scores, resolved, batch_dims=1)

    # -- step 2: gradients -------------------------------------------------------------
    def _one_target_graph(self, x, targets):
        self.trace_count += 1
        with tf.GradientTape() as tape:
            activations, scores, outputs = self._forward(x, tape)
            resolved, y = self._targets_and_scores(scores, outputs, targets)
            total = tf.reduce_sum(y[:, 0])
        gradients = tape.gradient(total, activations)
        self._check_connected(gradients)
        return self._finish(activations, gradients[None], resolved, y, outputs)

    def _many_targets_graph(self, x, targets):
        self.trace_count += 1
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
    def _check_input(self, docs) -> np.ndarray:
        batch = to_batch(docs, name="docs")
        expected = self._input_shape
        if len(expected) != 3 or any(
            e is not None and e != got for e, got in zip(expected, batch.shape[1:])
        ):
            raise ValueError(
                f"Model {self.model.name!r} expects images of shape {expected} "
                f"(height, width, channels); got a batch of shape {batch.shape}. Load images "
                f"with gradcam.image_from_path(path, image_shape={expected[:2]})."
            )
        return batch.astype(self._input_dtype, copy=False)

    def compute(self, docs, targets=None, batch_size: int = 32) -> GradCAMResult:
        """Run Grad-CAM on a batch and return maps, targets, scores and outputs.

        Args:
            docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``, preprocessed for the model.
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
        return self._run(self._check_input(docs), targets, batch_size)

    def _run(self, batch: np.ndarray, targets, batch_size) -> GradCAMResult:
        """:meth:`compute` on a batch already checked by :meth:`_check_input`."""
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
        return GradCAMResult(
            heatmaps=maps,
            targets=resolved,
            scores=scores,
            probas=probas if self._softmax is not None else None,
            outputs=outputs,
        )

    def heatmaps(self, docs, targets=None, batch_size: int = 32) -> np.ndarray:
        """Grad-CAM maps for a batch of images.

        Args and Raises: as for :meth:`compute`.

        Returns:
            float32 array ``(N, K, h, w)`` in [0, 1], at the layer's resolution.
        """
        return self.compute(docs, targets, batch_size).heatmaps

    def explain(self, docs, targets=None, images=None, batch_size: int = 32) -> list[Explanation]:
        """Explain a batch of images: one :class:`~gradcam.Explanation` per image.

        Args:
            docs, targets, batch_size: as for :meth:`compute`.
            images: the images to draw the maps on (PIL images or arrays), one per image;
                ``None`` rebuilds them from ``docs``. Defaults to ``None``.

        Returns:
            A list of :class:`~gradcam.Explanation`, in the order of ``docs``.

        Raises:
            As for :meth:`compute`; ValueError when ``images`` has another length.
        """
        batch = self._check_input(docs)
        count = len(batch)
        if images is not None and len(images) != count:
            raise ValueError(f"images has {len(images)} entries for {count} images.")
        result = self._run(batch, targets, batch_size)
        explanations = []
        for n in range(count):
            image = images[n] if images is not None else batch[n]
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
