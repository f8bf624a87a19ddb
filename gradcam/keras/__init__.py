"""Maps while a Keras model trains: :class:`~gradcam.keras.callback.ExplainCallback`
writes the overlays of a fixed set of images to TensorBoard and/or PNG files during
``model.fit``.

Modules: :mod:`~gradcam.keras.callback`. Importing this package imports Keras (its
callbacks are Keras classes).
"""

from gradcam.keras.callback import ExplainCallback

__all__ = ["ExplainCallback"]
