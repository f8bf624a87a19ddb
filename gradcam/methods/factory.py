"""Making engines: :func:`build_engine`, the one place that makes an engine from a
method's name, and :class:`EngineCache`, which reuses engines per model.

:func:`gradcam.explain_prediction`, the command line, :class:`gradcam.ray.Explainer` and
the metrics that build engines all make them here.
"""

from __future__ import annotations

import threading
import weakref

from gradcam.methods.base import Method
from gradcam.methods.registry import check_method_options, load_method_class

__all__ = ["EngineCache", "build_engine", "method_class"]


def method_class(name: str) -> type[Method]:
    """The class of the method called ``name``.

    Args:
        name: a key of :data:`gradcam.methods.METHODS`, e.g. ``"gradcam"``.

    Returns:
        The :class:`~gradcam.methods.base.Method` subclass.

    Raises:
        ValueError: (an :class:`~gradcam.checks.ArgumentError`, ``argument="method"``) an
            unknown name (the known ones and the closest are listed).
    """
    return load_method_class(name)


def _method_class(method) -> type[Method]:
    """``method`` itself when it is a method's class, else the class of that name."""
    return method if isinstance(method, type) and issubclass(method, Method) else load_method_class(method)


def build_engine(model, method="gradcam", *, layer=None, score: str = "auto", class_names=None,
                 reshape=None, preprocess=None, options=None, weak_model: bool = False) -> Method:
    """Make the engine of ``method`` for ``model``.

    Args:
        model: as for :class:`~gradcam.methods.base.Method`.
        method: a name of :data:`gradcam.methods.METHODS` (``"gradcam"``,
            ``"gradcam++"``, ``"scorecam"``...), or a
            :class:`~gradcam.methods.base.Method` subclass. Defaults to ``"gradcam"``.
        layer: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        score: as for :class:`~gradcam.methods.base.Method`. Defaults to ``"auto"``.
        class_names: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        reshape: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        preprocess: as for :class:`~gradcam.methods.base.Method`. Defaults to ``None``.
        options: the method's own keyword arguments (a dict), e.g. ``{"max_channels":
            256}`` for Score-CAM (:data:`gradcam.methods.registry.METHOD_OPTIONS`).
            Defaults to ``None``.
        weak_model: as for :class:`~gradcam.methods.base.Method`. Defaults to ``False``.

    Returns:
        The engine, an instance of the method's class.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` or ``reshape`` is not
            callable; an option the method does not take (an
            :class:`~gradcam.methods.registry.OptionError`, ``argument="options"``).
        ValueError: an unknown method (``argument="method"``); a model that is not built,
            an unknown layer (``argument="layer"``) or score (``argument="score"``); a bad
            option value.

    Example:
        >>> cam = build_engine(model, "scorecam", options={"max_channels": 64})
        >>> cam.heatmaps(docs).shape
        (8, 1, 7, 7)
    """
    cls = _method_class(method)
    check_method_options(cls.name, options)
    return cls(model, layer=layer, score=score, class_names=class_names, preprocess=preprocess,
               reshape=reshape, weak_model=weak_model, **(options or {}))


def _layer_key(layer):
    if isinstance(layer, (str, int)) or layer is None:
        return layer
    return ("layer", id(layer))


class EngineCache:
    """Engines made by :func:`build_engine`, reused per model and arguments.

    Engines are built once per (model, method, layer, score, class names, reshape
    function, options) and hold their model weakly: the cache keeps no model alive, and
    a model deleted elsewhere is freed with its engines. The engines have no
    ``preprocess``; pass it per call (``engine.explain(docs, preprocess=...)``), so that a
    new function on each call neither grows the cache nor compiles anything again. Safe
    to use from several threads: each engine is built once.

    Example:
        >>> cache = EngineCache()
        >>> cache.get(model, "gradcam++") is cache.get(model, "gradcam++")
        True
    """

    def __init__(self):
        self._engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, model, method="gradcam", *, layer=None, score: str = "auto", class_names=None,
            reshape=None, options=None) -> Method:
        """The cached engine of ``method`` for ``model`` (built on first use).

        Args:
            model: as for :func:`build_engine`.
            method: as for :func:`build_engine`. Defaults to ``"gradcam"``.
            layer: as for :func:`build_engine`. Defaults to ``None``.
            score: as for :func:`build_engine`. Defaults to ``"auto"``.
            class_names: as for :func:`build_engine`. Defaults to ``None``.
            reshape: as for :func:`build_engine`; the same function object reuses the
                engine. Defaults to ``None``.
            options: as for :func:`build_engine`. Defaults to ``None``.

        Returns:
            The engine, without ``preprocess``, holding its model weakly.

        Raises:
            TypeError: as for :func:`build_engine`; an option value that is not hashable.
            ValueError: as for :func:`build_engine`.
        """
        cls = _method_class(method)
        key = (cls, _layer_key(layer), score, None if class_names is None else tuple(class_names), reshape,
               check_method_options(cls.name, options))
        with self._lock:
            try:
                engines = self._engines.setdefault(model, {})
            except TypeError:  # not weakly referenceable (not a Keras model): build_engine says so
                engines = {}
            engine = engines.get(key)
            if engine is None:
                engine = build_engine(model, cls, layer=layer, score=score, class_names=class_names,
                                      reshape=reshape, options=options, weak_model=True)
                engines[key] = engine
        return engine

    def engines(self, model) -> list[Method]:
        """The engines of ``model`` in the cache, in the order they were built.

        Args:
            model: a model.

        Returns:
            A list of engines (empty when the cache has none for ``model``).
        """
        with self._lock:
            try:
                return list(self._engines.get(model, {}).values())
            except TypeError:  # not weakly referenceable
                return []

    def clear(self) -> None:
        """Forget every engine."""
        with self._lock:
            self._engines.clear()

    def __len__(self) -> int:
        """The number of models with engines in the cache."""
        with self._lock:
            return len(self._engines)
