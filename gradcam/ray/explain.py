"""Explaining image files or a dataset: the dataset of explanations that
:func:`explain_images` returns, its reading tasks and its pool of :class:`Explainer` actors."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence

import ray
import ray.data

from gradcam.checks import check_positive_int
from gradcam.io.inputs import find_inputs
from gradcam.models.registry import DEFAULT_MODEL, builtin_image_size
from gradcam.ray.arguments import checked
from gradcam.ray.columns import uses_columns
from gradcam.ray.explainer import Explainer
from gradcam.ray.reading import READ_CPUS, read_files

#: CPUs an :class:`Explainer` actor reserves (see :func:`explain_images`).
ACTOR_CPUS = 0.5


def _reading_pool(tasks: int) -> dict:
    """``map_batches`` arguments that run at most ``tasks`` reading tasks at a time (none
    with a Ray whose ``TaskPoolStrategy`` takes no size: older releases cannot cap tasks)."""
    if "size" in inspect.signature(ray.data.TaskPoolStrategy).parameters:
        return {"compute": ray.data.TaskPoolStrategy(size=tasks)}
    return {}


def _source_paths(source):
    """The image files of ``source``, or ``source`` itself when it is a dataset."""
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
    return [item.path for item in find_inputs(source)]


def _reading_tasks(cpus: float, actors: int) -> int:
    """How many tasks may read files at a time: one per CPU of the cluster less one per
    actor, and at least one.

    Each reading task runs in a Python process of its own, and each actor's start-up
    (importing Ray Data and TensorFlow, building the model: seconds of one core) is on
    every run's critical path; a reading task that starts beside it on a small machine
    takes that core (measured on two cores, one actor: 14.5 s for 256 photos with two
    reading tasks, 13.3 s with one). A task decodes and resizes a batch several times
    faster than an actor explains it, so fewer tasks keep up.

    Args:
        cpus: the cluster's CPUs.
        actors: the actors the pool starts with.

    Returns:
        The most reading tasks that run at a time.
    """
    return max(1, int(cpus) - actors)


def _source_dataset(source, read_size, batch_size: int, actors: int):
    """``source`` (a dataset, or files from :func:`_source_paths`) as a dataset with an
    ``"image"`` column (and ``"path"`` for files), the files resized to ``read_size``
    where they are read when it is not ``None``, by at most :func:`_reading_tasks` tasks
    at a time."""
    if isinstance(source, ray.data.Dataset):
        return source
    tasks = _reading_tasks(ray.cluster_resources().get("CPU", 1), actors)
    return ray.data.from_items([{"path": path} for path in source]).map_batches(
        read_files, fn_kwargs={"image_size": read_size}, batch_size=batch_size,
        batch_format="numpy", num_cpus=READ_CPUS, **_reading_pool(tasks))


def check_column_source(targets, source) -> None:
    """Refuse :class:`~gradcam.ray.FromColumns` targets on files: their rows have no column
    but ``"path"``.

    Raises:
        ValueError: ``targets`` read columns and ``source`` is a list of files.
    """
    if uses_columns(targets) and not isinstance(source, ray.data.Dataset):
        raise ValueError(f"targets {targets!r} read columns of the dataset, but the source is image files "
                         "(whose rows have a 'path' column alone); pass a ray.data.Dataset with an 'image' "
                         "column and those columns.")


def _check_concurrency(concurrency) -> None:
    def count(n):
        return isinstance(n, int) and not isinstance(n, bool) and n > 0

    if not (concurrency is None or count(concurrency) or (
            isinstance(concurrency, tuple) and len(concurrency) == 2 and all(map(count, concurrency))
            and concurrency[0] <= concurrency[1])):
        raise ValueError(
            f"concurrency must be None, a positive number of actors, or (min, max); got {concurrency!r}."
        )


def _first_actors(concurrency, num_gpus: float) -> int:
    """How many actors the pool starts with: ``concurrency`` (``n``, or ``min`` of
    ``(min, max)``), or when it is ``None`` one per node (per ``num_gpus`` GPUs with
    ``num_gpus``)."""
    if isinstance(concurrency, tuple):
        return concurrency[0]
    if concurrency is not None:
        return concurrency
    if num_gpus:
        return max(1, int(ray.cluster_resources().get("GPU", 0) // num_gpus))
    return max(1, sum(node["Alive"] for node in ray.nodes()))


def _actor_pool(concurrency, first: int):
    """The actor pool: ``first`` actors, growing to ``max`` for ``(min, max)``."""
    if isinstance(concurrency, tuple):
        return ray.data.ActorPoolStrategy(min_size=first, max_size=concurrency[1])
    return ray.data.ActorPoolStrategy(size=first)


def explain_images(source, model=DEFAULT_MODEL, *, method: str = "gradcam", layer=None, score: str = "auto",
                   targets=None, preprocess="auto", image_size=None, batch_size: int = 32,
                   concurrency=None, num_gpus: float = 0, method_options=None, eigen_smooth: bool = False,
                   aug_smooth: bool = False) -> ray.data.Dataset:
    """Explain a whole set of images on Ray: a ``ray.data.Dataset`` of class-activation maps.

    Files are found as ``gradcam explain`` finds them (folders recursively, hidden files
    skipped) and decoded as :func:`gradcam.load_image` decodes them, by Ray tasks of
    :data:`READ_CPUS` CPUs; on a cluster the files must be readable on every node (a
    shared file system); for object storage pass ``ray.data.read_images(...)``. The maps
    are computed by a pool of :class:`Explainer` actors of :data:`ACTOR_CPUS` CPUs (and
    ``num_gpus`` GPUs) each: half a CPU, so that an actor never takes the last CPU of a
    node from the tasks that read the images it waits for (with a full CPU per actor,
    two actors on a machine of two CPUs leave none, and the run never ends).
    TensorFlow in an actor uses all of its node's cores whatever it reserves. At most one
    reading task per CPU of the cluster, less one per actor (at least one), runs at a
    time, so that the actors' start-up has cores of its own. Files are resized where they are
    read when the model's input size is known beforehand (``image_size=``, or a built-in
    model), so that smaller arrays travel to the actors and the actors only explain.

    Ray is started on this machine (``ray.init()``) if it is not running yet. Nothing
    else runs until the result is consumed: ``.write_parquet(folder)``,
    ``.iter_batches()``, ``.take_all()``...

    Args:
        source: a folder, an image file, a list of them, or a ``ray.data.Dataset`` with an
            ``"image"`` column (e.g. from ``ray.data.read_images(..., mode="RGB")``).
        model: a built-in model's name, a ``.keras`` file's path, or a function returning
            a Keras model, built in each actor (see :class:`Explainer`). Defaults to
            ``"efficientnet_lite0"``.
        method: the class-activation method, a name of :data:`gradcam.methods.METHODS`
            (``"gradcam"``, ``"gradcam++"``, ``"scorecam"``...). Defaults to ``"gradcam"``.
        layer: the layer to explain. Defaults to ``None`` (chosen automatically).
        score: ``"auto"``, ``"logit"`` or ``"output"``. Defaults to ``"auto"``.
        targets: ``None`` (top prediction), class indices and/or names, target objects
            of :mod:`gradcam.targets` or functions of the outputs, or
            :class:`~gradcam.ray.FromColumns` targets whose per-image parameters are
            columns of a dataset ``source`` (see :class:`Explainer`). Defaults to ``None``.
        preprocess: as for :class:`Explainer`. Defaults to ``"auto"``.
        image_size: ``(height, width)`` for the model, or ``None`` for its input size.
            Defaults to ``None``.
        batch_size: images per model call. Defaults to ``32``.
        concurrency: the number of actors, ``(min, max)`` for a pool that grows with the
            work, or ``None`` for one per node of the cluster (one per ``num_gpus`` GPUs
            with ``num_gpus``). Defaults to ``None``.
        num_gpus: GPUs each actor reserves (``0.5`` puts two actors on a GPU). Defaults
            to ``0``.
        method_options: the method's own keyword arguments, as for :class:`Explainer`.
            Defaults to ``None``.
        eigen_smooth: as for :class:`Explainer`. Defaults to ``False``.
        aug_smooth: as for :class:`Explainer`. Defaults to ``False``.

    Returns:
        A lazy ``ray.data.Dataset`` with one row per image, holding the source's columns
        but ``"image"`` (files give a ``"path"`` column), and ``target``, ``score``,
        ``proba`` and ``heatmap`` (see :class:`Explainer`).

    Raises:
        TypeError: ``source`` or ``model`` of another type; an option the method does not
            take.
        ValueError: an unknown method, model name, score or preprocessing; ``eigen_smooth``
            or ``aug_smooth`` that is not a bool; a model file
            that is missing or not a Keras file; no image file in ``source``; a bad
            ``image_size``, ``batch_size``, ``concurrency`` or ``num_gpus``.

    Example:
        >>> explained = explain_images("photos/", model="efficientnet_lite0", concurrency=2)
        >>> explained.write_parquet("explanations/")
    """
    size = checked(model, method, score, preprocess, image_size, method_options, eigen_smooth, aug_smooth)
    check_positive_int(batch_size, "batch_size")
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or not num_gpus >= 0:
        raise ValueError(f"num_gpus must be a number of GPUs, 0 or more; got {num_gpus!r}.")
    _check_concurrency(concurrency)
    source = _source_paths(source)
    check_column_source(targets, source)
    if not ray.is_initialized():
        ray.init()
    actors = _first_actors(concurrency, num_gpus)
    dataset = _source_dataset(source, size or builtin_image_size(model), batch_size, actors)
    settings = dict(model=model, method=method, layer=layer, score=score, targets=targets,
                    preprocess=preprocess, image_size=size, method_options=method_options,
                    eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)
    return dataset.map_batches(
        Explainer, fn_constructor_kwargs=settings, batch_size=batch_size, batch_format="numpy",
        compute=_actor_pool(concurrency, actors), num_cpus=ACTOR_CPUS, num_gpus=num_gpus or None)
