"""Maps while a Keras model trains: :class:`~gradcam.keras.callback.ExplainCallback`
writes the overlays of a fixed set of images to TensorBoard and/or PNG files during
``model.fit``; :class:`~gradcam.keras.penalty.CAMPenalty` is a loss term on the share of
the maps' mass outside an object's mask, for a training step of one's own.

Modules: :mod:`~gradcam.keras.callback`, :mod:`~gradcam.keras.penalty`. Importing this
package imports Keras (its callbacks are Keras classes).
"""

from gradcam.keras.callback import ExplainCallback
from gradcam.keras.penalty import CAMPenalty

__all__ = ["CAMPenalty", "ExplainCallback"]
