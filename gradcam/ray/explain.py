"""Explaining image files or a dataset: the dataset of explanations that
:func:`explain_images` returns, its reading tasks and its pool of :class:`Explainer` actors."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import ray
import ray.data

from gradcam.image import doc_from_image, load_image
from gradcam.io.inputs import find_inputs
from gradcam.ray.arguments import DEFAULT_MODEL, checked
from gradcam.ray.explainer import Explainer

#: CPUs an :class:`Explainer` actor reserves (see :func:`explain_images`).
ACTOR_CPUS = 0.5
#: CPUs a task reading and decoding image files reserves.
READ_CPUS = 0.25


def _read_files(batch: dict, image_size=None) -> dict:
    """Decode the files of a ``"path"`` column as :func:`gradcam.load_image` does, resized
    to ``image_size`` when it is given; 8-bit RGB arrays in an ``"image"`` column."""
    images = []
    for path in batch["path"]:
        image = load_image(str(path))
        images.append(np.asarray(image) if image_size is None
                      else doc_from_image(image, image_size)[0].astype(np.uint8))
    if len({image.shape for image in images}) == 1:
        return {**batch, "image": np.stack(images)}
    column = np.empty(len(images), dtype=object)  # images of several sizes: one array each
    for i, image in enumerate(images):
        column[i] = image
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
    _, size = checked(model, method, score, preprocess, image_size)
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
