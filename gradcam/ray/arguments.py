"""The arguments of :func:`~gradcam.ray.explain_images` and :class:`~gradcam.ray.Explainer`
that can be checked without the model, in the script, before anything runs on Ray."""

from __future__ import annotations

import os

from gradcam.checks import check_bool
from gradcam.image import check_image_shape
from gradcam.methods.registry import SCORES, check_method_name, check_method_options
# Keras-free: a script that only reads files and starts actors never loads Keras.
from gradcam.models.registry import BUILTIN_MODELS, PREPROCESSING, check_model_file


def check_model(model) -> None:
    """Check ``model=`` without building it: a built-in name, a model file, a function.

    Raises:
        gradcam.checks.ArgumentError: (a ``ValueError``) an unknown name or a file that
            is not a Keras model file.
        TypeError: neither a name, a path nor a function.
    """
    if isinstance(model, (str, os.PathLike)):
        check_model_file(os.fspath(model))
    elif not callable(model) or hasattr(model, "layers"):
        raise TypeError(
            f"model must be a built-in model's name ({', '.join(BUILTIN_MODELS)}), the path of a "
            f".keras file, or a function that returns a Keras model; got {type(model).__name__}. "
            "The model is built inside each actor: to use a model object, save it with "
            "model.save('model.keras') and pass the path, or pass a function that builds it."
        )


def checked(model, method, score, preprocess, image_size, method_options=None, eigen_smooth=False,
            aug_smooth=False):
    """Check the arguments that need no model (nor Keras): the image size or ``None``."""
    check_method_name(method)
    check_method_options(method, method_options)
    check_bool(eigen_smooth, "eigen_smooth")
    check_bool(aug_smooth, "aug_smooth")
    check_model(model)
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}; got {score!r}.")
    if not (preprocess is None or callable(preprocess)
            or (isinstance(preprocess, str) and preprocess in ("auto", *PREPROCESSING))):
        raise ValueError(
            f"preprocess must be 'auto', one of {', '.join(map(repr, PREPROCESSING))}, a function "
            f"or None; got {preprocess!r}."
        )
    try:
        return check_image_shape(image_size)
    except ValueError:
        raise ValueError(
            f"image_size must be (height, width) with two positive integers, or None; got {image_size!r}."
        ) from None
