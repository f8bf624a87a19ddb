"""Explaining whole datasets with Ray Data: Grad-CAM as batch inference on a Ray cluster.

:func:`explain_images` turns image files (a folder, a list of paths) or a
``ray.data.Dataset`` with an ``"image"`` column into a ``ray.data.Dataset`` of
explanations, one row per image, computed by a pool of :class:`Explainer` actors. Each
actor builds the model once, inside its own process (from a built-in model's name, a
``.keras`` file or a function), and runs the real engine (:class:`gradcam.GradCAM`) on
batch after batch; the dataset streams, so memory stays bounded whatever its size, and
nothing runs until the result is consumed (``write_parquet``, ``iter_batches``...).

Resources. An actor reserves half a CPU (:data:`ACTOR_CPUS`) and a task that reads files
a quarter (:data:`READ_CPUS`): on any node with one CPU or more, an actor and two reading
tasks fit side by side. Ray's CPU counts only decide where things may run; TensorFlow in
an actor uses every core of its node, and the reading tasks share them. With one CPU per
actor (Ray's default) the actors would reserve every CPU of a small machine, and the
tasks that read the images, which they wait for, could never start. The two counts
differ on purpose: Ray Data fuses consecutive steps with equal resources into one, and
an actor that decoded its own files would leave its model idle meanwhile.

Requires Ray Data: ``pip install "gradcam[ray]"``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

try:
    import ray
    import ray.data
except ImportError as error:  # the "ray" extra is not installed
    raise ImportError(
        "gradcam.ray needs Ray Data; install it with: pip install \"gradcam[ray]\" "
        f"(or \"ray[data]\"). ({error})"
    ) from error

from gradcam.cli.arguments import BUILTIN_MODELS, PREPROCESSING, UsageError
from gradcam.image import _check_image_shape, _to_rgb, doc_from_image, load_image
from gradcam.io.inputs import find_inputs
from gradcam.targets import resolve_targets

#: CPUs an :class:`Explainer` actor reserves (see :func:`explain_images`).
ACTOR_CPUS = 0.5
#: CPUs a task reading and decoding image files reserves.
READ_CPUS = 0.25
#: The columns :class:`Explainer` adds.
RESULT_COLUMNS = ("target", "score", "proba", "heatmap")
#: ``model=`` when none is given: the built-in EfficientNet-Lite0 with ImageNet weights.
DEFAULT_MODEL = BUILTIN_MODELS[0]


def engine_class(method: str):
    """The engine class that computes ``method``'s maps.

    Args:
        method: the name of a class-activation method; ``"gradcam"`` is supported.

    Returns:
        The engine class, e.g. :class:`gradcam.GradCAM`.

    Raises:
        ValueError: an unknown method; the message lists the supported ones.
    """
    from gradcam.methods import METHODS

    supported = {"gradcam": METHODS["gradcam"]}
    if not isinstance(method, str) or method not in supported:
        raise ValueError(f"method must be one of {', '.join(map(repr, supported))}; got {method!r}.")
    return supported[method]


def _check_model(model) -> None:
    """Check ``model=`` without building it: a built-in name, a model file, a function."""
    if isinstance(model, (str, os.PathLike)):
        from gradcam.cli.model import check_model_file

        try:
            check_model_file(os.fspath(model))
        except UsageError as error:
            raise ValueError(str(error)) from None
    elif not callable(model) or hasattr(model, "layers"):
        raise TypeError(
            f"model must be a built-in model's name ({', '.join(BUILTIN_MODELS)}), the path of a "
            f".keras file, or a function that returns a Keras model; got {type(model).__name__}. "
            "The model is built inside each actor: to use a model object, save it with "
            "model.save('model.keras') and pass the path, or pass a function that builds it."
        )


def _checked(model, method, score, preprocess, image_size):
    """Check the arguments that need no model: ``(engine class, image size or None)``."""
    from gradcam.methods.base import SCORES

    engine_type = engine_class(method)
    _check_model(model)
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}; got {score!r}.")
    if not (preprocess is None or callable(preprocess)
            or (isinstance(preprocess, str) and preprocess in ("auto", *PREPROCESSING))):
        raise ValueError(
            f"preprocess must be 'auto', one of {', '.join(map(repr, PREPROCESSING))}, a function "
            f"or None; got {preprocess!r}."
        )
    try:
        return engine_type, _check_image_shape(image_size)
    except ValueError:
        raise ValueError(
            f"image_size must be (height, width) with two positive integers, or None; got {image_size!r}."
        ) from None


def _build_model(model, image_size):
    """Build the model inside the actor: ``(keras_model, builtin)``."""
    if not isinstance(model, (str, os.PathLike)):
        import keras

        built = model()
        if not isinstance(built, keras.Model):
            raise TypeError(f"model() must return a Keras model; it returned {type(built).__name__}.")
        return built, False
    from gradcam.cli.model import load_model

    try:
        return load_model(os.fspath(model), image_size)
    except UsageError as error:
        raise ValueError(str(error)) from None


def _preprocess_function(preprocess, builtin: bool) -> Callable | None:
    if preprocess is None or callable(preprocess):
        return preprocess
    from gradcam.cli.model import preprocess_function

    return preprocess_function(("lite" if builtin else "none") if preprocess == "auto" else preprocess)


class Explainer:
    """A callable class for ``ray.data.Dataset.map_batches``: Grad-CAM maps for a batch of
    images, the model built once per actor.

    It takes a batch (a dict of numpy arrays, ``batch_format="numpy"``) with an
    ``"image"`` column, as ``ray.data.read_images`` gives it, and returns the batch without
    that column, with these added:

    * ``target``: int64 ``(K,)`` per row, the class explained by each map;
    * ``score``: float32 ``(K,)``, the explained score (the logit of a softmax model);
    * ``proba``: float32 ``(K,)``, the target's softmax probability (NaN when the model
      does not end in a softmax);
    * ``heatmap``: float32 ``(K, h, w)`` in [0, 1], at the layer's resolution.

    Other columns (a ``"path"`` column, labels) are kept as they are. Images may have any
    size: each is resized to the model's input size as :func:`gradcam.image_from_path`
    does (bilinear, on 8-bit RGB values 0..255); one-channel and RGBA images are
    converted to RGB as :func:`gradcam.load_image` converts files. Images that already
    have the model's size are used as they are (float arrays too).

    Args:
        model: a built-in model's name (``"efficientnet_lite0"``, ``"efficientnet_lite1"``,
            ``"efficientnet_lite2"``), the path of a ``.keras`` file (readable where the
            actor runs), or a function without arguments that returns a Keras model.
            Defaults to ``"efficientnet_lite0"``.
        method: the class-activation method; ``"gradcam"``. Defaults to ``"gradcam"``.
        layer: the layer to explain, as for :class:`gradcam.GradCAM`. Defaults to ``None``
            (chosen automatically).
        score: ``"auto"``, ``"logit"`` or ``"output"``, as for :class:`gradcam.GradCAM`.
            Defaults to ``"auto"``.
        targets: ``None`` (each image's top prediction), or class indices and/or names
            explained for every image. Defaults to ``None``.
        preprocess: ``"auto"`` (the built-in models' own, ``(x - 127) / 128``; none for
            other models), a name that ``gradcam explain --preprocess`` takes
            (``"none"``, ``"lite"``, ``"tf"``, ``"caffe"``, ``"torch"``), a function applied to float32 RGB 0..255
            batches, or ``None`` (images go to the model as RGB 0..255). Defaults to
            ``"auto"``.
        image_size: ``(height, width)`` the model takes, or ``None`` for its input size
            (built-in models are built for ``image_size`` when given). Defaults to ``None``.

    Raises:
        TypeError: ``model`` is neither a name, a path nor a function, or the function
            returns something else than a Keras model.
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
                 targets=None, preprocess="auto", image_size=None):
        engine_type, size = _checked(model, method, score, preprocess, image_size)
        keras_model, builtin = _build_model(model, size)
        from gradcam.cli.model import image_shape_for

        try:
            self._image_shape = image_shape_for(keras_model, size)
        except UsageError as error:
            raise ValueError(str(error)) from None
        self._engine = engine_type(keras_model, layer=layer, score=score,
                                   preprocess=_preprocess_function(preprocess, builtin))
        self._targets = None if targets is None else resolve_targets(targets, self._engine.classes, 1)[0].tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about the blank image, e.g. an all-zero map
            blank = self._engine.compute(np.zeros((1, *self._image_shape, 3), np.float32), targets=self._targets)
        self._empty = {name: np.zeros((0, *value.shape[1:]), value.dtype)
                       for name, value in self._columns(blank).items()}

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
            return {**out, **self._empty}
        docs = np.stack([self._model_image(image) for image in images])
        result = self._engine.compute(docs, targets=self._targets, batch_size=len(docs))
        return {**out, **self._columns(result)}

    @staticmethod
    def _columns(result) -> dict:
        probas = result.probas if result.probas is not None else np.full(result.scores.shape, np.nan)
        return {"target": result.targets.astype(np.int64), "score": result.scores.astype(np.float32),
                "proba": probas.astype(np.float32), "heatmap": result.heatmaps}

    def _model_image(self, image) -> np.ndarray:
        """One image as float32 ``(height, width, 3)`` RGB 0..255 of the model's size."""
        array = np.asarray(image)
        if array.shape == (*self._image_shape, 3):
            return array.astype(np.float32, copy=False)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if not ((array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))))
                or (array.dtype == np.uint16 and array.ndim == 2)):
            raise ValueError(
                f"Cannot explain an image of shape {np.shape(image)} and dtype {array.dtype}: expected "
                f"8-bit images (H, W, 3), (H, W) or (H, W, 4) of any size (as ray.data.read_images "
                f"gives them), or arrays of the model's size {(*self._image_shape, 3)}."
            )
        return doc_from_image(_to_rgb(Image.fromarray(array)), self._image_shape)[0]


def _read_files(batch: dict, image_size=None) -> dict:
    """Decode the files of a ``"path"`` column as :func:`gradcam.load_image` does, resized
    to ``image_size`` when it is given; 8-bit RGB arrays in an ``"image"`` column."""
    images = []
    for path in batch["path"]:
        image = load_image(str(path))
        images.append(np.asarray(image) if image_size is None
                      else doc_from_image(image, image_size)[0].astype(np.uint8))
    column = np.empty(len(images), dtype=object)
    column[:] = images
    if len({image.shape for image in images}) == 1:
        column = np.stack(images)
    return {**batch, "image": column}


def _source_dataset(source, image_size, batch_size: int):
    """``source`` as a dataset with an ``"image"`` column (and ``"path"`` for files)."""
    if isinstance(source, ray.data.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if not isinstance(source, Sequence) or not all(isinstance(p, (str, os.PathLike)) for p in source):
        raise TypeError(
            "source must be a folder, an image file, a list of paths or a ray.data.Dataset; "
            f"got {type(source).__name__}."
        )
    if not source:
        raise ValueError("source is an empty list; expected image files or folders.")
    paths = [item.path for item in find_inputs(source)]
    return ray.data.from_items([{"path": path} for path in paths]).map_batches(
        _read_files, fn_kwargs={"image_size": image_size}, batch_size=batch_size,
        batch_format="numpy", num_cpus=READ_CPUS)


def _check_concurrency(concurrency) -> None:
    def count(n):
        return isinstance(n, int) and not isinstance(n, bool) and n > 0

    if not (concurrency is None or count(concurrency) or (
            isinstance(concurrency, tuple) and len(concurrency) == 2 and all(map(count, concurrency))
            and concurrency[0] <= concurrency[1])):
        raise ValueError(
            f"concurrency must be None, a positive number of actors, or (min, max); got {concurrency!r}."
        )


def _actor_pool(concurrency, num_gpus: float):
    """The actor pool for ``concurrency``: ``None`` for one actor per node (per GPU
    with ``num_gpus``), ``n``, or ``(min, max)`` for a pool that grows with the work."""
    if isinstance(concurrency, tuple):
        return ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    if concurrency is not None:
        return ray.data.ActorPoolStrategy(size=concurrency)
    if not ray.is_initialized():
        ray.init()
    if num_gpus:
        return ray.data.ActorPoolStrategy(size=max(1, int(ray.cluster_resources().get("GPU", 0) // num_gpus)))
    return ray.data.ActorPoolStrategy(size=max(1, sum(node["Alive"] for node in ray.nodes())))


def explain_images(source, model=DEFAULT_MODEL, *, method: str = "gradcam", layer=None, score: str = "auto",
                   targets=None, preprocess="auto", image_size=None, batch_size: int = 32,
                   concurrency=None, num_gpus: float = 0) -> ray.data.Dataset:
    """Explain a whole set of images on Ray: a ``ray.data.Dataset`` of Grad-CAM maps.

    Files are found as ``gradcam explain`` finds them (folders recursively, hidden files
    skipped) and decoded as :func:`gradcam.load_image` decodes them, by Ray tasks of
    :data:`READ_CPUS` CPUs; on a cluster the files must be readable on every node (a
    shared file system); for object storage pass ``ray.data.read_images(...)``. The maps
    are computed by a pool of :class:`Explainer` actors of :data:`ACTOR_CPUS` CPUs (and
    ``num_gpus`` GPUs) each: half a CPU, so that an actor never takes the last CPU of a
    node from the tasks that read the images it waits for (with a full CPU per actor,
    two actors on a machine of two CPUs leave none, and the run never ends).
    TensorFlow in an actor uses all of its node's cores whatever it reserves.

    Nothing runs until the result is consumed: ``.write_parquet(folder)``,
    ``.iter_batches()``, ``.take_all()``...

    Args:
        source: a folder, an image file, a list of them, or a ``ray.data.Dataset`` with an
            ``"image"`` column (e.g. from ``ray.data.read_images(..., mode="RGB")``).
        model: a built-in model's name, a ``.keras`` file's path, or a function returning
            a Keras model, built in each actor (see :class:`Explainer`). Defaults to
            ``"efficientnet_lite0"``.
        method: the class-activation method; ``"gradcam"``. Defaults to ``"gradcam"``.
        layer: the layer to explain. Defaults to ``None`` (chosen automatically).
        score: ``"auto"``, ``"logit"`` or ``"output"``. Defaults to ``"auto"``.
        targets: ``None`` (top prediction) or class indices and/or names explained for
            every image. Defaults to ``None``.
        preprocess: as for :class:`Explainer`. Defaults to ``"auto"``.
        image_size: ``(height, width)`` for the model, or ``None`` for its input size.
            When given, files are resized where they are read, so smaller arrays travel
            to the actors. Defaults to ``None``.
        batch_size: images per model call. Defaults to ``32``.
        concurrency: the number of actors, ``(min, max)`` for a pool that grows with the
            work, or ``None`` for one per node of the cluster (one per ``num_gpus`` GPUs
            with ``num_gpus``). Defaults to ``None``.
        num_gpus: GPUs each actor reserves (``0.5`` puts two actors on a GPU). Defaults
            to ``0``.

    Returns:
        A lazy ``ray.data.Dataset`` with one row per image, holding the source's columns
        but ``"image"`` (files give a ``"path"`` column), and ``target``, ``score``,
        ``proba`` and ``heatmap`` (see :class:`Explainer`).

    Raises:
        TypeError: ``source`` or ``model`` of another type.
        ValueError: an unknown method, model name, score or preprocessing; a model file
            that is missing or not a Keras file; no image file in ``source``; a bad
            ``image_size``, ``batch_size``, ``concurrency`` or ``num_gpus``.

    Example:
        >>> explained = explain_images("photos/", model="efficientnet_lite0", concurrency=2)
        >>> explained.write_parquet("explanations/")
    """
    _, size = _checked(model, method, score, preprocess, image_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or not num_gpus >= 0:
        raise ValueError(f"num_gpus must be a number of GPUs, 0 or more; got {num_gpus!r}.")
    _check_concurrency(concurrency)
    dataset = _source_dataset(source, size, batch_size)
    settings = dict(model=model, method=method, layer=layer, score=score, targets=targets,
                    preprocess=preprocess, image_size=size)
    return dataset.map_batches(
        Explainer, fn_constructor_kwargs=settings, batch_size=batch_size, batch_format="numpy",
        compute=_actor_pool(concurrency, num_gpus), num_cpus=ACTOR_CPUS, num_gpus=num_gpus or None)
