"""What to explain: a target maps the model's outputs to one score per image.

A class-activation map shows what raises one number, the *score*, per image. For a
classifier that number is a class's logit; for other models it is whatever the user asks
about. A target says which score: a function from the model's output batch (a tensor, or
the list or dict of tensors a model with several outputs returns) to a ``(N,)`` tensor,
written with ``keras.ops``, so that it is traced into the engine's one compiled
computation on TensorFlow, JAX and PyTorch alike.

Built in:

==================================  ================================================================
target                              score of image ``n``
==================================  ================================================================
``Class(c)`` (or ``c``, a name)     ``y[n, c]``: the logit when the model ends in a softmax
``Segmentation(c, mask)``           ``sum_{i,j} M[n, i, j] y[n, i, j, c]`` over a per-pixel output
``Similarity(e)``                   ``<y[n], e[n]> / (|y[n]| |e[n]|)``, the cosine similarity
``Output(i)``                       ``y[n, i]`` (``i`` a flat index, or ``None``: the sum of all)
``Box(b, c, iou)``                  ``s[n, a, c]``, ``a`` the predicted box that overlaps ``b`` most
``Contrast(c, against, alpha)``     ``sum_j p_j (y_c - alpha y_j) / sum_j p_j`` (Finer-CAM)
any ``f(outputs) -> (N,)``          ``f(y)[n]``
==================================  ================================================================

``y`` is the model's output, with the final softmax undone (its input, the logits) when
the model ends in one and the engine's ``score`` is ``"auto"`` or ``"logit"``.

Array parameters (masks, embeddings, boxes) may be one for the whole batch or one per
image; they are passed to the compiled computation as arguments, so new values reuse it:
targets of the same kind (:attr:`Target.key`) share one compiled computation. Several
targets share one forward pass.

Class indices, class names and ``None`` (each image's top prediction) keep their
meaning: they are resolved to class indices before the model runs
(:func:`resolve_targets`), except the top prediction, marked ``TOP`` (-1) and read inside
the compiled computation.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import numpy as np

from gradcam import imagenet
from gradcam._matching import close_matches, normalise

TOP = -1


class _Lazy:
    """A module imported on first use: importing :mod:`gradcam.targets` (as the command
    line does, for class names) loads neither Keras nor its backend."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute):
        return getattr(importlib.import_module(self._name), attribute)


keras = _Lazy("keras")
ops = _Lazy("keras.ops")


class ClassNames:
    """Class names of a model's outputs: given by the user, ImageNet's, or none.

    Args:
        num_classes: the number of model outputs (the size of the outputs' last axis), or
            ``None`` when the model's outputs have no such single axis.
        names: a list of ``num_classes`` names, or ``None`` to use ImageNet's names
            when ``num_classes == 1000`` (and no names otherwise).

    Raises:
        ValueError: ``names`` does not have ``num_classes`` entries.
    """

    def __init__(self, num_classes: int | None, names=None):
        self.num_classes = None if num_classes is None else int(num_classes)
        if names is not None:
            names = [str(n) for n in names]
            if self.num_classes is not None and len(names) != self.num_classes:
                raise ValueError(
                    f"class_names has {len(names)} entries; the model has {self.num_classes} outputs."
                )
        self._names = names
        self.is_imagenet = names is None and self.num_classes == imagenet.NUM_CLASSES

    def name(self, index: int) -> str | None:
        """The name of class ``index``, or None when names are unknown."""
        if self._names is not None:
            return self._names[index]
        if self.is_imagenet:
            return imagenet.class_name(index)
        return None

    def index(self, name: str) -> int:
        """The index of the class called ``name``.

        Raises:
            ValueError: unknown name (close matches are listed), or no names are known.
        """
        if self.is_imagenet:
            return imagenet.class_index(name)
        if self._names is None:
            raise ValueError(
                f"Cannot find class {name!r}: the model has {self.num_classes} outputs and "
                "no class names. Pass class_names=[...] or use class indices."
            )
        wanted = normalise(name)
        for i, candidate in enumerate(self._names):
            if normalise(candidate) == wanted:
                return i
        matches = close_matches(name, self._names)
        hint = f" Close matches: {', '.join(repr(m) for m in matches)}." if matches else ""
        raise ValueError(f"Unknown class name {name!r}.{hint}")

    def check_index(self, index) -> int:
        """Return ``index`` as an int after checking it names an output.

        Raises:
            ValueError: ``index`` is outside ``0..num_classes-1``.
        """
        if self.num_classes is None or not 0 <= index < self.num_classes:
            raise ValueError(
                f"Target {index} is out of range: the model has {self.num_classes} classes "
                f"(0..{None if self.num_classes is None else self.num_classes - 1})."
            )
        return int(index)

    def label(self, index: int) -> str:
        """``"282 (tiger cat)"``, or just the index when the name is unknown."""
        name = self.name(index)
        return f"{index} ({name})" if name else str(index)


@dataclass(frozen=True)
class OutputSpec:
    """What a target is checked against before the model runs.

    Attributes:
        shapes: the model's output shapes, batch first (``None``), in the structure the
            model returns (one shape, or a list or dict of them).
        classes: the :class:`ClassNames` of the last axis of a single output (``None``
            for several outputs).
        has_logits: whether the scores a target sees are the logits of a final softmax.
        model: the model's name, for messages.
    """

    shapes: object
    classes: ClassNames | None
    has_logits: bool = False
    model: str = "model"

    def pack(self, flat: list):
        """Output arrays, flat in the model's order, in the structure the model returns."""
        if self.single is not None:
            return flat[0]
        return keras.tree.pack_sequence_as(keras.tree.map_shape_structure(lambda s: 0, self.shapes), list(flat))

    @property
    def single(self) -> tuple | None:
        """The shape of the one output, or ``None`` when the model has several."""
        return tuple(self.shapes) if _is_shape(self.shapes) else None

    def describe(self) -> str:
        """The output shapes, as a message shows them."""
        return str(keras.tree.map_shape_structure(tuple, self.shapes)) if not self.single else str(self.single)


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


class View:
    """The model's outputs as a target sees them inside the compiled computation.

    Attributes:
        scores: the outputs with a final softmax undone (its input), when the engine
            explains logits; else the outputs. What a callable target receives.
        outputs: the outputs as the model returns them.
    """

    def __init__(self, scores, outputs):
        self.scores = scores
        self.outputs = outputs


# -- the target types --------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Target:
    """What to explain: a function of the model's outputs, one score per image.

    Subclasses set :attr:`name` and :attr:`description`, and override :meth:`score` (in
    ``keras.ops``), :meth:`arrays` (the array parameters, one row per image) and
    :meth:`bind` (checks against the model's outputs) as they need.

    Args:
        output: for a model with several outputs, which one the target reads (an index
            into the list the model returns, or a key of its dict); ``None`` for a model
            with one output. Defaults to ``None``.
    """

    #: a short name, for labels (``"282 (tiger cat)"``, ``"similarity"``).
    name: str = "target"
    #: one sentence that says what the score is.
    description: str = ""

    def __init__(self, output=None):
        self.output = output

    @property
    def key(self) -> tuple:
        """What decides the compiled computation, besides the arrays' shapes: targets with
        equal keys and equally shaped arrays share one."""
        return (type(self).__name__, self.output) + self._static()

    def _static(self) -> tuple:
        return ()

    def bind(self, spec: OutputSpec) -> "Target":
        """This target checked against the model's outputs (class names resolved).

        Args:
            spec: the model's :class:`OutputSpec`.

        Returns:
            A target whose parameters are indices and arrays only (``self`` when nothing
            changes).

        Raises:
            ValueError: the target does not fit the model's outputs.
        """
        self._shape(spec)
        return self

    def _shape(self, spec: OutputSpec):
        """The shape of the output this target reads, or ``None`` where unknown."""
        if self.output is None:
            if spec.single is None and spec.shapes is not None:
                raise ValueError(
                    f"{self.name}: model {spec.model!r} has several outputs {spec.describe()}; "
                    f"say which one to read with output=<index or key>."
                )
            return spec.single
        try:
            return tuple(spec.shapes[self.output])
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"{self.name}: output={self.output!r} names none of the outputs of "
                f"model {spec.model!r}, {spec.describe()}."
            ) from None

    def _classes(self, spec: OutputSpec, rank: int, needs: str):
        """``(shape, classes)`` of the output this target reads, after checking its rank;
        ``classes`` names the output's last axis.

        Raises:
            ValueError: the output has another rank than ``rank``.
        """
        shape = self._shape(spec)
        if shape is not None and len(shape) != rank:
            raise ValueError(f"{self._what}: model {spec.model!r} has output shape {shape}; {needs}")
        if self.output is None and spec.classes is not None:
            return shape, spec.classes
        return shape, ClassNames(shape[-1] if shape else None)

    @property
    def _what(self) -> str:
        return f"{type(self).__name__} target"

    def _select(self, outputs):
        return outputs if self.output is None else outputs[self.output]

    def arrays(self, count: int) -> tuple:
        """The target's array parameters, each with one row per image ``(count, ...)``.

        Args:
            count: the number of images.

        Returns:
            A tuple of numpy arrays.

        Raises:
            ValueError: a per-image parameter has another number of rows.
        """
        return ()

    def score(self, view: View, *arrays):
        """The score of each image, in ``keras.ops``.

        Args:
            view: the model's outputs (:class:`View`).
            *arrays: the rows of :meth:`arrays` for the images, as tensors.

        Returns:
            float32 tensor ``(N,)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must override score.")

    def for_image(self, n: int) -> "Target":
        """This target with image ``n``'s parameters alone (what an explanation of that
        image shows); ``self`` when they are the same for every image."""
        return self

    def note(self, view: View, *arrays):
        """A number per image that :meth:`check` reads after the run (e.g. the best IoU of
        a :class:`Box`); ``None`` where the target has nothing to say."""
        return None

    def check(self, notes: np.ndarray, stacklevel: int = 2) -> None:
        """Warn about what the run found, from the values of :meth:`note` ``(N,)``;
        ``stacklevel`` is passed to :func:`warnings.warn`."""

    def probability(self, view: View, *arrays):
        """The probability reported with the score ``(N,)``, or ``None``."""
        return None

    def evaluate(self, view: View, *arrays) -> tuple:
        """``(score, probability, note)``: :meth:`score`, :meth:`probability` and
        :meth:`note` in one trace; a target whose three share work (a :class:`Box`'s
        matching) overrides it to do that work once."""
        return self.score(view, *arrays), self.probability(view, *arrays), self.note(view, *arrays)

    @property
    def index(self) -> int:
        """The class index explained, or -1 when the target is not one class."""
        return -1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _rows(value, count: int, what: str, rank: int, dtype) -> np.ndarray:
    """``value`` with one row per image: given per image (rank + 1) or once (rank)."""
    array = np.asarray(value, dtype=dtype)
    if array.ndim == rank:
        return np.broadcast_to(array, (count,) + array.shape)
    if array.ndim == rank + 1 and array.shape[0] == count:
        return array
    raise ValueError(
        f"{what} has shape {array.shape}; expected one for the batch (rank {rank}) or one per "
        f"image ({count}, ...) for {count} images."
    )


def _index_rows(index: int, count: int) -> np.ndarray:
    return np.full((count,), index, np.int32)


def _check_category(category, classes: ClassNames | None, what: str) -> int:
    if isinstance(category, str):
        if classes is None:
            raise ValueError(f"{what}: class name {category!r} needs a model with one output.")
        return classes.index(category)
    if not _is_int(category):
        raise TypeError(f"{what}: the category must be a class index (int) or name (str); got {category!r}.")
    if classes is not None and classes.num_classes is not None:
        return classes.check_index(int(category))
    return int(category)


class _OneClass(Target):
    """A target about one class ``target`` of a ``(batch, classes)`` output, whose first
    array is the class index per image."""

    target: int | str = -1

    @property
    def index(self) -> int:
        return self.target if _is_int(self.target) else -1

    def probability(self, view, index, *arrays):
        values = ops.cast(self._select(view.outputs), "float32")
        return ops.take_along_axis(values, ops.cast(index, "int32")[:, None], axis=1)[:, 0]


_CLASSIFIER = "it needs a classifier output of shape (batch, classes)."


class Class(_OneClass):
    """A class's score: what an int or a class name means as a target.

    Args:
        index_or_name: the class index, or its name (a model's ``class_names``, or
            ImageNet's for 1000-class models).
        score: ``"auto"`` (the engine's own choice, see its ``score``), ``"logit"`` (the
            input of the final softmax) or ``"output"`` (the model's output, e.g. a
            probability). Defaults to ``"auto"``.
        output: which output, for a model with several. Defaults to ``None``.

    Raises:
        TypeError: ``index_or_name`` is neither an int nor a str.
        ValueError: ``score`` is not one of the three; a negative index.
    """

    def __init__(self, index_or_name, score: str = "auto", output=None):
        super().__init__(output)
        if not (isinstance(index_or_name, str) or _is_int(index_or_name)):
            raise TypeError(f"A class target is a class index (int) or name (str); got {index_or_name!r}.")
        if _is_int(index_or_name) and index_or_name < 0:
            raise ValueError(f"A class index is 0 or more; got {index_or_name}.")
        if score not in ("auto", "logit", "output"):
            raise ValueError(f"Class score must be 'auto', 'logit' or 'output'; got {score!r}.")
        self.target = index_or_name
        self.score_kind = score
        self.name = str(index_or_name)
        self.description = f"the {'score' if score == 'auto' else score} of class {index_or_name}"

    def _static(self):
        return (self.score_kind,)

    @property
    def _what(self) -> str:
        return f"Class target {self.target!r}"

    def bind(self, spec):
        shape, classes = self._classes(spec, 2, _CLASSIFIER + (
            " For other outputs use gradcam.targets.Segmentation, Output, Similarity, Box or a "
            "function of the outputs."))
        if self.score_kind == "logit" and not spec.has_logits:
            raise ValueError(
                f"Class target {self.target!r} with score='logit' needs the logits of a final softmax; "
                f"model {spec.model!r} does not end in one, or the engine explains its outputs "
                "(score='output')."
            )
        bound = Class(_check_category(self.target, classes, "Class"), self.score_kind, self.output)
        label = classes.label(bound.target) if classes is not None else str(bound.target)
        bound.name = label
        bound.description = (
            f"the {'logit' if self.score_kind != 'output' and spec.has_logits else 'output'} of class {label}"
        )
        return bound

    def arrays(self, count):
        return (_index_rows(self.target, count),)

    def _values(self, view):
        if self.score_kind == "output":
            return self._select(view.outputs)
        return self._select(view.scores)

    def score(self, view, index):
        values = ops.cast(self._values(view), "float32")
        return ops.take_along_axis(values, ops.cast(index, "int32")[:, None], axis=1)[:, 0]


class Segmentation(Target):
    """A region of a per-pixel output: the sum of a category's scores over a mask.

    For a segmenter's output ``y`` of shape ``(N, H, W, C)``:
    ``score_n = sum_{i, j} M[n, i, j] * y[n, i, j, c]``, as pytorch-grad-cam's
    ``SemanticSegmentationTarget``.

    Args:
        category: the class ``c``, an index or a name.
        mask: the pixels ``M``, ``(H, W)`` for every image or ``(N, H, W)``, bool or
            float (a weight per pixel); ``None``: the pixels whose top class is ``c``.
            Defaults to ``None``.
        output: which output, for a model with several. Defaults to ``None``.

    Raises:
        TypeError: ``category`` is neither an int nor a str.
    """

    def __init__(self, category, mask=None, output=None):
        super().__init__(output)
        if not (isinstance(category, str) or _is_int(category)):
            raise TypeError(f"Segmentation category must be a class index (int) or name (str); got {category!r}.")
        self.category = category
        self.mask = None if mask is None else np.asarray(mask)
        if self.mask is not None and (self.mask.dtype == object or not (
                np.issubdtype(self.mask.dtype, np.number) or self.mask.dtype == bool)):
            raise TypeError(f"Segmentation mask must be an array of bools or numbers; got {self.mask.dtype}.")
        self.name = f"segmentation of {category}"
        self.description = self._describe(str(category))

    def _describe(self, label):
        where = "the mask's pixels" if self.mask is not None else f"the pixels whose top class is {label}"
        return f"the sum of class {label}'s scores over {where}"

    def _static(self):
        return (self.mask is None,)

    def for_image(self, n):
        if self.mask is None or self.mask.ndim != 3:
            return self
        single = Segmentation(self.category, self.mask[n], self.output)
        single.name, single.description = self.name, self.description
        return single

    def bind(self, spec):
        shape, classes = self._classes(spec, 4, "it needs a per-pixel output (batch, height, width, classes).")
        bound = Segmentation(_check_category(self.category, classes, "Segmentation"), self.mask, self.output)
        if self.mask is not None and shape is not None:
            expected = tuple(shape[1:3])
            got = self.mask.shape[-2:] if self.mask.ndim in (2, 3) else self.mask.shape
            if self.mask.ndim not in (2, 3) or any(e is not None and e != g for e, g in zip(expected, got)):
                raise ValueError(
                    f"Segmentation mask has shape {self.mask.shape}; the output of model {spec.model!r} is "
                    f"{shape}, so the mask must be {expected} (height, width) or (N,) + {expected}."
                )
        label = classes.label(bound.category) if classes is not None else str(bound.category)
        bound.name = f"segmentation of {label}"
        bound.description = bound._describe(label)
        return bound

    def arrays(self, count):
        category = _index_rows(self.category, count)
        if self.mask is None:
            return (category,)
        return (category, _rows(self.mask, count, "Segmentation mask", 2, np.float32))

    def score(self, view, category, mask=None):
        values = ops.cast(self._select(view.scores), "float32")
        if len(values.shape) != 4:
            raise ValueError(
                f"Segmentation target: the output has shape {tuple(values.shape)}; it needs a per-pixel "
                "output (batch, height, width, classes)."
            )
        category = ops.cast(category, "int32")
        channel = ops.one_hot(category, values.shape[-1], dtype="float32")  # (N, C)
        scores = ops.einsum("nhwc,nc->nhw", values, channel)
        if mask is None:
            top = ops.argmax(values, axis=-1)
            mask = ops.cast(ops.equal(top, category[:, None, None]), "float32")
        return ops.sum(scores * ops.cast(mask, "float32"), axis=(1, 2))


class Similarity(Target):
    """How close the output vector is to a reference: their cosine similarity.

    ``score_n = <y_n, e_n> / (|y_n| |e_n|)`` for an embedding model's output ``y``
    ``(N, D)`` and a reference embedding ``e``.

    Args:
        embedding: the reference, ``(D,)`` for every image or ``(N, D)``.
        output: which output, for a model with several. Defaults to ``None``.

    Raises:
        ValueError: ``embedding`` is neither 1-D nor 2-D, or is all zero.
    """

    def __init__(self, embedding, output=None):
        super().__init__(output)
        self.embedding = np.asarray(embedding, dtype=np.float32)
        if self.embedding.ndim not in (1, 2):
            raise ValueError(
                f"Similarity embedding has shape {self.embedding.shape}; expected (D,) or (N, D)."
            )
        if not np.all(np.any(self.embedding != 0, axis=-1)):
            raise ValueError("Similarity embedding is all zero: its cosine similarity is undefined.")
        self.name = "similarity"
        self.description = f"the cosine similarity of the output with a reference embedding of length {self.embedding.shape[-1]}"

    def bind(self, spec):
        shape = self._shape(spec)
        if shape is not None and (len(shape) != 2 or shape[1] not in (None, self.embedding.shape[-1])):
            raise ValueError(
                f"Similarity embedding has length {self.embedding.shape[-1]} (shape {self.embedding.shape}); "
                f"the output of model {spec.model!r} has shape {shape}, so it must be (D,) or (N, D) with "
                f"D = {shape[-1] if len(shape) == 2 else 'the length of a (batch, D) output'}."
            )
        return self

    def arrays(self, count):
        return (_rows(self.embedding, count, "Similarity embedding", 1, np.float32),)

    def score(self, view, embedding):
        values = ops.cast(self._select(view.scores), "float32")
        dot = ops.sum(values * embedding, axis=-1)
        norms = ops.sqrt(ops.sum(values * values, axis=-1)) * ops.sqrt(ops.sum(embedding * embedding, axis=-1))
        return dot / ops.maximum(norms, 1e-12)


class Output(Target):
    """One unit of a raw output (a regression), or the sum of all its units.

    ``score_n = y[n].flat[i]``, or ``sum(y[n])`` when ``index`` is ``None``.

    Args:
        index: the unit: an int (an index into the flattened per-image output), a tuple
            (an index into the per-image output shape), or ``None`` for the sum of all.
            Defaults to ``None``.
        output: which output, for a model with several. Defaults to ``None``.

    Raises:
        TypeError: ``index`` is neither ``None``, an int nor a tuple of ints.
    """

    def __init__(self, index=None, output=None):
        super().__init__(output)
        if not (index is None or _is_int(index) or (isinstance(index, tuple) and all(map(_is_int, index)))):
            raise TypeError(f"Output index must be None, an int or a tuple of ints; got {index!r}.")
        self.unit = index
        self.name = "output" if index is None else f"output {index}"
        self.description = "the sum of the output's units" if index is None else f"unit {index} of the output"

    def _static(self):
        return (self.unit is None,)

    def bind(self, spec):
        shape = self._shape(spec)
        if self.unit is None:
            return self
        per_image = None if shape is None else tuple(shape[1:])
        if isinstance(self.unit, tuple):
            if per_image is None or None in per_image or len(per_image) != len(self.unit):
                raise ValueError(
                    f"Output index {self.unit} does not fit the output shape {shape} of model {spec.model!r}: a "
                    "tuple index needs a known per-image shape of the same rank."
                )
            try:
                flat = int(np.ravel_multi_index(self.unit, per_image))
            except ValueError:
                raise ValueError(f"Output index {self.unit} is out of range for the output shape {shape}.") from None
        else:
            flat = int(self.unit)
        size = None if per_image is None or None in per_image else int(np.prod(per_image))
        if flat < 0 or (size is not None and flat >= size):
            raise ValueError(
                f"Output index {self.unit} is out of range: the output {shape} of model {spec.model!r} has "
                f"{size} units per image (0..{None if size is None else size - 1})."
            )
        bound = Output(flat, self.output)
        bound.name, bound.description = self.name, self.description
        return bound

    def arrays(self, count):
        return () if self.unit is None else (_index_rows(self.unit, count),)

    def score(self, view, index=None):
        values = ops.cast(self._select(view.scores), "float32")
        flat = ops.reshape(values, (ops.shape(values)[0], -1))
        if index is None:
            return ops.sum(flat, axis=1)
        return ops.take_along_axis(flat, ops.cast(index, "int32")[:, None], axis=1)[:, 0]


def box_iou(boxes, box):
    """The IoU of each box ``(N, A, 4)`` with one box per image ``(N, 4)``, all as
    ``(x1, y1, x2, y2)``: ``(N, A)``, in ``keras.ops``."""
    box = box[:, None, :]
    width = ops.maximum(ops.minimum(boxes[..., 2], box[..., 2]) - ops.maximum(boxes[..., 0], box[..., 0]), 0.0)
    height = ops.maximum(ops.minimum(boxes[..., 3], box[..., 3]) - ops.maximum(boxes[..., 1], box[..., 1]), 0.0)
    inter = width * height

    def area(b):
        return ops.maximum(b[..., 2] - b[..., 0], 0.0) * ops.maximum(b[..., 3] - b[..., 1], 0.0)

    union = area(boxes) + area(box) - inter
    return inter / ops.maximum(union, 1e-12)


class NoBoxWarning(UserWarning):
    """A :class:`Box` target overlaps no predicted box enough: its map is all zero."""


class Box(Target):
    """A detector's box: the score of one category for the predicted box that overlaps a
    query box most.

    Among the predicted boxes ``B[n, a]``, the one with the largest IoU with ``box``,
    ``a* = argmax_a IoU(B[n, a], box)``; ``score_n = S[n, a*, c]`` when that IoU is at
    least ``iou``, else 0 (an all-zero map, with a :class:`NoBoxWarning` that names the
    best IoU found).

    Args:
        box: the query box ``(x1, y1, x2, y2)`` in input pixels, ``(4,)`` for every image
            or ``(N, 4)``.
        category: the category ``c`` whose score is explained (an index).
        iou: the smallest IoU that counts as the same box. Defaults to ``0.5``.
        decode: a function (in ``keras.ops``) of the model's outputs that returns
            ``(boxes (N, A, 4), scores (N, A, C))``; ``None``: the outputs are that pair.
            Defaults to ``None``.

    Raises:
        TypeError: ``category`` is not an int; ``decode`` is not callable.
        ValueError: ``box`` is not ``(4,)`` or ``(N, 4)``; ``iou`` is not in (0, 1].
    """

    def __init__(self, box, category, iou: float = 0.5, decode=None):
        super().__init__(None)
        self.box = np.asarray(box, dtype=np.float32)
        if self.box.ndim not in (1, 2) or self.box.shape[-1] != 4:
            raise ValueError(f"Box box has shape {self.box.shape}; expected (4,) or (N, 4) as (x1, y1, x2, y2).")
        if not _is_int(category) or category < 0:
            raise TypeError(f"Box category must be a class index (int, 0 or more); got {category!r}.")
        if not 0 < float(iou) <= 1:
            raise ValueError(f"Box iou must be in (0, 1]; got {iou!r}.")
        if decode is not None and not callable(decode):
            raise TypeError(f"Box decode must be a function or None; got {decode!r}.")
        self.category, self.iou, self.decode = int(category), float(iou), decode
        shown = tuple(round(float(v), 1) for v in self.box.reshape(-1, 4)[0])
        self.name = f"box {shown}: {category}"
        self.description = (
            f"the score of class {category} for the predicted box that overlaps {shown} most "
            f"(IoU at least {self.iou:g})"
        )

    def _static(self):
        return (self.decode,)

    @staticmethod
    def _expects(got):
        return ValueError(
            f"Box target: {got}; a Box needs a detector's outputs (boxes (N, A, 4), scores "
            "(N, A, classes)), or decode= a function that returns them."
        )

    def bind(self, spec):
        if self.decode is not None:
            return self
        shapes = spec.shapes
        pair = isinstance(shapes, (list, tuple)) and len(shapes) == 2 and all(
            _is_shape(s) and len(s) == 3 for s in shapes) and shapes[0][-1] == 4
        if not pair:
            raise self._expects(f"the outputs of model {spec.model!r} are {spec.describe()}")
        return self

    def for_image(self, n):
        if self.box.ndim == 1:
            return self
        single = Box(self.box[n], self.category, self.iou, self.decode)
        single.name, single.description = self.name, self.description
        return single

    def arrays(self, count):
        box = _rows(self.box, count, "Box box", 1, np.float32)
        return box, _index_rows(self.category, count), np.full((count,), self.iou, np.float32)

    def _decoded(self, view):
        decoded = view.scores if self.decode is None else self.decode(view.scores)
        source = "the outputs are" if self.decode is None else "decode returned"
        if not (isinstance(decoded, (list, tuple)) and len(decoded) == 2):
            raise self._expects(f"{source} a {type(decoded).__name__}")
        boxes, scores = decoded
        if len(boxes.shape) != 3 or boxes.shape[-1] != 4 or len(scores.shape) != 3:
            raise self._expects(f"{source} tensors of shapes {tuple(boxes.shape)} and {tuple(scores.shape)}")
        return ops.cast(boxes, "float32"), ops.cast(scores, "float32")

    def _match(self, view, box):
        boxes, scores = self._decoded(view)
        overlaps = box_iou(boxes, box)
        best = ops.argmax(overlaps, axis=1)
        return scores, best, ops.max(overlaps, axis=1)

    def score(self, view, box, category, iou):
        return self.evaluate(view, box, category, iou)[0]

    def note(self, view, box, category, iou):
        return self._match(view, box)[2]

    def evaluate(self, view, box, category, iou):
        scores, best, best_iou = self._match(view, box)  # once for the score and the note
        chosen = ops.take_along_axis(scores, ops.cast(best, "int32")[:, None, None], axis=1)[:, 0]  # (N, C)
        value = ops.take_along_axis(chosen, ops.cast(category, "int32")[:, None], axis=1)[:, 0]
        return ops.where(best_iou >= iou, value, ops.zeros_like(value)), None, best_iou

    def check(self, notes, stacklevel=2):
        if np.any(notes < self.iou):
            warnings.warn(
                f"Box target {self.name}: no predicted box overlaps the query box with an IoU of "
                f"{self.iou:g} or more (best IoU found: {float(np.min(notes)):.3f}); its map is all zero.",
                NoBoxWarning,
                stacklevel=stacklevel,
            )


class Contrast(_OneClass):
    """Finer-CAM's contrast of a class with similar classes (arXiv 2501.11309).

    ``score = sum_j p_j (y_c - alpha y_j) / sum_j p_j`` over the compared classes ``j``,
    with ``y`` the scores (logits) and ``p = softmax(y)``: what makes the image class ``c``
    rather than the classes it is most easily taken for.

    Args:
        index: the class ``c``, an index or a name.
        against: the compared classes (indices or names); ``None``: for each image, the
            three classes whose scores are closest to ``y_c``. Defaults to ``None``.
        alpha: how much of the compared classes' scores to subtract. Defaults to ``1.0``.
        output: which output, for a model with several. Defaults to ``None``.

    Raises:
        TypeError: ``index`` or a compared class is neither an int nor a str.
        ValueError: ``against`` is empty.
    """

    def __init__(self, index, against=None, alpha: float = 1.0, output=None):
        super().__init__(output)
        if not (isinstance(index, str) or _is_int(index)):
            raise TypeError(f"Contrast index must be a class index (int) or name (str); got {index!r}.")
        if against is not None:
            against = [against] if isinstance(against, str) or _is_int(against) else list(against)
            if not against:
                raise ValueError("Contrast against is empty: give class indices or names, or None.")
        self.target, self.against, self.alpha = index, against, float(alpha)
        self.name = self._label(str(index), None if against is None else [str(a) for a in against])
        self.description = f"class {index}'s score minus {self.alpha:g} x its closest classes' (Finer-CAM)"

    @staticmethod
    def _label(label, against):
        return f"{label} vs {'closest' if against is None else ', '.join(against)}"

    def _static(self):
        return (None if self.against is None else len(self.against),)

    def bind(self, spec):
        _, classes = self._classes(spec, 2, _CLASSIFIER)
        index = _check_category(self.target, classes, "Contrast")
        against = None if self.against is None else [_check_category(a, classes, "Contrast") for a in self.against]
        if against is None and classes is not None and classes.num_classes is not None and classes.num_classes < 4:
            raise ValueError(
                f"Contrast needs 4 classes or more to find the three closest; model {spec.model!r} has "
                f"{classes.num_classes}. Give against=[...]."
            )
        bound = Contrast(index, against, self.alpha, self.output)
        labels = (lambda i: classes.label(i)) if classes is not None else str
        bound.name = self._label(labels(index), None if against is None else [labels(a) for a in against])
        bound.description = (
            f"class {labels(index)}'s score minus {self.alpha:g} x that of "
            f"{'its three closest classes' if against is None else ', '.join(map(labels, against))}, "
            "weighted by their probabilities (Finer-CAM)"
        )
        return bound

    def arrays(self, count):
        rows = [_index_rows(self.target, count), np.full((count,), self.alpha, np.float32)]
        if self.against is not None:
            rows.append(np.tile(np.asarray(self.against, np.int32), (count, 1)))
        return tuple(rows)

    def score(self, view, index, alpha, against=None):
        y = ops.cast(self._select(view.scores), "float32")
        index = ops.cast(index, "int32")
        y_c = ops.take_along_axis(y, index[:, None], axis=1)  # (N, 1)
        if against is None:
            distance = ops.abs(y - y_c) + ops.one_hot(index, y.shape[-1], dtype="float32") * 1e30
            _, against = ops.top_k(-distance, 3)
        y_j = ops.take_along_axis(y, ops.cast(against, "int32"), axis=1)  # (N, J)
        p_j = ops.take_along_axis(ops.softmax(y, axis=-1), ops.cast(against, "int32"), axis=1)
        return ops.sum(p_j * (y_c - alpha[:, None] * y_j), axis=1) / ops.sum(p_j, axis=1)


class Function(Target):
    """Any function of the model's outputs, written with ``keras.ops``, as a target.

    ``score = f(outputs)``, where ``outputs`` are the model's outputs as it returns them
    (a tensor, or a list or dict of tensors), with a final softmax undone when the engine
    explains logits. Plain callables passed as targets are wrapped in this.

    Args:
        function: ``f(outputs) -> (N,)``, backend-neutral (``keras.ops``, no numpy, no
            TensorFlow, JAX or PyTorch functions).
        name: the label. Defaults to the function's ``__name__``.

    Raises:
        TypeError: ``function`` is not callable.
    """

    def __init__(self, function, name: str | None = None):
        super().__init__(None)
        if not callable(function):
            raise TypeError(f"A target function must be callable; got {function!r}.")
        self.function = function
        self.name = name or getattr(function, "__name__", type(function).__name__)
        doc = (getattr(function, "__doc__", None) or "").strip().splitlines()
        self.description = doc[0] if doc and not isinstance(function, type(self)) else f"{self.name}(outputs)"

    def _static(self):
        return (self.function,)

    def bind(self, spec):
        return self

    def score(self, view):
        try:
            result = self.function(view.scores)
        except Exception as error:
            raise TypeError(
                f"Target {self.name!r} failed while traced into the engine's computation on the "
                f"{keras.backend.backend()} backend ({type(error).__name__}: {error}). A target must be "
                "backend-neutral: written with keras.ops, not numpy, TensorFlow, JAX or PyTorch functions."
            ) from error
        if not ops.is_tensor(result) or isinstance(result, np.ndarray):
            raise TypeError(
                f"Target {self.name!r} returned {type(result).__module__}.{type(result).__name__}, not a "
                f"{keras.backend.backend()} tensor: a target must be backend-neutral, written with "
                "keras.ops (numpy results are constants the engine cannot differentiate)."
            )
        if len(result.shape) != 1 or result.shape[0] not in (None, _batch(view.outputs)):
            raise ValueError(
                f"Target {self.name!r} returned shape {tuple(result.shape)}; expected ({_batch(view.outputs)},): "
                "one score per image."
            )
        return ops.cast(result, "float32")


def _batch(outputs):
    return keras.tree.flatten(outputs)[0].shape[0]


def as_target(target) -> Target:
    """``target`` as a :class:`Target`: ints and names become :class:`Class`, functions
    :class:`Function`.

    Raises:
        TypeError: ``target`` is none of these.
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, str) or _is_int(target):
        return Class(target)
    if callable(target):
        return Function(target)
    raise TypeError(
        f"A target must be a class index (int), a class name (str), a gradcam.targets object or a "
        f"function of the model's outputs; got {target!r}."
    )


# -- resolving the targets of one call -----------------------------------------------------
def _resolve_one(target, classes: ClassNames) -> int:
    if isinstance(target, str):
        return classes.index(target)
    if _is_int(target):
        return classes.check_index(int(target))
    raise TypeError(
        f"A target must be a class index (int) or a class name (str); got {target!r}."
    )


def resolve_targets(targets, classes: ClassNames, batch_size: int) -> np.ndarray:
    """Turn user targets into an int32 array of shape ``(batch_size, K)``.

    Args:
        targets: ``None`` (the top prediction), one index or name, a list of indices
            and/or names shared by every image, or a 2-D integer array with one row of
            class indices per image.
        classes: the model's :class:`ClassNames`.
        batch_size: the number of images.

    Returns:
        int32 array; ``TOP`` (-1) marks "the top prediction".

    Raises:
        TypeError: a target of another type.
        ValueError: an index out of range, an unknown class name, an empty list, or a
            per-image array whose row count differs from the number of images.
    """
    if targets is None:
        return np.full((batch_size, 1), TOP, dtype=np.int32)
    if isinstance(targets, np.ndarray) and targets.ndim == 2:
        if targets.shape[0] != batch_size or targets.shape[1] == 0:
            raise ValueError(
                f"Per-image targets must have shape ({batch_size}, K) for {batch_size} images; "
                f"got shape {targets.shape}."
            )
        rows = [[_resolve_one(t, classes) for t in row] for row in targets.tolist()]
        return np.asarray(rows, dtype=np.int32)
    if isinstance(targets, (str, int, np.integer)):
        targets = [targets]
    try:
        targets = list(targets)
    except TypeError:
        raise TypeError(
            f"targets must be None, a class index or name, or a list of them; got {targets!r}."
        ) from None
    if not targets:
        raise ValueError("targets is empty: pass None for the top prediction, or class indices/names.")
    row = [_resolve_one(t, classes) for t in targets]
    return np.tile(np.asarray(row, dtype=np.int32), (batch_size, 1))


def _as_list(targets) -> list | None:
    """The targets of one call as a list, or ``None`` when they are the plain class ones
    :func:`resolve_targets` reads (``None``, ints, names, a 2-D array)."""
    if targets is None or isinstance(targets, (str, np.ndarray)) or _is_int(targets):
        return None
    if isinstance(targets, Target) or (callable(targets) and not isinstance(targets, (list, tuple))):
        return [targets]
    try:
        items = list(targets)
    except TypeError:
        return None
    plain = all(isinstance(t, str) or _is_int(t) for t in items)
    plain = plain or all(
        isinstance(t, str) or _is_int(t) or (type(t) is Class and t.score_kind == "auto" and t.output is None)
        for t in items
    )
    return None if plain else items


def _plain(targets):
    """Plain class targets with :class:`Class` objects (default score) as their index or name."""
    if isinstance(targets, (list, tuple)):
        return [t.target if isinstance(t, Class) else t for t in targets]
    return targets


@dataclass(frozen=True)
class Plan:
    """The targets of one call, checked against the model, with their array parameters.

    Attributes:
        targets: the bound :class:`Target` objects, in the order asked (``K`` of them).
        arrays: each target's arrays, one row per image.
    """

    targets: tuple
    arrays: tuple

    @property
    def key(self) -> tuple:
        """What decides the compiled computation: the targets' keys and arrays' shapes."""
        shapes = tuple(tuple((a.shape[1:], a.dtype.str) for a in arrays) for arrays in self.arrays)
        return tuple(t.key for t in self.targets), shapes

    def flat(self, start: int = 0, stop: int | None = None) -> list:
        """The arrays of images ``start:stop``, in one flat list."""
        return [a[start:stop] for arrays in self.arrays for a in arrays]

    def take(self, rows) -> list:
        """The arrays of the images ``rows`` (an index array), in one flat list."""
        return [a[rows] for arrays in self.arrays for a in arrays]

    def signature(self, rows=None) -> list:
        """``(shape, dtype)`` of each flat array, ``rows`` (``None``: any) images."""
        return [((rows,) + a.shape[1:], a.dtype.name) for arrays in self.arrays for a in arrays]

    def _split(self, flat):
        parts, start = [], 0
        for arrays in self.arrays:
            parts.append(flat[start : start + len(arrays)])
            start += len(arrays)
        return parts

    def evaluate(self, view: View, flat):
        """``(scores, probabilities, notes)``, each ``(N, K)`` float32; NaN where a target
        has no probability or note."""
        scores, probas, notes = [], [], []
        for target, arrays in zip(self.targets, self._split(flat)):
            score, probability, note = target.evaluate(view, *arrays)
            scores.append(score)
            for values, value in ((probas, probability), (notes, note)):
                values.append(ops.full_like(score, float("nan")) if value is None else ops.cast(value, "float32"))
        return tuple(ops.stack(values, axis=1) for values in (scores, probas, notes))

    def check(self, notes: np.ndarray, stacklevel: int = 2) -> None:
        """Let each target warn about what the run found (:meth:`Target.check`);
        ``stacklevel`` is that of a warning issued in this method."""
        for k, target in enumerate(self.targets):
            target.check(notes[:, k], stacklevel + 1)

    def indices(self, count: int) -> np.ndarray:
        """Each image's class index for each target (-1 where a target is not one class),
        int32 ``(count, K)``: the first array of a :class:`Class` or :class:`Contrast`."""
        columns = [arrays[0] if t.index >= 0 else np.full(count, -1) for t, arrays in zip(self.targets, self.arrays)]
        return np.stack(columns, axis=1).astype(np.int32)


def is_target_object(targets) -> bool:
    """Whether ``targets`` is one :class:`Target` or a function of the outputs (not a class
    index, a name, or a list)."""
    return isinstance(targets, Target) or (callable(targets) and not isinstance(targets, (list, tuple, np.ndarray)))


def check_classifier(spec: OutputSpec, what: str) -> None:
    """Check that the model has one ``(batch, classes)`` output, which class targets need.

    Args:
        spec: the model's :class:`OutputSpec`.
        what: the target, as the message names it.

    Raises:
        ValueError: the model's outputs are not one ``(batch, classes)`` output.
    """
    if spec.single is None or len(spec.single) != 2:
        raise ValueError(
            f"Model {spec.model!r} has outputs {spec.describe()}; {what} needs a classifier output "
            "(batch, classes). Explain its outputs with a gradcam.targets object (Segmentation, "
            "Similarity, Output, Box, Contrast) or a function of the outputs."
        )


def plan(targets, spec: OutputSpec, count: int):
    """The targets of one call: plain class targets as :func:`resolve_targets`'s int32
    ``(count, K)`` array, any other as a :class:`Plan`.

    Args:
        targets: ``None``, class indices or names (one, a list, or a 2-D per-image array),
            :class:`Target` objects, functions of the outputs, or a list mixing them.
        spec: the model's :class:`OutputSpec`.
        count: the number of images.

    Returns:
        An int32 array ``(count, K)`` (``TOP`` marks the top prediction) or a :class:`Plan`.

    Raises:
        TypeError: a target of another type; a target function that is not callable.
        ValueError: a target that does not fit the model's outputs, an index out of range,
            an unknown class name, an empty list, a per-image parameter of another count.
    """
    items = _as_list(targets)
    if items is None:
        check_classifier(spec, "the top prediction" if targets is None else f"class target {targets!r}")
        return resolve_targets(_plain(targets), spec.classes, count)
    if not items:
        raise ValueError("targets is empty: pass None for the top prediction, or targets.")
    bound = tuple(as_target(t).bind(spec) for t in items)
    return Plan(bound, tuple(tuple(np.ascontiguousarray(a) for a in t.arrays(count)) for t in bound))
