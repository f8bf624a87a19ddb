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
from gradcam.targets import Contrast, Output, Segmentation, resolve_targets

_INDEX = re.compile(r"^-?[0-9]+$")

#: The ``--target`` forms besides a class index or name, for the help and the errors.
TARGET_FORMS = ("segmentation:CATEGORY", "output", "output:INDEX", "contrast:CLASS")
_KINDS = ("segmentation", "output", "contrast")
_ACCEPTED = "a class index (281) or name (\"tiger cat\"), " + ", ".join(TARGET_FORMS)


def _class(text: str):
    """A class given on the command line: ASCII digits (with an optional minus) are an
    index, anything else a name."""
    return int(text) if _INDEX.match(text.strip()) else text


def parse_target_spec(value: str):
    """One ``--target`` value, checked without the model: a class index or name (an int
    or a str), or a :mod:`gradcam.targets` object for the forms of :data:`TARGET_FORMS`
    (``segmentation:12``, ``output``, ``output:3``, ``contrast:tabby``).

    Raises:
        UsageError: a form with a missing or bad argument; the message names the value and
            the accepted forms.
    """
    kind, colon, argument = value.partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS or (not colon and kind != "output"):
        return _class(value)
    argument = argument.strip()
    if kind == "output":
        if not colon:
            return Output()
        if not re.fullmatch(r"[0-9]+", argument):
            raise UsageError(f"--target: {value!r}: output:INDEX needs a unit index, a whole number from 0; "
                             f"the accepted forms are {_ACCEPTED}.")
        return Output(int(argument))
    if not argument:
        raise UsageError(f"--target: {value!r}: {kind}: needs a class index or name after the colon; "
                         f"the accepted forms are {_ACCEPTED}.")
    return (Segmentation if kind == "segmentation" else Contrast)(_class(argument))


def parse_targets(values, classes, warn_duplicates: bool = True) -> list | None:
    """Resolve ``--target`` values: class indices and names become class indices, the
    other forms (:func:`parse_target_spec`) :mod:`gradcam.targets` objects whose classes
    are checked against ``classes``. A target given twice (``--target 281 --target
    tabby``) is explained once, with a warning.

    Args:
        values: the ``--target`` values, or ``None``.
        classes: the model's :class:`~gradcam.targets.ClassNames`.
        warn_duplicates: whether to warn about a target given twice. Defaults to ``True``.

    Returns:
        The targets, in order (ints for classes), or ``None`` without ``--target``.

    Raises:
        UsageError: a bad form, an index out of range or an unknown class name.
    """
    if not values:
        return None
    parsed = [parse_target_spec(v) for v in values]
    kept, first = [], {}  # the targets, and the value that first gave each
    for value, target in zip(values, parsed):
        try:
            if isinstance(target, Output):
                key = ("output", target.unit)
            else:
                category = target.category if isinstance(target, Segmentation) else (
                    target.target if isinstance(target, Contrast) else target)
                kind = "class" if isinstance(target, (int, str)) else type(target).__name__
                key = (kind, int(resolve_targets([category], classes, 1)[0, 0]))
        except (TypeError, ValueError) as error:
            if isinstance(target, (int, str)):
                raise UsageError(f"--target: {one_line(error)}") from None
            raise UsageError(f"--target: {value!r}: {one_line(error)}") from None
        if key in first:
            if warn_duplicates:
                what = f"class {key[1]}" if isinstance(target, (int, str)) else "the same target"
                print(f"gradcam: warning: --target {value!r} is {what}, given already as {first[key]!r}: "
                      "it is explained once.", file=sys.stderr)
            continue
        first[key] = value
        kept.append(key[1] if isinstance(target, (int, str)) else target)
    return kept


def check_targets_fit(model, classes, targets) -> None:
    """Check the targets that are not classes (:func:`parse_targets`) against the model's
    outputs before anything is compiled: a ``segmentation:`` target needs a per-pixel
    output, ``contrast:`` a classifier's, ``output:INDEX`` a unit that exists.

    Raises:
        UsageError: a target that does not fit the model's outputs.
    """
    from gradcam.capture import model_info
    from gradcam.targets import OutputSpec, Target

    spec = OutputSpec(model_info(model).output_shapes, classes, False, model.name)
    for target in targets or ():
        if isinstance(target, Target):
            try:
                target.bind(spec)
            except (TypeError, ValueError) as error:
                raise UsageError(f"--target: {one_line(error)}") from None


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
