"""The cost of a run before it starts: the model's forward passes it will make, a stop
above a threshold unless ``--yes``, and the expected time once the first batch is done."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gradcam.cli.arguments import COST_WARNING_PASSES, UsageError
from gradcam.cli.messages import plural, warn
from gradcam.progress import Progress, format_duration

if TYPE_CHECKING:
    from gradcam.cli.stream import SetUp, StreamCommand


def forward_passes(args, setup: SetUp, command: StreamCommand) -> int:
    """The model's forward passes per image: each method's (one, or one per perturbation
    for the methods that perturb; each of them on every augmented copy with
    ``--aug-smooth``) and, for ``evaluate``, each metric's on each map."""
    from gradcam.methods.smoothing import AUGMENTATIONS

    passes = 0
    for engine in setup.engines:
        passes += 1
        if getattr(engine, "perturbs", None):
            passes += engine.perturbation_count((1, 1, 1, layer_channels(engine)))
    if setup.settings.aug_smooth:
        passes *= len(AUGMENTATIONS)
    maps = len(setup.engines) * setup.settings.targets_per_image
    return passes + maps * command.passes_per_map(args)


def layer_channels(engine) -> int:
    """The channels of the engine's layer's output (1 where they cannot be read)."""
    try:
        return int(engine.model.get_layer(engine.layer).output.shape[-1])
    except (AttributeError, ValueError, TypeError, IndexError):
        return 1


def check_cost(args, passes_per_image: int, images: int) -> None:
    """Warn before a run of more than :data:`~gradcam.cli.arguments.COST_WARNING_PASSES`
    forward passes: ask on a terminal, go on with ``--yes``, else stop.

    Raises:
        UsageError: the run is not to go on.
    """
    total = passes_per_image * images
    if total <= COST_WARNING_PASSES:
        return
    text = (f"this run makes {total:,} forward passes of the model ({plural(images, 'image')} x {passes_per_image:,}), "
            f"above {COST_WARNING_PASSES:,}: it may take hours")
    if args.yes:
        warn(text + ".")
        return
    if sys.stdin is not None and sys.stdin.isatty():
        warn(text + ".")
        print("gradcam: go on? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
    raise UsageError(f"{text}. Pass --yes to run it anyway, or make it smaller (fewer images, --steps, "
                     "--max-channels, --method, --metric).")


class EstimatingProgress(Progress):
    """The progress display, and one line when the first batch is done: the time the
    whole run is expected to take."""

    def __init__(self, total: int, first: int, **kwargs):
        super().__init__(total, **kwargs)
        self._first = min(first, total)

    def update(self, done: int = 1, failed: int = 0) -> None:
        super().update(done, failed)
        if self._first and self.done >= self._first:
            self._first = 0
            if self.enabled and self.done < self.total:
                elapsed = self._clock() - self._start
                self.message(f"gradcam: the first {self.done} took {format_duration(elapsed)}: about "
                             f"{format_duration(elapsed * self.total / self.done)} for all {self.total}.")
