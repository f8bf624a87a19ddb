"""The names of the methods and of the scores they explain, importable without Keras.

The command line and :mod:`gradcam.ray` check ``method=`` and ``score=`` with them before
anything loads Keras (about 3 s of a script's start), and the engines take them from here:
:data:`gradcam.methods.METHODS` holds one class per name of :data:`METHOD_NAMES`, in
this order.
"""

from __future__ import annotations

from gradcam._matching import close_matches

#: The class-activation methods, by the name ``method=`` takes.
METHOD_NAMES = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam", "ablationcam")
#: What an engine explains: ``"auto"`` (the logit when the model ends in a softmax, else
#: the output), ``"logit"`` or ``"output"``.
SCORES = ("auto", "logit", "output")


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
