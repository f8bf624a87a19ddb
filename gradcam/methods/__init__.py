"""The class-activation methods, each a short file on the template of :mod:`.base`.

``METHODS`` maps each method's name (as ``explain_prediction(..., method=name)`` takes
it) to its class. A new method is a subclass of :class:`~gradcam.methods.base.Method`
in its own module, listed here.
"""

from __future__ import annotations

from gradcam._method_names import check_method_name
from gradcam.methods.ablation_cam import AblationCAM
from gradcam.methods.base import Capture, Method, Result
from gradcam.methods.eigencam import EigenCAM
from gradcam.methods.gradcam import GradCAM
from gradcam.methods.gradcam_plus_plus import GradCAMPlusPlus
from gradcam.methods.hirescam import HiResCAM
from gradcam.methods.layercam import LayerCAM
from gradcam.methods.scorecam import ScoreCAM
from gradcam.methods.xgradcam import XGradCAM

METHODS = {
    cls.name: cls
    for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, EigenCAM, ScoreCAM, AblationCAM)
}

__all__ = [
    "METHODS",
    "AblationCAM",
    "Capture",
    "EigenCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "Method",
    "Result",
    "ScoreCAM",
    "XGradCAM",
    "method_class",
]


def method_class(name: str) -> type[Method]:
    """The class of the method called ``name``.

    Args:
        name: a key of :data:`METHODS`, e.g. ``"gradcam"``.

    Returns:
        The :class:`~gradcam.methods.base.Method` subclass.

    Raises:
        ValueError: an unknown name (the known ones and the closest are listed).
    """
    return METHODS[check_method_name(name)]
