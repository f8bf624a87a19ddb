"""Explaining whole datasets with Ray Data: class-activation maps as batch inference on a
Ray cluster.

:func:`explain_images` turns image files (a folder, a list of paths) or a
``ray.data.Dataset`` with an ``"image"`` column into a ``ray.data.Dataset`` of
explanations, one row per image, computed by a pool of :class:`Explainer` actors. Each
actor builds the model once, inside its own process (from a built-in model's name, a
``.keras`` file or a function), and runs the real engine (:class:`gradcam.GradCAM`) on
batch after batch; the dataset streams, so memory stays bounded whatever its size, and
nothing runs until the result is consumed (``write_parquet``, ``iter_batches``...).

Resources. An actor reserves half a CPU (:data:`ACTOR_CPUS`) and a task that reads files
a quarter (:data:`READ_CPUS`): on any node with one CPU or more, an actor and two reading
tasks fit side by side; at most one reading task per CPU of the cluster, less one per
actor (at least one), runs at a time.
Ray's CPU counts only decide where things may run; TensorFlow in an actor uses every
core of its node, and the reading tasks share them. With one CPU per
actor (Ray's default) the actors would reserve every CPU of a small machine, and the
tasks that read the images, which they wait for, could never start. The two counts
differ on purpose: Ray Data fuses consecutive steps with equal resources into one, and
an actor that decoded its own files would leave its model idle meanwhile.

Requires Ray Data, Ray 2.9 or newer (:data:`MINIMUM_RAY`; importing this package with an
older Ray raises an ``ImportError`` that names both versions): ``pip install "gradcam[ray]"``.
"""

from __future__ import annotations

from gradcam._lazy import lazy_names

try:
    import ray
    import ray.data  # noqa: F401
except ImportError as error:  # the "ray" extra is not installed
    raise ImportError(
        "gradcam.ray needs Ray Data; install it with: pip install \"gradcam[ray]\" "
        f"(or \"ray[data]\"). ({error})"
    ) from error

#: The oldest Ray release :mod:`gradcam.ray` supports, as ``(major, minor)``.
MINIMUM_RAY = (2, 9)


def check_ray_version(version: str) -> None:
    """Refuse a Ray release older than :data:`MINIMUM_RAY`.

    Args:
        version: a Ray version string, e.g. ``ray.__version__``.

    Raises:
        ImportError: ``version`` is older than :data:`MINIMUM_RAY` (or not a version);
            the message names the version found and the one needed.
    """
    from packaging.version import InvalidVersion, Version

    needed = ".".join(map(str, MINIMUM_RAY))
    try:
        found = Version(version).release[:2]
    except (InvalidVersion, TypeError):
        found = None
    if found is None or found < MINIMUM_RAY:
        raise ImportError(
            f"gradcam.ray needs Ray {needed} or newer; found Ray {version}. Upgrade it: "
            f"pip install -U \"ray[data]>={needed}\""
        )


check_ray_version(ray.__version__)

# Loaded on first use: the tasks that read image files import this package, and need
# neither the command line's modules nor the Explainer's.
_SOURCES = {
    "ACTOR_CPUS": "gradcam.ray.explain",
    "DEFAULT_EVALUATE_METRICS": "gradcam.ray.evaluate",
    "Evaluator": "gradcam.ray.evaluate",
    "ROW_COLUMNS": "gradcam.ray.evaluate",
    "evaluate_images": "gradcam.ray.evaluate",
    "report": "gradcam.ray.evaluate",
    "DEFAULT_MODEL": "gradcam.models.registry",
    "READ_CPUS": "gradcam.ray.reading",
    "RESULT_COLUMNS": "gradcam.ray.explainer",
    "Explainer": "gradcam.ray.explainer",
    "FromColumns": "gradcam.ray.columns",
    "explain_images": "gradcam.ray.explain",
}

__all__ = sorted([*_SOURCES, "MINIMUM_RAY", "check_ray_version"])


__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
