"""What a report can compute, without Keras: its metrics (how each is shown, which way is
better, whether it is a sanity check), and its default methods and controls. The command
line's ``gradcam report --metric`` choices come from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """How a report shows a metric: its label, which way is better, its family."""

    label: str
    higher_is_better: bool
    sanity: bool = False


#: The metrics a report can compute, by name.
METRICS = {
    "deletion": MetricInfo("Deletion (AUC)", False),
    "insertion": MetricInfo("Insertion (AUC)", True),
    "average_drop": MetricInfo("Average drop", False),
    "increase_in_confidence": MetricInfo("Increase in confidence", True),
    "randomisation": MetricInfo("Randomisation (Spearman, last step)", False, sanity=True),
    "smooth_mprt": MetricInfo("Smooth MPRT (Spearman)", False, sanity=True),
    "efficient_mprt": MetricInfo("Efficient MPRT (complexity rise)", True, sanity=True),
}
DEFAULT_METRICS = tuple(METRICS)
DEFAULT_METHODS = ("gradcam", "gradcam++", "layercam")
#: The controls: ``randomcam`` (random channel weights, a method of the model), and the
#: model-free maps of :mod:`gradcam.reporting.controls`.
DEFAULT_CONTROLS = ("randomcam", "gaussian", "sobel")
