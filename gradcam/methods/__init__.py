"""The class-activation methods, each a short file on the template of :mod:`.base`.

``METHODS`` maps each method's name (as ``explain_prediction(..., method=name)`` takes
it) to its class, in the order of :mod:`gradcam.methods.registry`, the Keras-free table
of the methods. A new method is a subclass of :class:`~gradcam.methods.base.Method` (or
of :class:`~gradcam.methods.perturbation.PerturbationMethod`) in its own module, and one
row of that table. :func:`build_engine` is the one place that makes an engine from a
method's name.

The names here are imported on first use, so that importing
:mod:`gradcam.methods.registry` does not load Keras.
"""

from __future__ import annotations

import importlib

from gradcam.methods.registry import METHOD_NAMES, REGISTRY, load_method_class

# Public names and the module that defines each (the method classes come from REGISTRY).
_SOURCES = {
    "Capture": "gradcam.methods.base",
    "EmptyMapWarning": "gradcam.methods.base",
    "EngineCache": "gradcam.methods.factory",
    "Method": "gradcam.methods.base",
    "PerturbationMethod": "gradcam.methods.perturbation",
    "Result": "gradcam.methods.base",
    "build_engine": "gradcam.methods.factory",
    "method_class": "gradcam.methods.factory",
}
_CLASSES = {entry.cls: name for name, entry in REGISTRY.items()}

__all__ = ["METHODS", *sorted(_SOURCES), *sorted(_CLASSES)]


def __getattr__(name):
    if name == "METHODS":
        value = {method: load_method_class(method) for method in METHOD_NAMES}
    elif name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
    elif name in _CLASSES:
        value = load_method_class(_CLASSES[name])
    else:
        raise AttributeError(f"module 'gradcam.methods' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
