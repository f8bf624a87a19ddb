"""The command's model options: its ``--class-names``, the ``--target`` classes, each
``--method``'s options and engine. Loading the model is the library's
(:mod:`gradcam.models.registry`); its errors become flag messages through
:func:`gradcam.cli.arguments.flag_errors`."""

from __future__ import annotations

import re
import sys

from gradcam.methods.registry import check_method_name
from gradcam.checks import one_line
from gradcam.cli.arguments import METHOD_FLAGS, UsageError, flag_errors, option_takers
from gradcam.io.class_names import ClassNamesError, check_class_count, read_class_names
from gradcam.targets import resolve_targets

_INDEX = re.compile(r"^-?[0-9]+$")


def parse_targets(values, classes, warn_duplicates: bool = True) -> list[int] | None:
    """Resolve ``--target`` values to class indices: ASCII digits (with an optional minus)
    are an index, anything else a class name. A class given twice (``--target 281
    --target tabby``) is explained once, with a warning.

    Raises:
        UsageError: an index out of range or an unknown class name.
    """
    if not values:
        return None
    parsed = [int(v) if _INDEX.match(v.strip()) else v for v in values]
    try:
        indices = resolve_targets(parsed, classes, 1)[0].tolist()
    except (TypeError, ValueError) as error:
        raise UsageError(f"--target: {one_line(error)}") from None
    first: dict[int, str] = {}  # each class, and the value that first gave it
    for value, index in zip(values, indices):
        if index not in first:
            first[index] = value
        elif warn_duplicates:
            print(f"gradcam: warning: --target {value!r} is class {index}, given already as {first[index]!r}: "
                  "it is explained once.", file=sys.stderr)
    return list(first)


def method_options(args, names) -> dict:
    """The engine arguments that the options give each ``--method`` name (those set): an
    option (:data:`~gradcam.cli.arguments.METHOD_FLAGS`) goes to each of the methods
    that take it.

    Raises:
        UsageError: an option set when none of the methods that take it is among ``names``.
    """
    options = {name: {} for name in names}
    for option, (flag, *_) in METHOD_FLAGS.items():
        value = getattr(args, option)
        if value is None:
            continue
        takers = option_takers(option)
        given = [method for method in takers if method in options]
        if not given:
            raise UsageError(f"{flag} applies to --method {' or '.join(takers)}, which is not given.")
        for method in given:
            options[method][option] = value
    return options


def check_method_names(names) -> list[str]:
    """Check the ``--method`` names without Keras; return them (``["gradcam"]`` when none
    is given).

    Raises:
        UsageError: an unknown name (the known ones are listed) or a name given twice.
    """
    names = list(names or ["gradcam"])
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"--method: {name!r} is given twice.")
        try:
            check_method_name(name)
        except ValueError as error:
            raise UsageError(f"--method: {one_line(error)}") from None
    return names


def method_classes(names) -> list:
    """The engine class of each ``--method`` name, in order (Grad-CAM when none is given).

    Raises:
        UsageError: an unknown name (the known ones are listed) or a name given twice.
    """
    from gradcam.methods import method_class  # Keras loads here, not for --help

    return [method_class(name) for name in check_method_names(names)]


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


def build_engines(model, classes, layer: str | None, score: str, class_names=None, options=None,
                  model_spec: str = "MODEL") -> list:
    """One engine per method class (:func:`gradcam.methods.build_engine`), for ``--layer``,
    ``--score`` and ``--class-names``, each with its own ``options`` (:func:`method_options`,
    by method name); ``model_spec`` is ``--model``, for the hint to ``gradcam layers``
    after a bad ``--layer``.

    Raises:
        UsageError: the layer cannot be found or explained, or the model cannot be.
    """
    from gradcam.methods import build_engine

    options = options or {}
    unset = [name for name, value in (("layer", layer), ("score", None if score == "auto" else score))
             if value is None]
    try:
        with flag_errors(fallback="--layer" if layer is not None else "--model", unset=unset):
            return [build_engine(model, cls, layer=layer, score=score, class_names=class_names,
                                 options=options.get(cls.name)) for cls in classes]
    except UsageError as error:
        if layer is None or not str(error).startswith("--layer"):
            raise
        raise UsageError(f"{error} The layers that can be explained: gradcam layers --model {model_spec}") from None
