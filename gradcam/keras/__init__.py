"""Maps while a Keras model trains: :class:`~gradcam.keras.callback.ExplainCallback`
writes the overlays of a fixed set of images to TensorBoard and/or PNG files during
``model.fit``.

Modules: :mod:`~gradcam.keras.callback`.
"""

import importlib

# Public names and the module that defines each, imported on first use (no module is
# named like a name it exports).
_SOURCES = {"ExplainCallback": "callback"}

__all__ = sorted(_SOURCES)


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module 'gradcam.keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gradcam.keras.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_SOURCES))
