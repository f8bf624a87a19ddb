"""Loading images from files and checking image arrays ("docs") before a model sees them."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


def check_image_shape(image_shape) -> tuple[int, int] | None:
    """Check an image size argument.

    Args:
        image_shape: ``(height, width)``, two positive integers, or ``None``.

    Returns:
        ``(height, width)`` as Python integers, or ``None``.

    Raises:
        ValueError: anything else, named in the message.
    """
    if image_shape is None:
        return None
    try:
        height, width = image_shape
        ok = all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
            for v in (height, width)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"image_shape must be (height, width) with two positive integers, or None; "
            f"got {image_shape!r}."
        )
    return int(height), int(width)


def _float_to_8_bit(array: np.ndarray, mode: str) -> np.ndarray:
    """Scale a one-channel integer or float image to 0..255.

    16-bit images (and 32-bit integer ones with values above 255) are read as 0..65535.
    Float images whose values all lie in [0, 1] are read as 0..1, the usual convention of
    float image files (a float TIFF saved by scikit-image or NumPy); other float images
    as 0..255 (values above 255 as 0..65535).
    """
    peak = float(np.nanmax(array, initial=0))
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F" and float(np.nanmin(array, initial=0)) >= 0.0 and peak <= 1.0:
        top = 1.0
    else:
        top = 65535.0 if peak > 255 else 255.0
    return np.clip(np.round(np.nan_to_num(array) * (255.0 / top)), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB.

    16-bit and float images are scaled to 0..255 (float images with values in 0..1 as
    fractions), palettes are expanded, and transparency is composited on white.

    Args:
        image: a Pillow image.

    Returns:
        A ``PIL.Image.Image`` in mode ``"RGB"``.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(_float_to_8_bit(array, image.mode), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "RGBa", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def load_image(path) -> Image.Image:
    """Open an image file as an upright 8-bit RGB Pillow image.

    EXIF orientation is applied; grayscale, palette, RGBA (composited on white), CMYK,
    16-bit and float files are converted to RGB (float files with values in [0, 1] are
    scaled to 0..255). Every error message names the file.

    Args:
        path: path of the image file.

    Returns:
        A ``PIL.Image.Image`` in mode ``"RGB"``, fully loaded (the file is closed).

    Raises:
        FileNotFoundError: no file at ``path``.
        PermissionError: the file exists but may not be read.
        ValueError: ``path`` is not a regular file (a folder, a FIFO, a device); the file
            is not an image, is truncated or corrupt, exceeds one of Pillow's safety limits
            (such as the size of a PNG text chunk), or is a decompression bomb (more pixels
            than ``PIL.Image.MAX_IMAGE_PIXELS`` allows).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No image file at {path!r}.")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file (a folder, FIFO or device); expected an image file.")
    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                return to_rgb(image)
    except PermissionError:
        raise PermissionError(f"Permission denied: cannot read the image file {path!r}.") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path!r} is not an image file Pillow can read.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"{path!r} is too large to decode safely: {error}") from None
    except (OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"{path!r} is truncated or corrupt: {error}") from None
    except ValueError as error:  # Pillow's limits, e.g. "Decompressed Data Too Large"
        raise ValueError(f"{path!r} cannot be decoded safely: {error}") from None


def image_from_path(path, image_shape=(224, 224)) -> np.ndarray:
    """Load an image file as a batch of one, ready for a model's ``preprocess_input``.

    Args:
        path: path of the image file (any format Pillow reads).
        image_shape: ``(height, width)`` to resize to (bilinear), or ``None`` to keep the
            file's size. Defaults to ``(224, 224)``.

    Returns:
        float32 array of shape ``(1, height, width, 3)``, RGB, values 0..255.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be decoded (see :func:`load_image`), or
            ``image_shape`` is not two positive integers.

    Example:
        >>> doc = image_from_path(gradcam.samples.path("chelsea"), image_shape=(224, 224))
        >>> doc.shape, doc.dtype
        ((1, 224, 224, 3), dtype('float32'))
    """
    shape = check_image_shape(image_shape)
    return doc_from_image(load_image(path), shape)


def doc_from_image(image: Image.Image, image_shape=(224, 224)) -> np.ndarray:
    """Turn an RGB Pillow image into a batch of one, as :func:`image_from_path` does.

    Args:
        image: a ``PIL.Image.Image`` in mode ``"RGB"`` (e.g. from :func:`load_image`).
        image_shape: ``(height, width)`` to resize to (bilinear), or ``None`` to keep the
            image's size. Defaults to ``(224, 224)``.

    Returns:
        float32 array of shape ``(1, height, width, 3)``, RGB, values 0..255.

    Raises:
        ValueError: ``image_shape`` is not two positive integers.
    """
    shape = check_image_shape(image_shape)
    if shape is not None and image.size != (shape[1], shape[0]):
        image = image.resize((shape[1], shape[0]), resample=Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)[np.newaxis]


def to_batch(doc, name: str = "doc") -> np.ndarray:
    """Check an image array and return it as a batch ``(N, H, W, C)``.

    Args:
        doc: array-like of shape ``(H, W, C)`` (one image) or ``(N, H, W, C)``.
        name: what to call the argument in error messages.

    Returns:
        A numpy array of rank 4 (a view where possible; never modified).

    Raises:
        TypeError: ``doc`` is not a numeric array-like.
        ValueError: wrong rank, an empty batch, or NaN / infinite values.
    """
    if isinstance(doc, (str, bytes, os.PathLike, Image.Image)):
        raise TypeError(
            f"{name} must be an image array of shape (1, H, W, C) or (H, W, C); got "
            f"{type(doc).__name__}. Load files with gradcam.image_from_path(path) first."
        )
    try:
        array = np.asarray(doc)
    except Exception as error:  # objects numpy cannot convert
        raise TypeError(f"{name} must be an array-like of numbers; got {type(doc).__name__}: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(
            f"{name} must be an array of numbers; got {type(doc).__name__} with dtype {array.dtype}."
        )
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4:
        raise ValueError(
            f"Expected {name} to have rank 4 (batch, height, width, channels) or rank 3 "
            f"(one image); got an array of shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {array.shape}).")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; expected finite pixel values.")
    return array


def image_from_array(doc) -> Image.Image:
    """Rebuild a displayable RGB image from one (possibly preprocessed) image array.

    Values already in 0..255 (with a maximum above 1) are used as they are; anything else
    (for example ``(x - 127) / 128`` or caffe-style mean-subtracted input) is stretched
    from its minimum to its maximum. A single channel becomes gray.

    Args:
        doc: array of shape ``(1, H, W, C)`` or ``(H, W, C)`` with C = 1, 3 or 4.

    Returns:
        A ``PIL.Image.Image`` in mode ``"RGB"``.
    """
    array = to_batch(doc)[0].astype(np.float64)
    low, high = array.min(), array.max()
    if not (low >= 0 and 1 < high <= 255):
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    channels = array.shape[-1]
    if channels == 1:
        return Image.fromarray(array[..., 0], mode="L").convert("RGB")
    if channels in (3, 4):
        return Image.fromarray(array[..., :3], mode="RGB")
    raise ValueError(
        f"Cannot show an image with {channels} channels; expected 1, 3 or 4. "
        "Pass image= (a PIL image) to explain_prediction."
    )
