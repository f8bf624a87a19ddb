"""The arguments of :func:`~gradcam.ray.explain_images` and :class:`~gradcam.ray.Explainer`
that can be checked without the model, in the script, before anything runs on Ray."""

from __future__ import annotations

import os

from gradcam.cli.arguments import BUILTIN_MODELS, PREPROCESSING, UsageError
from gradcam.image import check_image_shape
from gradcam.methods.registry import SCORES, check_method_name, check_method_options

#: ``model=`` when none is given: the built-in EfficientNet-Lite0 with ImageNet weights.
DEFAULT_MODEL = BUILTIN_MODELS[0]


#: The built-in models' native input sizes (those of :mod:`gradcam.models.efficientnet_lite`,
#: which imports Keras: a script that only reads files and starts actors never needs it).
BUILTIN_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def builtin_image_size(model) -> tuple[int, int] | None:
    """A built-in model's native ``(height, width)``; ``None`` for any other ``model``."""
    if not (isinstance(model, str) and model in BUILTIN_SIZES):
        return None
    return BUILTIN_SIZES[model], BUILTIN_SIZES[model]


def check_model(model) -> None:
    """Check ``model=`` without building it: a built-in name, a model file, a function."""
    if isinstance(model, (str, os.PathLike)):
        from gradcam.cli.model import check_model_file

        try:
            check_model_file(os.fspath(model))
        except UsageError as error:
            raise ValueError(str(error)) from None
    elif not callable(model) or hasattr(model, "layers"):
        raise TypeError(
            f"model must be a built-in model's name ({', '.join(BUILTIN_MODELS)}), the path of a "
            f".keras file, or a function that returns a Keras model; got {type(model).__name__}. "
            "The model is built inside each actor: to use a model object, save it with "
            "model.save('model.keras') and pass the path, or pass a function that builds it."
        )


def checked(model, method, score, preprocess, image_size, method_options=None):
    """Check the arguments that need no model (nor Keras): the image size or ``None``."""
    check_method_name(method)
    check_method_options(method, method_options)
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
