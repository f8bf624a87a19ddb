"""gradcam: where a Keras image classifier looks when it decides a class (Grad-CAM).

Quick start::

    import gradcam
    from gradcam.models import efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    doc = gradcam.image_from_path("samples/chelsea.jpg", image_shape=(224, 224))
    gradcam.show_prediction(model, efficientnet_lite.preprocess_input(doc))
"""

from gradcam import imagenet
from gradcam.api import explain_prediction, show_prediction
from gradcam.engine import GradCAM, GradCAMResult
from gradcam.explanation import Explanation, TargetExplanation
from gradcam.image import image_from_path, load_image
from gradcam.render import expand_heatmap, format_as_image, heatmap_to_image, plot_explanations

__version__ = "0.1.0"

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
    "show_prediction",
]
