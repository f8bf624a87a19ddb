"""A batch of images as a model takes it, for the engines and the metrics.

:func:`model_input` applies the caller's ``preprocess`` (and a keras-hub classifier's own
preprocessor) to a batch and checks the result against the model's input;
:func:`checked_batch` checks a caller's images once, so that a function that hands them
on to an engine (:func:`gradcam.explain_prediction`) does not check them again.
"""

from __future__ import annotations

import numpy as np

from gradcam import hub
from gradcam.image import to_batch


class CheckedBatch(np.ndarray):
    """A batch of images ``(N, H, W, C)`` already checked by :func:`checked_batch`: an
    engine takes it as it is (a view of the caller's array, never changed)."""


def checked_batch(docs, name: str = "docs") -> CheckedBatch:
    """Check images once (:func:`gradcam.image.to_batch`) and mark the batch as checked.

    Args:
        docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``.
        name: what to call the argument in error messages. Defaults to ``"docs"``.

    Returns:
        The batch, a :class:`CheckedBatch` view of ``docs`` (or of its conversion to an
        array).

    Raises:
        TypeError: ``docs`` is not a numeric array-like.
        ValueError: wrong rank, an empty batch, or NaN / infinite values.
    """
    if isinstance(docs, CheckedBatch):
        return docs
    return to_batch(docs, name=name).view(CheckedBatch)


def as_batch(docs, name: str = "docs") -> np.ndarray:
    """``docs`` as a plain batch: checked by :func:`checked_batch` unless it already was.

    Args:
        docs: images, ``(N, H, W, C)`` or one ``(H, W, C)``, or a :class:`CheckedBatch`.
        name: what to call the argument in error messages. Defaults to ``"docs"``.

    Returns:
        A numpy array of rank 4 (a view where possible; never modified).

    Raises:
        TypeError: ``docs`` is not a numeric array-like.
        ValueError: wrong rank, an empty batch, or NaN / infinite values.
    """
    return np.asarray(checked_batch(docs, name))


def model_input(model, batch: np.ndarray, preprocess, input_shape, input_dtype) -> np.ndarray:
    """A batch of images as the model takes it: ``preprocess`` applied, then checked.

    ``preprocess`` (if any) runs on ``batch``, then a keras-hub classifier's own
    preprocessor (:func:`gradcam.hub.preprocess_samples`), as ``model.predict()`` runs it;
    the result must hold as many images, of the model's input shape. The engines and the
    metrics prepare their batches with it.

    Args:
        model: the Keras model the batch is for.
        batch: images ``(N, H, W, C)``; with ``preprocess``, an array of the caller's own,
            which ``preprocess`` may change in place.
        preprocess: a function of a batch, or ``None``.
        input_shape: the model's image shape ``(height, width, channels)``, ``None``
            where any size is accepted.
        input_dtype: the model's input dtype.

    Returns:
        The model's input batch, of ``input_dtype`` (``batch`` itself where nothing changes).

    Raises:
        TypeError: ``preprocess`` returns something else than an array of numbers.
        ValueError: ``preprocess`` returns another number of images, or NaN or infinite
            values; the images do not have the model's input shape.
    """
    if preprocess is not None:
        count = len(batch)
        batch = to_batch(preprocess(batch), name="the output of preprocess")
        if len(batch) != count:
            raise ValueError(
                f"preprocess returned {len(batch)} images for {count}; it must keep the batch as it is."
            )
    # keras-hub classifiers: their preprocessor, as model.predict() runs it (gradcam.hub)
    batch = hub.preprocess_samples(model, batch)
    check_input_shape(model, batch.shape, input_shape, preprocess is not None)
    return batch.astype(input_dtype, copy=False)


def check_input_shape(model, shape, input_shape, preprocessed: bool) -> None:
    """Check that a batch's shape fits the model's input.

    Args:
        model: the Keras model the batch is for.
        shape: the batch's shape ``(N, H, W, C)`` (of an array or a backend tensor).
        input_shape: the model's image shape ``(height, width, channels)``, ``None``
            where any size is accepted.
        preprocessed: whether the batch is what ``preprocess`` made, for the message.

    Raises:
        ValueError: the images do not have the model's input shape.
    """
    expected, shape = tuple(input_shape), tuple(shape)
    if len(expected) != 3 or len(shape) != 4 or any(e is not None and e != got for e, got in zip(expected, shape[1:])):
        what = "preprocess made a batch" if preprocessed else "got a batch"
        raise ValueError(
            f"Model {model.name!r} expects images of shape {expected} (height, width, channels); "
            f"{what} of shape {shape}. Load images with gradcam.image_from_path(path, "
            f"image_shape={expected[:2]})."
        )
