"""The typed settings of a run over image files (:class:`RunSettings`) and what a run
did (:class:`RunReport`, :class:`EvaluationReport`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradcam.checks import ArgumentError, attributed_to, check_bool, check_positive_int
from gradcam.io.images import check_format
from gradcam.render import colorize


@dataclass(frozen=True)
class RunSettings:
    """How a run computes, draws and writes: the typed settings of :func:`explain_files`.

    Attributes:
        image_shape: ``(height, width)`` the model takes.
        preprocess: function applied to each stacked float32 batch (RGB 0..255) before
            the engine, or ``None``.
        targets: class indices (or names) or :mod:`gradcam.targets` objects to explain
            for every image, or ``None`` for each image's top prediction.
        batch_size: images per engine call.
        colormap: matplotlib colormap name (or colormap) of the overlays.
        alpha_limit: the overlays' largest opacity, a fraction in [0, 1].
        overlay_size: longest side of the overlays in pixels; ``0`` keeps the file's size.
        format: overlay format, one of :data:`gradcam.io.images.OVERLAY_FORMATS`.
        compress: compress PNG overlays (:func:`gradcam.io.images.encode_png`).
        overlays: draw and save the overlays; ``False`` writes only the heatmaps and the
            summaries (the overlay options are still checked, and otherwise unused).
        eigen_smooth: each map is the first principal component of the method's weighted
            activations (:meth:`~gradcam.methods.base.Method.compute`).
        aug_smooth: each map is the mean of the maps of the image's augmented copies
            (:meth:`~gradcam.methods.base.Method.compute`).
        workers: threads decoding files and drawing overlays; ``None`` for one per CPU core.
        prefetch: decoded images held ahead of the engine (a memory bound); ``None`` for
            two batches.

    Raises:
        gradcam.checks.ArgumentError: (a ``ValueError``) a setting out of its range,
            checked when the object is made; its ``argument`` is the field's name.
    """

    image_shape: tuple[int, int]
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None
    targets: tuple | None = None
    batch_size: int = 32
    colormap: object = "viridis"
    alpha_limit: float = 0.65
    overlay_size: int = 320
    format: str = "jpg"
    compress: bool = False
    overlays: bool = True
    eigen_smooth: bool = False
    aug_smooth: bool = False
    workers: int | None = None
    prefetch: int | None = None

    def __post_init__(self):
        with attributed_to("image_shape"):
            shape = tuple(self.image_shape) if isinstance(self.image_shape, Sequence) else ()
            if len(shape) != 2:
                raise ValueError(f"image_shape must be (height, width); got {self.image_shape!r}.")
            for value in shape:
                check_positive_int(value, "image_shape's height and width")
        object.__setattr__(self, "image_shape", tuple(int(v) for v in shape))
        if self.targets is not None:
            targets = (self.targets,) if isinstance(self.targets, (int, str)) else tuple(self.targets)
            if not targets:
                raise ArgumentError("targets", "targets is empty: pass None for each image's top prediction.")
            object.__setattr__(self, "targets", targets)
        for name, allow in (("batch_size", {}), ("overlay_size", {"allow_zero": True}),
                            ("workers", {"allow_none": True}), ("prefetch", {"allow_none": True})):
            with attributed_to(name):
                check_positive_int(getattr(self, name), name, **allow)
        for name in ("overlays", "eigen_smooth", "aug_smooth"):
            object.__setattr__(self, name, check_bool(getattr(self, name), name))
        if not (isinstance(self.alpha_limit, (int, float)) and 0 <= self.alpha_limit <= 1):
            raise ArgumentError("alpha_limit", f"alpha_limit must be a fraction in [0, 1]; got {self.alpha_limit!r}.")
        with attributed_to("colormap"):
            colorize(np.zeros((1, 1)), self.colormap, self.alpha_limit)  # an unknown colormap
        with attributed_to("format"):
            check_format(self.format)
        with attributed_to("compress"):
            check_format(self.format, self.compress)

    @property
    def targets_per_image(self) -> int:
        """``K``: the maps computed per image."""
        return 1 if self.targets is None else len(self.targets)

    @property
    def smoothing(self) -> dict:
        """``eigen_smooth`` and ``aug_smooth``, as the engines' ``compute`` takes them."""
        return {"eigen_smooth": self.eigen_smooth, "aug_smooth": self.aug_smooth}

    @property
    def decoded_ahead(self) -> int:
        """Decoded images held ahead of the engine at most."""
        return self.prefetch or 2 * self.batch_size

    @property
    def held_images(self) -> int:
        """Model-sized float32 images the pipeline holds at most: those decoded ahead,
        and one batch three times (stacked, preprocessed, and the engine's copy)."""
        return self.decoded_ahead + 3 * self.batch_size

    def as_json(self) -> dict:
        """The settings as JSON values, for ``summary.json``."""
        preprocess = self.preprocess
        if preprocess is not None:
            preprocess = getattr(preprocess, "__qualname__", None) or repr(preprocess)
        return {
            "image_size": list(self.image_shape), "preprocess": preprocess,
            "targets": None if self.targets is None else [
                t if isinstance(t, (int, str)) else getattr(t, "name", repr(t)) for t in self.targets],
            "batch_size": self.batch_size, "colormap": getattr(self.colormap, "name", self.colormap),
            "alpha_limit": self.alpha_limit, "overlay_size": self.overlay_size,
            "format": self.format, "compress": self.compress, "overlays": self.overlays,
            "eigen_smooth": self.eigen_smooth, "aug_smooth": self.aug_smooth,
        }


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        total: inputs.
        failed: ``(path, message)`` of each input that could not be explained.
        empty_maps: maps that are all zero (the layer's output does not raise the score).
        seconds: wall-clock time of the run (the model was already built).
        resumed: inputs recorded as explained by the earlier runs of a resumed run.
    """

    total: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    empty_maps: int = 0
    seconds: float = 0.0
    resumed: int = 0

    @property
    def ok(self) -> int:
        """Inputs explained (by the earlier runs of a resumed run too)."""
        return self.total - len(self.failed)

    @property
    def explained_now(self) -> int:
        """Inputs explained by this run."""
        return self.ok - self.resumed

    @property
    def images_per_second(self) -> float:
        """Inputs explained per second of this run: an input that failed does not count."""
        return self.explained_now / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EvaluationReport(RunReport):
    """What a run of :func:`evaluate_files` did: a :class:`RunReport`, and the metrics.

    Attributes:
        means: the mean value of each ``(method, metric)`` over the images explained and
            their targets (NaN when no image was).
    """

    means: dict[tuple[str, str], float] = field(default_factory=dict)
