"""Packages whose public names load on first use: one helper for their ``__getattr__``
and ``__dir__``, so that importing a package does not import Keras (or Ray's heavier
parts) until something that needs it is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_names(package: str, sources: Mapping[str, str | tuple[str, str]], *,
               modules: tuple[str, ...] = (), extra: Callable[[], Mapping[str, object]] | None = None):
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: the package's name, e.g. ``"gradcam.metrics"``.
        sources: each public name's module, absolute (``"gradcam.api"``) or relative to
            the package (``".perturbation"``), or ``(module, name there)`` where the name
            differs.
        modules: submodules that are public names themselves. Defaults to ``()``.
        extra: a function returning more names and their values, looked up last for a
            capitalised name only (a class: a submodule's lookup never calls it), e.g.
            the method classes, read from a table that needs Keras. Defaults to ``None``.

    Returns:
        ``(__getattr__, __dir__)``; ``__getattr__`` stores each value in the package, so
        it is looked up once.

    Example:
        >>> __getattr__, __dir__ = lazy_names(__name__, {"deletion": ".perturbation"})
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        if name in sources:
            source = sources[name]
            module, attribute = source if isinstance(source, tuple) else (source, name)
            value = getattr(importlib.import_module(module, package), attribute)
        elif extra is not None and name[:1].isupper() and name in (found := extra()):  # never a submodule
            value = found[name]
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(sources) | set(modules))

    return __getattr__, __dir__
