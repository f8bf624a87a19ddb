"""The worker threads' first job in a run: read each file, cut the window a keras-hub
classifier's preprocessor keeps, resize it for the model and (for overlays) for the
overlay, at most two batches ahead of the engine."""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gradcam.batch.settings import RunSettings
from gradcam.checks import one_line
from gradcam.image import doc_from_image, load_image
from gradcam.io.inputs import Input


def overlay_base(image: Image.Image, max_side: int | None = 320) -> Image.Image:
    """The picture an overlay is drawn on: ``image`` shrunk so that its longer side is at
    most ``max_side`` pixels; ``None`` or ``0`` keeps the full size.

    Shrinking averages the pixels each new pixel covers (Pillow's ``BOX`` filter, after a
    fast integer reduction for large factors): no ringing, and a third of the cost of
    Lanczos.

    Args:
        image: an RGB PIL image.
        max_side: the longest side allowed, in pixels. Defaults to ``320``.

    Returns:
        ``image`` itself when small enough, else a resized copy.
    """
    width, height = image.size
    if not max_side or max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, resample=Image.BOX, reducing_gap=2.0)


def _background_priority() -> None:
    """Lower the calling worker thread's priority by 10 nice levels, on Linux.

    The engine splits each operation across its own threads; when a worker holds a core
    one of them needs, the others wait for it. At a lower priority the workers give the
    core up at once, and still use all the time the engine leaves (measured: the run goes
    from about 65% to about 74% of the engine's own speed on 2 cores). Linux keeps a nice
    value per thread; elsewhere ``os.nice`` would slow the whole process, so it is left alone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.nice(10)


@dataclass
class _Decoded:
    """An input after a worker read it: the model's image and the overlay's, or why not."""

    item: Input
    doc: np.ndarray | None = None
    base: Image.Image | None = None
    error: str | None = None
    warning: str | None = None


#: An image whose width or height is below the model's divided by this is warned about:
#: upscaled that much, it holds little for the model to see.
SMALL_IMAGE_FACTOR = 4


def small_image_warning(path: str, size: tuple[int, int], image_shape: tuple[int, int]) -> str | None:
    """The warning for an image of ``size`` (width, height) much smaller than the model's
    ``image_shape`` (height, width) (:data:`SMALL_IMAGE_FACTOR`), or ``None``."""
    (width, height), (model_height, model_width) = size, image_shape
    if width * SMALL_IMAGE_FACTOR >= model_width and height * SMALL_IMAGE_FACTOR >= model_height:
        return None
    return (f"{path!r} is {width}x{height} pixels, much smaller than the model's {model_width}x{model_height}: "
            "it is upscaled, and its map shows little.")


class _Decoder:
    """The worker threads' first job: read, cut and resize the inputs, in input order, at
    most ``decoded_ahead`` images ahead of the engine. The same pool draws the overlays.

    Args:
        inputs: the inputs, in order.
        settings: the run's settings (the model's image shape, the overlay's size).
        view: the window a keras-hub classifier's preprocessor keeps of a picture.
        keeps_picture: whether to keep a picture to draw on (:func:`overlay_base`).
        timed: the run's timer.
    """

    def __init__(self, inputs: list[Input], settings: RunSettings, view, keeps_picture: bool, timed):
        self.settings, self.view, self.keeps_picture, self.timed = settings, view, keeps_picture, timed
        self.inputs = iter(inputs)
        self.pool = ThreadPoolExecutor(settings.workers or os.cpu_count() or 2,
                                       thread_name_prefix="gradcam-worker", initializer=_background_priority)
        self.decoding: collections.deque[Future] = collections.deque()  # in input order

    def decode(self, item: Input) -> _Decoded:
        """Read one file and resize it for the model (and the overlay); never raises."""
        try:
            with self.timed("decode"):
                if os.path.getsize(item.path) == 0:
                    raise ValueError(f"{item.path!r} is empty (0 bytes).")
                image = load_image(item.path)
            warning = small_image_warning(item.path, image.size, self.settings.image_shape)
            with self.timed("resize"):
                image = self.view(image)  # the window a keras-hub classifier's preprocessor keeps
                doc = doc_from_image(image, self.settings.image_shape)[0]
                base = overlay_base(image, self.settings.overlay_size) if self.keeps_picture else None
            return _Decoded(item, doc, base, warning=warning)
        except Exception as error:  # any unreadable file: recorded, the run goes on
            return _Decoded(item, error=one_line(error))

    def next_chunk(self) -> list[_Decoded] | None:
        """Decoded entries, in input order, up to ``batch_size`` readable images;
        ``None`` at the end. Keeps ``decoded_ahead`` files decoding ahead."""
        chunk, readable = [], 0
        with self.timed("wait_decode"):
            while readable < self.settings.batch_size:
                self._submit_decoding()
                if not self.decoding:
                    break
                entry = self.decoding.popleft().result()
                chunk.append(entry)
                readable += entry.error is None
        self._submit_decoding()
        return chunk or None

    def _submit_decoding(self) -> None:
        while len(self.decoding) < self.settings.decoded_ahead:
            item = next(self.inputs, None)
            if item is None:
                return
            self.decoding.append(self.pool.submit(self.decode, item))
