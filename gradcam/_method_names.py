"""The names of the methods and of the scores they explain, importable without Keras.

The command line and :mod:`gradcam.ray` check ``method=``, ``score=`` and the methods'
own options with them before anything loads Keras (about 3 s of a script's start), and
the engines take them from here: :data:`gradcam.methods.METHODS` holds one class per name
of :data:`METHOD_NAMES`, in this order, and each class's constructor takes the options of
:data:`METHOD_OPTIONS` (tests check both).
"""

from __future__ import annotations

from gradcam._matching import close_matches

#: The class-activation methods, by the name ``method=`` takes.
METHOD_NAMES = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam", "ablationcam")
#: What an engine explains: ``"auto"`` (the logit when the model ends in a softmax, else
#: the output), ``"logit"`` or ``"output"``.
SCORES = ("auto", "logit", "output")
#: The keyword arguments a method's engine takes beyond those every method takes, by
#: method (Score-CAM's and Ablation-CAM's batch of masked or ablated copies, Score-CAM's
#: channel count).
METHOD_OPTIONS = {"scorecam": ("perturbation_batch", "max_channels"), "ablationcam": ("perturbation_batch",)}


def check_method_name(name) -> str:
    """Return ``name`` when it is a method's name.

    Args:
        name: the name to check, e.g. ``"gradcam++"``.

    Returns:
        ``name``.

    Raises:
        ValueError: an unknown name; the message lists the methods and the closest names.
    """
    if isinstance(name, str) and name in METHOD_NAMES:
        return name
    known = ", ".join(map(repr, METHOD_NAMES))
    close = close_matches(str(name), list(METHOD_NAMES))
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"Unknown method {name!r}; the methods are {known}.{hint}")


def check_method_options(method: str, options) -> tuple:
    """Check ``options``, a method's own keyword arguments (:data:`METHOD_OPTIONS`).

    Args:
        method: a method's name (of :data:`METHOD_NAMES`).
        options: a dict of option names and values, or ``None`` for none.

    Returns:
        The options as a sorted tuple of ``(name, value)`` pairs (a cache key).

    Raises:
        TypeError: ``options`` is not a dict; an option the method does not take (the
            message lists those it takes); a value that is not hashable.
    """
    if options is None:
        return ()
    if not isinstance(options, dict):
        raise TypeError(f"method_options must be a dict or None; got {type(options).__name__}.")
    own = METHOD_OPTIONS.get(method, ())
    for name in options:
        if name not in own:
            takes = f"its options are {', '.join(map(repr, own))}" if own else "it takes none"
            raise TypeError(f"method {method!r} has no option {name!r}; {takes}.")
    key = tuple(sorted(options.items()))
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"method_options' values must be hashable (numbers, strings, None); got {options!r}.") from None
    return key
