"""The command's model options: its ``--class-names``, the ``--target`` classes, each
``--method``'s options and engine. Loading the model is the library's
(:mod:`gradcam.models.registry`); its errors become flag messages through
:func:`gradcam.cli.arguments.flag_errors`."""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass

from gradcam.methods.registry import check_method_name
from gradcam.checks import one_line
from gradcam.cli.arguments import METHOD_FLAGS, UsageError, flag_errors, option_takers
from gradcam.io.class_names import ClassNamesError, check_class_count, read_class_names
from gradcam.targets import Box, ClassNames, Contrast, Output, Segmentation, resolve_targets

_INDEX = re.compile(r"^-?[0-9]+$")

#: The ``--target`` forms besides a class index or name, for the help and the errors.
TARGET_FORMS = ("segmentation:CATEGORY", "output", "output:INDEX", "contrast:CLASS", "box:X1,Y1,X2,Y2[:CATEGORY]")
_KINDS = ("segmentation", "output", "contrast", "box")
_ACCEPTED = "a class index (281) or name (\"tiger cat\"), " + ", ".join(TARGET_FORMS)
#: What ``--decode`` takes: a module path and a function name.
_DECODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class BoxSpec:
    """A ``box:X1,Y1,X2,Y2[:CATEGORY]`` target as the command line gives it, before the
    model loads: the query box in the model's input pixels and the category, an index
    or a name (names become indices with the model's class names, :func:`parse_targets`).
    """

    box: tuple
    category: int | str
    value: str

    def target(self, classes: ClassNames, decode=None) -> Box:
        """The :class:`~gradcam.targets.Box` target, its category resolved with ``classes``
        and named after it (``box (10.0, 8.0, 50.0, 60.0): 1 (face)``).

        Raises:
            ValueError: an unknown category name.
        """
        category = classes.index(self.category) if isinstance(self.category, str) else self.category
        if classes.num_classes is not None:
            classes.check_index(category)
        target = Box(self.box, category, decode=decode)
        target.name = f"box {tuple(round(v, 1) for v in self.box)}: {classes.label(category)}"
        return target


def _class(text: str):
    """A class given on the command line: ASCII digits (with an optional minus) are an
    index, anything else a name."""
    return int(text) if _INDEX.match(text.strip()) else text


def _box_error(value: str, problem: str) -> UsageError:
    return UsageError(f"--target: {value!r}: {problem}; the accepted forms are {_ACCEPTED}.")


def parse_box(value: str, argument: str) -> BoxSpec:
    """The argument of a ``box:`` target, ``X1,Y1,X2,Y2[:CATEGORY]``: the query box's left,
    top, right and bottom edges in the model's input pixels (numbers), and the category
    explained, an index or a name (default 0, the first category).

    Raises:
        UsageError: not four finite numbers, edges in the wrong order, or a category that
            is empty or negative; the message names the value and the accepted forms.
    """
    corners, colon, category = argument.partition(":")
    try:
        numbers = [float(part) for part in corners.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(map(math.isfinite, numbers)):
        raise _box_error(value, "box: needs four numbers X1,Y1,X2,Y2 (the query box's left, top, right and "
                                "bottom edges in the model's input pixels), then :CATEGORY if not 0")
    x1, y1, x2, y2 = numbers
    if not (x1 < x2 and y1 < y2):
        raise _box_error(value, f"box: needs X1 < X2 and Y1 < Y2 (left, top, right, bottom); got "
                                f"{x1:g},{y1:g},{x2:g},{y2:g}")
    category = category.strip()
    if colon and not category:
        raise _box_error(value, "box: needs a category index or name after the second colon")
    category = _class(category) if colon else 0
    if isinstance(category, int) and category < 0:
        raise _box_error(value, f"box: the category is an index from 0 or a name; got {category}")
    return BoxSpec(tuple(numbers), category, value)


def parse_target_spec(value: str):
    """One ``--target`` value, checked without the model: a class index or name (an int
    or a str), a :mod:`gradcam.targets` object for the forms of :data:`TARGET_FORMS`
    (``segmentation:12``, ``output``, ``output:3``, ``contrast:tabby``), or a
    :class:`BoxSpec` for ``box:10,8,50,60:1``.

    Raises:
        UsageError: a form with a missing or bad argument; the message names the value and
            the accepted forms.
    """
    kind, colon, argument = value.partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS or (not colon and kind != "output"):
        return _class(value)
    argument = argument.strip()
    if kind == "box":
        return parse_box(value, argument)
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


def parse_targets(values, classes, warn_duplicates: bool = True, decode=None) -> list | None:
    """Resolve ``--target`` values: class indices and names become class indices, the
    other forms (:func:`parse_target_spec`) :mod:`gradcam.targets` objects whose classes
    are checked against ``classes``. A target given twice (``--target 281 --target
    tabby``) is explained once, with a warning.

    Args:
        values: the ``--target`` values, or ``None``.
        classes: the model's :class:`~gradcam.targets.ClassNames`.
        warn_duplicates: whether to warn about a target given twice. Defaults to ``True``.
        decode: the ``decode`` of the ``box:`` targets (:func:`load_decoder`), or ``None``
            when the model's outputs are boxes and scores. Defaults to ``None``.

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
            elif isinstance(target, BoxSpec):
                target = target.target(classes, decode)
                key = ("box", tuple(target.box.tolist()), target.category)
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


def check_targets_fit(model, classes, targets, image_shape=None, class_names=None,
                      class_names_path: str | None = None) -> None:
    """Check the targets that are not classes (:func:`parse_targets`) against the model's
    outputs before anything is compiled: a ``segmentation:`` target needs a per-pixel
    output, ``contrast:`` a classifier's, ``output:INDEX`` a unit that exists, ``box:``
    a detector's boxes and scores (the outputs, or what ``--decode`` makes of them on a
    blank image of ``image_shape``) with a score column for its category, as many as
    ``--class-names`` names.

    Raises:
        UsageError: a target that does not fit the model's outputs.
    """
    from gradcam.capture import model_info
    from gradcam.targets import OutputSpec, Target

    spec = OutputSpec(model_info(model).output_shapes, classes, False, model.name)
    boxes = []
    for target in targets or ():
        if isinstance(target, Target):
            try:
                target.bind(spec)
            except (TypeError, ValueError) as error:
                raise UsageError(f"--target: {one_line(error)}") from None
        if isinstance(target, Box):
            boxes.append(target)
    if boxes and image_shape is not None:
        _check_detections(model, boxes, image_shape, class_names, class_names_path)


def _check_detections(model, boxes, image_shape, names, path) -> None:
    """Check the ``box:`` targets' categories against the score columns of the detector's
    boxes and scores on a blank image (decoded by the targets' ``decode``)."""
    import keras
    import numpy as np

    from gradcam.capture import model_info

    blank = np.zeros((1, *image_shape, model_info(model).input_shape[-1] or 3), np.float32)
    outputs = model(blank, training=False)
    decode = boxes[0].decode
    source = "--decode's function returns" if decode is not None else f"model {model.name!r} returns"
    try:
        decoded = outputs if decode is None else decode(outputs)
    except Exception as error:  # the user's function, on the model's outputs
        raise UsageError(f"--decode: the function failed on the model's outputs ({type(error).__name__}: "
                         f"{one_line(error)}).") from None
    shapes = [tuple(t.shape) for t in keras.tree.flatten(decoded)] if isinstance(decoded, (list, tuple)) else []
    if len(shapes) != 2 or len(shapes[0]) != 3 or shapes[0][-1] != 4 or len(shapes[1]) != 3:
        got = " and ".join(map(str, shapes)) or type(decoded).__name__
        raise UsageError(f"--target box: {source} {got}; a box target needs boxes (N, A, 4) and scores (N, A, "
                         "categories): give --decode MODULE:FUNCTION for a detector whose outputs are not that pair.")
    count = shapes[1][-1]
    for target in boxes:
        if target.category >= count:
            raise UsageError(f"--target: box category {target.category} is out of range: the detector scores "
                             f"{count} categories (0..{count - 1}).")
    if names is not None and len(names) != count:
        raise UsageError(f"--class-names: {path!r} has {len(names)} names; the detector scores {count} "
                         "categories: one name per category, in the order of its score columns.")


def check_decode_option(args) -> None:
    """Check ``--decode MODULE:FUNCTION`` without importing it: the form, that a ``box:``
    target is given, and that the module can be found.

    Raises:
        UsageError: ``--decode`` without a ``box:`` target, a bad form, or no such module.
    """
    spec = getattr(args, "decode", None)
    if spec is None:
        return
    if not any(isinstance(parse_target_spec(value), BoxSpec) for value in args.target or ()):
        raise UsageError("--decode applies to --target box:X1,Y1,X2,Y2[:CATEGORY], which is not given.")
    if not _DECODE.fullmatch(spec):
        raise UsageError(f"--decode {spec!r}: expected MODULE:FUNCTION, e.g. "
                         "gradcam.models.face_detector:box_decoder.")
    module = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(f"--decode {spec!r}: no module named {module!r} can be imported.")


def load_decoder(spec: str | None, model):
    """The ``decode`` of ``--decode MODULE:FUNCTION``: ``FUNCTION(model)``, a function
    from the model's outputs to ``(boxes (N, A, 4), scores (N, A, categories))``, as
    :func:`gradcam.models.face_detector.box_decoder` returns; ``None`` without the option.

    Raises:
        UsageError: the module cannot be imported, has no such function, or the function
            refuses the model or does not return a function.
    """
    if spec is None:
        return None
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"--decode {spec!r}: {one_line(error)}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"--decode {spec!r}: module {module_name!r} has no function {name!r}.")
    try:
        decode = function(model)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--decode {spec!r}: {one_line(error)}") from None
    if not callable(decode):
        raise UsageError(f"--decode {spec!r}: {name}(model) returned {type(decode).__name__}; expected the "
                         "function that decodes the model's outputs into (boxes, scores).")
    return decode


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
    """Check that ``--class-names`` names each of the model's outputs once. A model with
    several outputs (a detector's boxes and scores) has no one class axis: there the names
    are those of the categories its targets read (a ``box:`` target's score columns),
    counted when the targets are checked (:func:`check_targets_fit`).

    Raises:
        UsageError: more or fewer names than outputs.
    """
    if names is None:
        return
    from gradcam.capture import model_info

    num_classes = model_info(model).num_classes
    if num_classes is None:
        return
    try:
        check_class_count(names, num_classes, path)
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
