"""Deprecated: the streaming pipeline is :mod:`gradcam.batch`; this name stays for
code written against gradcam 0.2 and warns when imported."""

import warnings

from gradcam.batch import (  # noqa: F401
    TOP_CLASSES,
    EvaluationReport,
    RunReport,
    RunSettings,
    evaluate_files,
    explain_files,
    overlay_base,
)
from gradcam.checks import one_line  # noqa: F401

__all__ = ["TOP_CLASSES", "EvaluationReport", "RunReport", "RunSettings", "evaluate_files", "explain_files",
           "one_line", "overlay_base"]

warnings.warn("gradcam.pipeline is deprecated; import from gradcam.batch instead.", DeprecationWarning,
              stacklevel=2)
