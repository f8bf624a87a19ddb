"""The :class:`Explainer`: the callable class that Ray Data's actors run, one model each."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

from gradcam.image import to_rgb, doc_from_image
from gradcam.models.registry import DEFAULT_MODEL, image_shape_for, load_model, preprocess_function
from gradcam.ray.arguments import checked
from gradcam.ray.columns import batch_targets, uses_columns
from gradcam.targets import resolve_targets

#: The columns :class:`Explainer` adds.
RESULT_COLUMNS = ("target", "score", "proba", "heatmap")


def _build_model(model, image_size):
    """Build the model inside the actor: ``(keras_model, builtin)``, ``builtin`` the
    :class:`~gradcam.models.registry.BuiltinModel` or ``None``."""
    if not isinstance(model, (str, os.PathLike)):
        import keras

        built = model()
        if not isinstance(built, keras.Model):
            raise TypeError(f"model() must return a Keras model; it returned {type(built).__name__}.")
        return built, None
    return load_model(os.fspath(model), image_size)


def _preprocess_function(preprocess, builtin) -> Callable | None:
    if preprocess is None or callable(preprocess):
        return preprocess
    return preprocess_function(preprocess, builtin)


class Explainer:
    """A callable class for ``ray.data.Dataset.map_batches``: class-activation maps (Grad-CAM
    by default) for a batch of images, the model built once per actor.

    It takes a batch (a dict of numpy arrays, ``batch_format="numpy"``) with an
    ``"image"`` column, as ``ray.data.read_images`` gives it, and returns the batch without
    that column, with these added:

    * ``target``: int64 ``(K,)`` per row, the class explained by each map (-1 for a
      target that is not one class: ``Segmentation``, ``Similarity``, ``Output``, ``Box``,
      a function);
    * ``score``: float32 ``(K,)``, the explained score (the logit of a softmax model);
    * ``proba``: float32 ``(K,)``, the target's softmax probability (NaN when the model
      does not end in a softmax, or the target is not one class);
    * ``heatmap``: float32 ``(K, h, w)`` in [0, 1], at the layer's resolution.

    Other columns (a ``"path"`` column, labels) are kept as they are. Images may have any
    size: each is resized to the model's input size as :func:`gradcam.image_from_path`
    does (bilinear, on 8-bit RGB values 0..255); one-channel and RGBA images are
    converted to RGB as :func:`gradcam.load_image` converts files. Images that already
    have the model's size are used as they are (float arrays too).

    Args:
        model: a built-in model's name (one of
            :data:`gradcam.models.registry.BUILTIN_MODELS`), the path of a ``.keras`` file
            (readable where the actor runs), or a function without arguments that returns
            a Keras model.
            Defaults to ``"efficientnet_lite0"``.
        method: the class-activation method, a name of :data:`gradcam.methods.METHODS`
            (``"gradcam"``, ``"gradcam++"``, ``"scorecam"``...). Defaults to ``"gradcam"``.
        layer: the layer to explain, as for :class:`gradcam.GradCAM`. Defaults to ``None``
            (chosen automatically).
        score: ``"auto"``, ``"logit"`` or ``"output"``, as for :class:`gradcam.GradCAM`.
            Defaults to ``"auto"``.
        targets: ``None`` (each image's top prediction); class indices and/or names; a
            :mod:`gradcam.targets` object (``Segmentation``, ``Similarity``, ``Output``,
            ``Box``, ``Contrast``, ``Function``) or a function of the model's outputs, as
            :meth:`gradcam.GradCAM.compute` takes them; a :class:`~gradcam.ray.FromColumns`
            whose per-image parameters (masks, embeddings, boxes) are columns of the batch;
            or a list of these, explained for every image. Defaults to ``None``.
        preprocess: ``"auto"`` (the built-in models' own, ``(x - 127) / 128``; none for
            other models), a name that ``gradcam explain --preprocess`` takes
            (``"none"``, ``"lite"``, ``"tf"``, ``"caffe"``, ``"torch"``), a function
            applied to float32 RGB 0..255 batches, or ``None`` (images go to the model as
            RGB 0..255). Defaults to ``"auto"``.
        image_size: ``(height, width)`` the model takes, or ``None`` for its input size
            (built-in models are built for ``image_size`` when given). Defaults to ``None``.
        method_options: the method's own keyword arguments, e.g. ``{"max_channels":
            256}`` for Score-CAM (see each method's class). Defaults to ``None``.
        eigen_smooth: each map is the first principal component of the method's
            weighted activations (see :meth:`gradcam.GradCAM.compute`). Defaults to ``False``.
        aug_smooth: each map is the mean of the maps of the image flipped and scaled by
            0.9, 1.0 and 1.1 (see :meth:`gradcam.GradCAM.compute`). Defaults to ``False``.

    Raises:
        TypeError: ``model`` is neither a name, a path nor a function, or the function
            returns something else than a Keras model; an option the method does not
            take.
        ValueError: an unknown method, model name or preprocessing; a model file that
            cannot be loaded; a bad ``image_size``; a layer, score or target the model
            does not have.

    Example:
        >>> ds = ray.data.read_images("s3://bucket/photos/", mode="RGB", include_paths=True)
        >>> explained = ds.map_batches(
        ...     Explainer, fn_constructor_kwargs={"model": "efficientnet_lite0"},
        ...     batch_size=32, batch_format="numpy", num_cpus=ACTOR_CPUS,
        ...     compute=ray.data.ActorPoolStrategy(size=2))
    """

    def __init__(self, model=DEFAULT_MODEL, method: str = "gradcam", layer=None, score: str = "auto",
                 targets=None, preprocess="auto", image_size=None, method_options=None, eigen_smooth: bool = False,
                 aug_smooth: bool = False):
        size = checked(model, method, score, preprocess, image_size, method_options, eigen_smooth, aug_smooth)
        self._smoothing = {"eigen_smooth": bool(eigen_smooth), "aug_smooth": bool(aug_smooth)}
        keras_model, builtin = _build_model(model, size)
        from gradcam import hub
        from gradcam.methods import build_engine

        # the window a keras-hub classifier's preprocessor keeps, read from each picture
        self._view = functools.partial(hub.picture_view, keras_model)

        self._image_shape = image_shape_for(keras_model, size)
        self._engine = build_engine(keras_model, method, layer=layer, score=score,
                                    preprocess=_preprocess_function(preprocess, builtin), options=method_options)
        self._targets = targets
        if targets is not None and _class_targets(targets):  # checked once, here: a class name the model lacks
            self._targets = resolve_targets(targets, self._engine.classes, 1)[0].tolist()  # stops the actor
        self._empty = None
        if not uses_columns(targets):  # else built from the first batch's columns
            blank = np.zeros((1, *self._image_shape, 3), np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # about the blank image, e.g. an all-zero map
                try:  # compiles, gives the shapes
                    self._set_empty(self._engine.compute(blank, targets=self._targets, **self._smoothing))
                except ValueError as error:
                    if "for 1 images" not in str(error):
                        raise
                    raise ValueError(f"{error} The images reach the actors in batches: give per-image "
                                     "parameters as columns, with gradcam.ray.FromColumns.") from None

    def _set_empty(self, result) -> None:
        self._empty = {name: np.zeros((0, *value.shape[1:]), value.dtype)
                       for name, value in self._columns(result).items()}

    def __call__(self, batch: dict) -> dict:
        """Explain one batch.

        Args:
            batch: a dict of numpy arrays with an ``"image"`` column: ``(H, W, 3)``,
                ``(H, W)`` or ``(H, W, 4)`` images, 8-bit (or 16-bit gray) of any size, or
                numeric arrays of the model's size.

        Returns:
            The batch without ``"image"``, with the result columns added.

        Raises:
            ValueError: no ``"image"`` column; a column named like a result column; an
                image that is neither of the model's size nor an 8-bit (or 16-bit gray)
                image.
        """
        if "image" not in batch:
            raise ValueError(f"The batch has no 'image' column; its columns: {', '.join(map(repr, batch))}.")
        clash = [name for name in RESULT_COLUMNS if name in batch]
        if clash:
            raise ValueError(f"The batch already has a column {clash[0]!r}; the explanations add the columns "
                             f"{', '.join(map(repr, RESULT_COLUMNS))}. Rename or drop it first.")
        out = {name: value for name, value in batch.items() if name != "image"}
        images = batch["image"]
        if len(images) == 0:
            if self._empty is None:  # column targets, no batch yet: one blank row of the columns' shapes
                ones = {name: np.ones((1, *np.shape(column)[1:]), np.float32) for name, column in out.items()}
                blank = np.zeros((1, *self._image_shape, 3), np.float32)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._set_empty(self._engine.compute(blank, targets=batch_targets(self._targets, ones),
                                                         **self._smoothing))
            return {**out, **self._empty}
        docs = np.stack([self._model_image(image) for image in images])
        result = self._engine.compute(docs, targets=batch_targets(self._targets, batch), batch_size=len(docs),
                                      **self._smoothing)
        if self._empty is None:
            self._set_empty(result)
        return {**out, **self._columns(result)}

    @staticmethod
    def _columns(result) -> dict:
        probas = result.probas if result.probas is not None else np.full(result.scores.shape, np.nan)
        return {"target": result.targets.astype(np.int64), "score": result.scores.astype(np.float32),
                "proba": probas.astype(np.float32), "heatmap": result.heatmaps}

    def _model_image(self, image) -> np.ndarray:
        return model_image(image, self._image_shape, self._view)


def _class_targets(targets) -> bool:
    """Whether ``targets`` are class indices and names only (one, or a list)."""
    items = targets if isinstance(targets, (list, tuple)) else [targets]
    return all(isinstance(t, str) or (isinstance(t, (int, np.integer)) and not isinstance(t, bool)) for t in items)


def model_image(image, image_shape, view) -> np.ndarray:
    """One image as float32 ``(height, width, 3)`` RGB 0..255 of the model's size
    ``image_shape`` (resized from ``view(picture)``, the window a keras-hub classifier's
    preprocessor keeps).

    Raises:
        ValueError: an image that is neither of the model's size nor an 8-bit (or 16-bit
            gray) image.
    """
    array = np.asarray(image)
    if array.shape == (*image_shape, 3):
        return array.astype(np.float32, copy=False)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    channels = 1 if array.ndim == 2 else array.shape[-1] if array.ndim == 3 else 0
    if not ((array.dtype == np.uint8 and channels in (1, 3, 4))
            or (array.dtype == np.uint16 and channels == 1)):
        raise ValueError(
            f"Cannot explain an image of shape {np.shape(image)} and dtype {array.dtype}: expected "
            f"8-bit images (H, W, 3), (H, W) or (H, W, 4) of any size (as ray.data.read_images "
            f"gives them), or arrays of the model's size {(*image_shape, 3)}."
        )
    return doc_from_image(view(to_rgb(Image.fromarray(array))), image_shape)[0]
