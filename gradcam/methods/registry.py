"""The table of class-activation methods, importable without Keras.

One row per method: the name ``method=`` takes, the module and class that implement it,
the method's own options (keyword arguments beyond those every engine takes) and a
one-line description with its paper, for help texts and the docs. The command line and
:mod:`gradcam.ray` check ``method=``, ``score=`` and the options with it before anything
loads Keras (about 3 s of a script's start); :data:`gradcam.methods.METHODS` is built
from it, in its order.

A new method is one row here and one module of :mod:`gradcam.methods` with its class.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from gradcam._matching import close_matches
from gradcam.checks import ArgumentError


class MethodEntry(NamedTuple):
    """One method of :data:`REGISTRY`.

    Attributes:
        module: the module of :mod:`gradcam.methods` that holds the class, e.g. ``"gradcam"``.
        cls: the class's name in that module, e.g. ``"GradCAM"``.
        options: the keyword arguments the class takes beyond those of every engine.
        description: one line: what the method does, and its paper.
    """

    module: str
    cls: str
    options: tuple[str, ...]
    description: str


#: The class-activation methods, by the name ``method=`` takes, in the order they are listed.
REGISTRY: dict[str, MethodEntry] = {
    "gradcam": MethodEntry("gradcam", "GradCAM", (),
                           "channels weighed by their mean gradient (Selvaraju et al., arXiv 1610.02391)"),
    "gradcam++": MethodEntry("gradcam_plus_plus", "GradCAMPlusPlus", (),
                             "higher-order gradient weights (Chattopadhyay et al., arXiv 1710.11063)"),
    "xgradcam": MethodEntry("xgradcam", "XGradCAM", (),
                            "gradients weighed by the activations (Fu et al., arXiv 2008.02312)"),
    "hirescam": MethodEntry("hirescam", "HiResCAM", (),
                            "gradient times activation, element by element (Draelos and Carin, arXiv 2011.08891)"),
    "layercam": MethodEntry("layercam", "LayerCAM", (),
                            "positive gradients times activations (Jiang et al., IEEE TIP 30, 2021)"),
    "eigencam": MethodEntry("eigencam", "EigenCAM", (),
                            "the activations' first principal component, no gradients "
                            "(Bany Muhammad and Yeasin, arXiv 2008.00299)"),
    "scorecam": MethodEntry("scorecam", "ScoreCAM", ("perturbation_batch", "max_channels"),
                            "channels weighed by the score of the input masked by each (Wang et al., "
                            "arXiv 1910.01279)"),
    "ablationcam": MethodEntry("ablation_cam", "AblationCAM", ("perturbation_batch", "max_channels"),
                               "channels weighed by the score lost when each is zeroed (Desai and "
                               "Ramaswamy, WACV 2020)"),
    "eigengradcam": MethodEntry("eigengradcam", "EigenGradCAM", (),
                                "the first principal component of gradients times activations "
                                "(Eigen-CAM, arXiv 2008.00299, as pytorch-grad-cam)"),
    "gradcamelementwise": MethodEntry("gradcamelementwise", "GradCAMElementWise", (),
                                      "positive parts of gradient times activation, summed (HiResCAM's "
                                      "variant, as pytorch-grad-cam)"),
    "kpcacam": MethodEntry("kpcacam", "KPCACAM", ("kernel", "gamma"),
                           "the activations' first kernel principal component, no gradients "
                           "(Karmani et al., arXiv 2410.00267)"),
    "fem": MethodEntry("fem", "FEM", ("k",),
                       "channels weighed by their share of unusually high activations, no gradients "
                       "(Fuad et al., IPTA 2020)"),
    "randomcam": MethodEntry("randomcam", "RandomCAM", ("seed",),
                             "random channel weights: a control that a method must beat"),
    "shapleycam": MethodEntry("shapleycam", "ShapleyCAM", (),
                              "channels weighed by the mean gradient less half the Hessian-vector product "
                              "(Cai et al., arXiv 2501.06261)"),
    "guidedgradcam": MethodEntry("guidedgradcam", "GuidedGradCAM", (),
                                 "guided backpropagation times the Grad-CAM map, per pixel (Selvaraju et al., "
                                 "arXiv 1610.02391; Springenberg et al., arXiv 1412.6806)"),
    "fullgrad": MethodEntry("fullgrad", "FullGrad", (),
                            "input-gradient x input plus bias-gradient x bias at every convolution and batch "
                            "normalisation, at the input's resolution (Srinivas and Fleuret, arXiv 1905.00780)"),
}

#: The names of the methods, as ``method=`` takes them.
METHOD_NAMES: tuple[str, ...] = tuple(REGISTRY)
#: What an engine explains: ``"auto"`` (the logit when the model ends in a softmax, else
#: the output), ``"logit"`` or ``"output"``.
SCORES = ("auto", "logit", "output")
#: The kernels KPCA-CAM's ``kernel=`` takes, as scikit-learn's ``KernelPCA`` defines them
#: (``degree=3`` and ``coef0=1`` for ``"poly"`` and ``"sigmoid"``).
KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")
#: The keyword arguments a method's engine takes beyond those every method takes, for the
#: methods that take some (Score-CAM's and Ablation-CAM's batch of masked or ablated
#: copies, Score-CAM's channel count).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {name: entry.options for name, entry in REGISTRY.items() if entry.options}


class OptionError(ArgumentError, TypeError):
    """An option a method does not take, or a bad ``options`` argument: a ``TypeError``
    (as Python's own for an unexpected keyword) and an
    :class:`~gradcam.checks.ArgumentError` whose :attr:`argument` is ``"options"``."""

    def __init__(self, message: str):
        super().__init__("options", message)


def check_method_name(name) -> str:
    """Return ``name`` when it is a method's name.

    Args:
        name: the name to check, e.g. ``"gradcam++"``.

    Returns:
        ``name``.

    Raises:
        ArgumentError: (a ``ValueError``, ``argument="method"``) an unknown name; the
            message lists the methods and the closest names.
    """
    if isinstance(name, str) and name in REGISTRY:
        return name
    known = ", ".join(map(repr, METHOD_NAMES))
    close = close_matches(str(name), list(METHOD_NAMES))
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ArgumentError("method", f"Unknown method {name!r}; the methods are {known}.{hint}")


def check_method_options(method: str, options) -> tuple:
    """Check ``options``, a method's own keyword arguments (:data:`METHOD_OPTIONS`).

    Args:
        method: a method's name (of :data:`METHOD_NAMES`).
        options: a dict of option names and values, or ``None`` for none.

    Returns:
        The options as a sorted tuple of ``(name, value)`` pairs (a cache key).

    Raises:
        OptionError: (a ``TypeError``, ``argument="options"``) ``options`` is not a dict;
            an option the method does not take (the message lists those it takes); a
            value that is not hashable.
    """
    if options is None:
        return ()
    if not isinstance(options, dict):
        raise OptionError(f"method_options must be a dict or None; got {type(options).__name__}.")
    own = REGISTRY[check_method_name(method)].options
    for name in options:
        if name not in own:
            takes = f"its options are {', '.join(map(repr, own))}" if own else "it takes none"
            raise OptionError(f"method {method!r} has no option {name!r}; {takes}.")
    key = tuple(sorted(options.items()))
    try:
        hash(key)
    except TypeError:
        raise OptionError(
            f"method_options' values must be hashable (numbers, strings, None); got {options!r}."
        ) from None
    return key


def load_method_class(name: str) -> type:
    """The class of the method called ``name``, imported from its module (Keras loads here).

    Args:
        name: a method's name, e.g. ``"gradcam"``.

    Returns:
        The :class:`~gradcam.methods.base.Method` subclass.

    Raises:
        ArgumentError: (a ``ValueError``, ``argument="method"``) an unknown name.
    """
    entry = REGISTRY[check_method_name(name)]
    return getattr(importlib.import_module(f"gradcam.methods.{entry.module}"), entry.cls)
