"""gradcam: where a Keras image classifier looks when it decides a class (Grad-CAM).

Quick start::

    import gradcam
    from gradcam.models import efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    doc = gradcam.image_from_path(gradcam.samples.path("chelsea"), image_shape=(224, 224))
    gradcam.show_prediction(model, doc, preprocess=efficientnet_lite.preprocess_input)
"""

import sys

from gradcam._lazy import lazy_names

__version__ = "0.1.0"

# Public names and the module that defines each (and the name there, where it differs).
# They are imported on first use, so that ``import gradcam`` (and ``gradcam --help``) does
# not wait for Keras and its backend to load until something that needs them is used.
_SOURCES = {
    "EmptyMapWarning": "gradcam.methods.base",
    "Explanation": "gradcam.explanation",
    "GradCAMResult": ("gradcam.methods.base", "Result"),
    "METHODS": "gradcam.methods",
    "TargetExplanation": "gradcam.explanation",
    "expand_heatmap": "gradcam.render",
    "explain_prediction": "gradcam.api",
    "maps": "gradcam.api",
    "format_as_image": "gradcam.render",
    "heatmap_to_image": "gradcam.render",
    "image_from_path": "gradcam.image",
    "load_image": "gradcam.image",
    "plot_explanations": "gradcam.render",
    "report": "gradcam.reporting",
    "show_prediction": "gradcam.api",
}
_MODULES = ("imagenet", "metrics", "reporting", "samples")


def _method_classes() -> dict:
    """The engine class of each method (:data:`gradcam.methods.METHODS`), by class name:
    ``GradCAM``, ``GradCAMPlusPlus``... A method added there is exported here too."""
    from gradcam.methods import METHODS

    return {cls.__name__: cls for cls in METHODS.values()}


_getattr, _dir = lazy_names(__name__, _SOURCES, modules=_MODULES, extra=_method_classes)


def __getattr__(name):
    if name == "__all__":
        return sorted([*_SOURCES, *_MODULES, *_method_classes()])
    return _getattr(name)


def __dir__():
    names = set(_dir())
    if "gradcam.methods" in sys.modules:  # listing the methods needs Keras: only once loaded
        names |= set(_method_classes())
    return sorted(names)
