"""The ELI5-style entry points: ``explain_prediction`` and ``show_prediction``."""

from __future__ import annotations

import warnings

from PIL import Image

from gradcam.explanation import Explanation
from gradcam.methods.base import Method
from gradcam.methods.factory import EngineCache
from gradcam.model_input import checked_batch
from gradcam.render import format_as_image

#: The engines of :func:`explain_prediction` and :func:`show_prediction`, per model (held
#: weakly: an entry goes when its model does). An engine serves every preprocess function
#: (explain_prediction passes it per call), so a new lambda on each call neither grows the
#: cache nor compiles anything again.
ENGINES = EngineCache()
_FORMAT_ARGS = ("resampling_filter", "colormap", "alpha_limit")


def engine_for(model, layer=None, score: str = "auto", class_names=None, method: str = "gradcam",
               reshape=None, method_options=None) -> Method:
    """Return the cached engine of ``method`` for this model and layer (deprecated: use
    ``gradcam.api.ENGINES.get`` or :func:`gradcam.methods.build_engine`).

    Args:
        model: as for :class:`~gradcam.GradCAM`.
        layer: as for :class:`~gradcam.GradCAM`. Defaults to ``None``.
        score: as for :class:`~gradcam.GradCAM`. Defaults to ``"auto"``.
        class_names: as for :class:`~gradcam.GradCAM`. Defaults to ``None``.
        method: a name of :data:`gradcam.METHODS`. Defaults to ``"gradcam"``.
        reshape: as for :class:`~gradcam.GradCAM`. Defaults to ``None``.
        method_options: the method's own keyword arguments. Defaults to ``None``.

    Returns:
        The engine :func:`explain_prediction` uses, without ``preprocess``.

    Raises:
        TypeError: as for :meth:`gradcam.methods.EngineCache.get`.
        ValueError: as for :meth:`gradcam.methods.EngineCache.get`.

    Warns:
        DeprecationWarning: always.
    """
    warnings.warn("gradcam.api.engine_for is deprecated; use gradcam.api.ENGINES.get(model, method, ...) "
                  "or gradcam.methods.build_engine.", DeprecationWarning, stacklevel=2)
    return ENGINES.get(model, method, layer=layer, score=score, class_names=class_names, reshape=reshape,
                       options=method_options)


def explain_prediction(model, doc, targets=None, layer=None, image=None, score: str = "auto",
                       class_names=None, preprocess=None, method: str = "gradcam",
                       reshape=None, method_options=None, eigen_smooth: bool = False,
                       aug_smooth: bool = False) -> Explanation:
    """Explain one prediction of a Keras image classifier with Grad-CAM or another method.

    Args:
        model: a built Keras model with one image input and one ``(batch, classes)`` output.
        doc: one image, ``(1, H, W, C)`` or ``(H, W, C)``: preprocessed for the model, or
            raw (RGB, 0..255, as :func:`image_from_path` returns it) when ``preprocess``
            is given.
        targets: ``None`` for the top prediction, or a list of class indices and/or class
            names (``["tiger cat", 243]``), :mod:`gradcam.targets` objects or functions of
            the model's outputs; several targets share one forward pass.
            Defaults to ``None``.
        layer: the layer to explain: ``None`` (automatic: what the head's pooling
            receives, or a Vision Transformer's last block's first normalisation; inside
            nested models too), a name or ``"outer/inner"`` path, ``"input of <name>"``,
            an index or a ``keras.layers.Layer``; a token layer's output is read as a grid
            of patches. Defaults to ``None``.
        image: the picture to draw on (a PIL image or an array); ``None`` draws on ``doc``
            itself (rebuilt as a picture when it is preprocessed). Defaults to ``None``.
        score: ``"auto"``, ``"logit"`` or ``"output"``; see :class:`GradCAM`.
            Defaults to ``"auto"``.
        class_names: names of the model's classes (ImageNet's for 1000-class models when
            ``None``). Defaults to ``None``.
        preprocess: the model's preprocessing (e.g. ``resnet50.preprocess_input``), applied
            to a float32 copy of ``doc``, which is left as it is; the explanation is then
            drawn on ``doc`` in its true colours. Defaults to ``None`` (``doc`` is already
            preprocessed).
        method: the class-activation method, a name of :data:`gradcam.METHODS`
            (``"gradcam"``, ``"gradcam++"``, ``"ablationcam"``...); its engine is built
            once per model, layer and score, and reused. Defaults to ``"gradcam"``.
        reshape: a function that turns the layer's output for a batch into ``(batch,
            height, width, channels)``, for token layouts other than a square grid (with
            or without a class token); see :class:`GradCAM`. Defaults to ``None``.
        method_options: the method's own keyword arguments, e.g.
            ``{"max_channels": 256}`` for Score-CAM or ``{"perturbation_batch": 64}``
            for Ablation-CAM (see each method's class). Defaults to ``None``.
        eigen_smooth: the map is the first principal component of the method's weighted
            activations (see :meth:`GradCAM.compute`). Defaults to ``False``.
        aug_smooth: the map is the mean of the maps of the image flipped and scaled by
            0.9, 1.0 and 1.1 (see :meth:`GradCAM.compute`). Defaults to ``False``.

    Returns:
        An :class:`Explanation` with one :class:`TargetExplanation` per target.

    Raises:
        TypeError: ``doc`` is not a numeric array; ``model`` is not a Keras model;
            ``preprocess`` is not callable; a target of another type than int or str;
            an option the method does not take.
        ValueError: a batch of several images (use :meth:`GradCAM.explain`); a wrong
            shape, NaN or inf in ``doc``; an unknown method; a model that is not built,
            an unknown layer, score or class (see :class:`GradCAM`); a bad option value;
            ``eigen_smooth`` or ``aug_smooth`` that is not a bool.

    Warns:
        EmptyMapWarning: a map is all zero (a :class:`UserWarning`; see
            :class:`~gradcam.methods.base.EmptyMapWarning`).

    Example:
        >>> doc = image_from_path(gradcam.samples.path("chelsea"))
        >>> expl = explain_prediction(model, doc, targets=["tiger cat"],
        ...                           preprocess=efficientnet_lite.preprocess_input)
        >>> expl.targets[0].name, expl.layer
        ('tiger cat', 'top_activation')
    """
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be a function or None; got {preprocess!r}.")
    batch = checked_batch(doc, name="doc")
    engine = ENGINES.get(model, method, layer=layer, score=score, class_names=class_names, reshape=reshape,
                         options=method_options)
    if len(batch) != 1:
        raise ValueError(
            f"explain_prediction explains one image; doc is a batch of {len(batch)} "
            f"(shape {batch.shape}). Use gradcam.{type(engine).__name__}(model)"
            ".explain(docs) for batches."
        )
    images = None if image is None else [image]
    return engine.explain(batch, targets, images, batch_size=1, preprocess=preprocess, eigen_smooth=eigen_smooth,
                          aug_smooth=aug_smooth)[0]


def show_prediction(model, doc, **kwargs) -> Image.Image:
    """Explain a prediction and return its overlay image (shown inline in a notebook).

    ``explain_prediction`` followed by ``format_as_image``. With ``targets=None`` it
    prints which class it explains, e.g. ``Taking top prediction: 243 (bull mastiff)``.

    Args:
        model: as for :func:`explain_prediction`.
        doc: as for :func:`explain_prediction`.
        **kwargs: ``targets``, ``layer``, ``image``, ``score``, ``class_names``,
            ``preprocess``, ``method``, ``reshape``, ``method_options``, ``eigen_smooth``
            and ``aug_smooth`` go to
            :func:`explain_prediction`; ``resampling_filter``, ``colormap`` and
            ``alpha_limit`` go to :func:`format_as_image`.

    Returns:
        The heatmap laid over the image, as an RGBA PIL image.

    Raises:
        TypeError: ``doc`` is not a numeric array; ``model`` is not a Keras model;
            ``preprocess`` is not callable; an unknown keyword argument.
        ValueError: a batch of several images; a wrong shape, NaN or inf in ``doc``; an
            unknown method; a model that is not built, an unknown layer, score or class;
            an ``alpha_limit`` outside [0, 255] or an unknown colormap name.

    Warns:
        EmptyMapWarning: a map is all zero (a :class:`UserWarning`; see
            :class:`~gradcam.methods.base.EmptyMapWarning`).

    Example:
        >>> gradcam.show_prediction(model, doc, preprocess=efficientnet_lite.preprocess_input)
        Taking top prediction: 282 (tiger cat)
    """
    format_kwargs = {name: kwargs.pop(name) for name in _FORMAT_ARGS if name in kwargs}
    expl = explain_prediction(model, doc, **kwargs)
    if kwargs.get("targets") is None:
        print(f"Taking top prediction: {expl.targets[0].label}")
    return format_as_image(expl, **format_kwargs)


def maps(model, x, targets=None, layer=None, method: str = "gradcam", score: str = "auto"):
    """A method's maps as backend tensors that gradients flow through, for training.

    ``maps(model, x, targets)`` is :meth:`~gradcam.methods.base.Method.differentiable_maps`
    of the cached engine of ``method`` for ``model`` and ``layer``: the maps
    ``(N, K, h, w)`` in [0, 1], on the model's device, differentiable with respect to the
    model's weights, so that a loss on them (a penalty on the maps' mass outside an
    object's mask, say) can be part of a training step: under a ``tf.GradientTape`` on
    TensorFlow, by autograd on PyTorch, and on JAX in a function of the weights that calls
    the model under ``keras.StatelessScope``, eagerly or compiled (``tf.function``,
    ``jax.jit``: a ``train_step`` of one's own). Gradient-based methods only.

    Args:
        model: a built Keras classifier (see :class:`~gradcam.GradCAM`).
        x: the model's input batch ``(N, H, W, C)``, ready for the model (a backend
            tensor or an array).
        targets: ``None`` (each image's top prediction), a class index or name, a list of
            them shared by all images, a 2-D integer array with one row per image, or the
            batch's class labels as an integer backend tensor, ``(N,)`` or ``(N, K)``
            (``-1``: the top prediction), which may be an argument of a compiled training
            step (inside ``tf.function`` or ``jax.jit`` their range is not checked).
            Defaults to ``None``.
        layer: the layer to explain, as for :class:`~gradcam.GradCAM`. Defaults to ``None``.
        method: a name of :data:`gradcam.METHODS` whose maps come from one forward and
            backward pass (not ``"scorecam"`` or ``"ablationcam"``). Defaults to
            ``"gradcam"``.
        score: as for :class:`~gradcam.GradCAM`. Defaults to ``"auto"``.

    Returns:
        float32 backend tensor ``(N, K, h, w)``.

    Raises:
        TypeError: ``model`` is not a Keras model; a method that scores perturbations; a
            target of another type; labels in a tensor that is not of integers.
        ValueError: an unknown method, layer or score; ``x`` not of the model's input
            shape; a target out of range; labels in a tensor of another shape than
            ``(N,)`` or ``(N, K)``.

    Example:
        >>> with tf.GradientTape() as tape:  # labels: an int tensor (N,) of the batch
        ...     attention = gradcam.maps(model, x, labels)
        ...     loss = keras.ops.mean(attention * outside_mask)
        >>> tape.gradient(loss, model.trainable_variables)
    """
    return ENGINES.get(model, method, layer=layer, score=score).differentiable_maps(x, targets)
