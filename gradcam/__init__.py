"""gradcam: where a Keras image classifier looks when it decides a class (Grad-CAM).

Quick start::

    import gradcam
    from gradcam.models import efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    doc = gradcam.image_from_path(gradcam.samples.path("chelsea"), image_shape=(224, 224))
    gradcam.show_prediction(model, doc, preprocess=efficientnet_lite.preprocess_input)
"""

import importlib

__version__ = "0.1.0"

# Public names and the module that defines each. They are imported on first use, so that
# ``import gradcam`` (and ``gradcam --help``) does not wait for TensorFlow to load until
# something that needs it is used.
_SOURCES = {
    "Explanation": "gradcam.explanation",
    "GradCAM": "gradcam.engine",
    "GradCAMResult": "gradcam.engine",
    "TargetExplanation": "gradcam.explanation",
    "expand_heatmap": "gradcam.render",
    "explain_prediction": "gradcam.api",
    "format_as_image": "gradcam.render",
    "heatmap_to_image": "gradcam.render",
    "image_from_path": "gradcam.image",
    "load_image": "gradcam.image",
    "plot_explanations": "gradcam.render",
    "show_prediction": "gradcam.api",
}

__all__ = [
    "Explanation",
    "GradCAM",
    "GradCAMResult",
    "TargetExplanation",
    "expand_heatmap",
    "explain_prediction",
    "format_as_image",
    "heatmap_to_image",
    "image_from_path",
    "imagenet",
    "load_image",
    "plot_explanations",
    "samples",
    "show_prediction",
]


def __getattr__(name):
    if name in ("imagenet", "samples"):
        return importlib.import_module(f"gradcam.{name}")
    if name not in _SOURCES:
        raise AttributeError(f"module 'gradcam' has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
