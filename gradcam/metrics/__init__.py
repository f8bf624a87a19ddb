"""Faithfulness and localisation metrics: numbers to compare explanations by.

Every perturbation metric takes ``model, docs, heatmaps, targets`` (images ``(N, H, W, C)``
as the user has them, maps ``(N, h, w)`` at any resolution, one target class per image),
perturbs the images in the user's image space, applies ``preprocess`` (if given) and runs the
perturbed images through the model in batches on the active Keras backend. It returns one
float32 number per image.

Modules: :mod:`~gradcam.metrics.maps` (upsampling and ranking a map's pixels, shared by all
metrics), :mod:`~gradcam.metrics.scoring` (batched scores of perturbed images),
:mod:`~gradcam.metrics.perturbation` (deletion, insertion), :mod:`~gradcam.metrics.confidence`
(average drop, increase in confidence), :mod:`~gradcam.metrics.remove_and_debias` (ROAD),
:mod:`~gradcam.metrics.model_randomisation`, :mod:`~gradcam.metrics.sanity_checks` (Smooth and
Efficient MPRT), :mod:`~gradcam.metrics.localisation` (pointing games)
and :mod:`~gradcam.metrics.plots`.
"""

from gradcam._lazy import lazy_names

# Public names and the module that defines each. Imported on first use, so that
# ``import gradcam.metrics`` does not load Keras until a metric is used. No module is named
# like a function: importing a submodule sets the package's attribute of that name to it.
_SOURCES = {
    "deletion": ".perturbation",
    "insertion": ".perturbation",
    "average_drop": ".confidence",
    "increase_in_confidence": ".confidence",
    "road": ".remove_and_debias",
    "randomisation": ".model_randomisation",
    "RandomisationResult": ".model_randomisation",
    "ssim": ".model_randomisation",
    "smooth_mprt": ".sanity_checks",
    "efficient_mprt": ".sanity_checks",
    "EfficientMPRTResult": ".sanity_checks",
    "pointing_game": ".localisation",
    "energy_pointing_game": ".localisation",
    "plot_curves": ".plots",
}

__all__ = sorted(_SOURCES)
__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
