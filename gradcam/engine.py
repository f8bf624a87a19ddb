"""The engine's names as gradcam 0.1 exported them: :class:`GradCAM` and :data:`GradCAMResult`.

The engine itself is the method template, :mod:`gradcam.methods.base`: it captures the
layer during the model's own call (:mod:`gradcam.capture`), differentiates with the
backend's adapter (:mod:`gradcam.backend`) and calls the method's hook
(:mod:`gradcam.methods`). ``gradcam.engine.GradCAM`` is ``gradcam.methods.GradCAM``.
"""

from gradcam.methods import GradCAM
from gradcam.methods.base import Result as GradCAMResult

__all__ = ["GradCAM", "GradCAMResult"]
