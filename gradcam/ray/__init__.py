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

try:
    import ray.data  # noqa: F401
except ImportError as error:  # the "ray" extra is not installed
    raise ImportError(
        "gradcam.ray needs Ray Data; install it with: pip install \"gradcam[ray]\" "
        f"(or \"ray[data]\"). ({error})"
    ) from error

from gradcam.ray.arguments import DEFAULT_MODEL, engine_class
from gradcam.ray.explain import ACTOR_CPUS, READ_CPUS, explain_images
from gradcam.ray.explainer import RESULT_COLUMNS, Explainer

__all__ = [
    "ACTOR_CPUS",
    "DEFAULT_MODEL",
    "READ_CPUS",
    "RESULT_COLUMNS",
    "Explainer",
    "engine_class",
    "explain_images",
]
