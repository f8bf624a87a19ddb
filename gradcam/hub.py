"""keras-hub image classifiers: the preprocessing that their ``predict()`` applies.

A ``keras_hub.models.ImageClassifier`` (``ResNetImageClassifier``,
``EfficientNetImageClassifier``, ``ViTImageClassifier``...) may carry a ``preprocessor``
that ``predict()``, ``fit()`` and ``evaluate()`` run on the images before the model
sees them: it resizes them to the backbone's size and rescales their values. Calling the
model itself (as every explanation does, ``model(x)``) skips that step, so the engine
(:meth:`gradcam.methods.base.Method.compute`) and the metrics' scoring
(:mod:`gradcam.metrics.scoring`) run it through :func:`preprocess_samples`: the explained
and measured scores are then the ones ``predict()`` gives.

The preprocessor is read from the model at each call, as ``predict()`` reads it, so
setting ``model.preprocessor = None`` explains the model on images that are ready for it.
A ``preprocess=`` given to the engine runs first, on the user's images, and the
preprocessor then runs on its output: the explained prediction is
``model.predict(preprocess(images))``, the call the user would make.

keras-hub's image converters resize to the backbone's size and, by default, keep the
aspect ratio by cutting the largest centred window of the target shape
(``crop_to_aspect_ratio``) or by padding the image with black (``pad_to_aspect_ratio``).
A map then covers that window (or the padded image), not the whole picture:
:func:`model_view` gives the part of each picture the model saw, at the picture's own
resolution, and the explanations are drawn on it.

This module is the only one that knows keras-hub, and it does not import it: a model can
only be a keras-hub classifier once ``keras_hub`` has been imported, so the module looks
for it in :data:`sys.modules`. gradcam works the same without keras-hub installed.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from keras import ops
from PIL import Image

from gradcam import backend


def image_classifier_preprocessor(model):
    """The preprocessor that ``model.predict()`` runs on images, if ``model`` is a
    keras-hub image classifier that has one.

    Args:
        model: any object (a Keras model, usually).

    Returns:
        ``model.preprocessor`` when ``model`` is a ``keras_hub.models.ImageClassifier``
        whose ``preprocessor`` is set; ``None`` for any other model, and whenever
        ``keras_hub`` has not been imported.
    """
    keras_hub = sys.modules.get("keras_hub")
    classifier = getattr(getattr(keras_hub, "models", None), "ImageClassifier", None)
    if classifier is None or not isinstance(model, classifier):
        return None
    return model.preprocessor


def preprocess_samples(model, images: np.ndarray) -> np.ndarray:
    """Run a keras-hub classifier's preprocessor on a batch, as ``model.predict()`` does.

    Args:
        model: the model that the batch is for.
        images: ``(N, H, W, C)``, the images as the user would give them to
            ``model.predict()`` (RGB 0..255 for keras-hub's own preprocessors).

    Returns:
        ``images`` itself when ``model`` has no keras-hub preprocessor
        (:func:`image_classifier_preprocessor`); else the preprocessor's output for them,
        as a numpy array (resized and rescaled: ``(N, h, w, C)`` at the backbone's size).

    Raises:
        ValueError: the preprocessor returns something else than one batch of as many
            images.
    """
    if image_classifier_preprocessor(model) is None:
        return images
    # Task.preprocess_samples is what predict() maps over its dataset (labels are None).
    # a float32 copy, as for the engine's preprocess: the caller's array is never touched
    output = model.preprocess_samples(np.array(images, dtype=np.float32))
    if isinstance(output, (tuple, list)) and len(output) == 1:
        output = output[0]
    shape = tuple(getattr(output, "shape", ()))
    if len(shape) != 4 or shape[0] != len(images):
        raise ValueError(
            f"The preprocessor of keras-hub model {model.name!r} turned a batch of shape "
            f"{images.shape} into {type(output).__name__} of shape {shape}; expected a batch "
            f"of {len(images)} images (batch, height, width, channels)."
        )
    # keras-hub preprocesses with TensorFlow where it is installed, else on the backend
    return backend.current().to_numpy(output) if ops.is_tensor(output) else np.asarray(output)


def view_box(model, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Where the part of a picture that a keras-hub classifier's preprocessor gives the
    model lies in the picture.

    The image converter of a keras-hub preprocessor resizes every image to the backbone's
    size; with ``crop_to_aspect_ratio`` it first cuts the largest centred window of the
    target aspect ratio, with ``pad_to_aspect_ratio`` it pads the image with zeros (black)
    to that ratio, both as ``keras.ops.image.resize`` does (the same integer arithmetic).

    Args:
        model: the model that the picture is for.
        height: the picture's height.
        width: the picture's width.

    Returns:
        ``(top, left, height, width)`` of the window, in the picture's pixels (a padded
        image starts above and left of the picture: negative ``top`` or ``left``);
        ``None`` when ``model`` has no keras-hub preprocessor, or one that neither crops
        nor pads (or whose image converter is not known).
    """
    preprocessor = image_classifier_preprocessor(model)
    converter = getattr(preprocessor, "image_converter", None)
    size = getattr(converter, "image_size", None)
    if size is None:
        return None
    target_height, target_width = size
    if getattr(converter, "crop_to_aspect_ratio", False):
        crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
        crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
        return (int(float(height - crop_height) / 2), int(float(width - crop_width) / 2),
                crop_height, crop_width)
    if getattr(converter, "pad_to_aspect_ratio", False):
        pad_height = max(height, int(float(width * target_height) / target_width))
        pad_width = max(width, int(float(height * target_width) / target_height))
        return (-int(float(pad_height - height) / 2), -int(float(pad_width - width) / 2),
                pad_height, pad_width)
    return None


def model_view(model, pictures: np.ndarray) -> np.ndarray:
    """The part of each picture that a keras-hub classifier's preprocessor gives the model
    (:func:`view_box`), at the picture's own resolution: a map covers exactly that window
    or padded image, so that the map can be drawn on it.

    Args:
        model: the model that the pictures are for.
        pictures: ``(N, H, W, C)``, the user's images (before any preprocessing).

    Returns:
        ``pictures`` itself when ``model`` has no keras-hub preprocessor, or one that does
        not crop or pad (or whose image converter is not known); else a new array: the
        centred ``(N, h, W)`` or ``(N, H, w)`` window, or the padded images.
    """
    box = view_box(model, *pictures.shape[1:3])
    if box is None:
        return pictures
    top, left, height, width = box
    if top >= 0 and left >= 0:
        return pictures[:, top : top + height, left : left + width].copy()
    padded = np.zeros((len(pictures), height, width) + pictures.shape[3:], pictures.dtype)
    padded[:, -top : -top + pictures.shape[1], -left : -left + pictures.shape[2]] = pictures
    return padded


#: The most pixels :func:`picture_view` pads a picture to without scaling it down first
#: (when four times the picture's pixels are fewer): 4096 x 4096.
MAX_PADDED_PIXELS = 4096 * 4096


def picture_view(model, picture: Image.Image) -> Image.Image:
    """:func:`model_view` of one Pillow picture: what the command line reads from a file
    before resizing it for the model, so that a keras-hub classifier's preprocessor gets
    the window it would cut from the whole picture, as ``predict()`` on it does.

    Padding a picture of an extreme aspect ratio would make a huge canvas (a strip of 10 x
    100 000 pixels becomes 100 000 x 100 000): when the padded picture would hold more than
    four times the picture's pixels and more than :data:`MAX_PADDED_PIXELS`, the picture is
    first scaled down (bilinear) so that it holds at most the larger of the two; the model
    and the overlays need far fewer pixels than that.

    Args:
        model: the model that the picture is for.
        picture: the picture, as :func:`gradcam.load_image` reads it.

    Returns:
        ``picture`` itself when :func:`view_box` is ``None``; else the window (padding
        black, as Pillow's ``crop`` fills outside the picture).
    """
    box = view_box(model, picture.height, picture.width)
    if box is None:
        return picture
    top, left, height, width = box
    limit = max(4 * picture.width * picture.height, MAX_PADDED_PIXELS)
    if height * width > limit:
        scale = math.sqrt(limit / (height * width))
        picture = picture.resize((max(1, int(picture.width * scale)), max(1, int(picture.height * scale))),
                                 resample=Image.BILINEAR)
        top, left, height, width = view_box(model, picture.height, picture.width)
    return picture.crop((left, top, left + width, top + height))
