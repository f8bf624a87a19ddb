"""A Keras callback that draws the maps of a fixed set of images while a model trains."""

from __future__ import annotations

import os

import keras
import numpy as np
from PIL import Image

from gradcam.checks import check_positive_int
from gradcam.image import to_batch
from gradcam.methods import build_engine
from gradcam.methods.registry import check_method_name, check_method_options
from gradcam.render import format_as_image


class ExplainCallback(keras.callbacks.Callback):
    """Draw where the model looks on a fixed set of images, every ``every`` epochs of
    ``model.fit``: TensorBoard image summaries and/or PNG files.

    At the end of every ``every``-th epoch (epochs ``every - 1``, ``2 * every - 1``, ...,
    counted from 0 as Keras counts them), the method's maps of ``images`` for ``targets``
    are drawn on the images (:func:`~gradcam.format_as_image`) and written:

    * with ``log_dir``, to TensorBoard: one image summary per target position, tagged with
      the method's name (``"gradcam"``; ``"gradcam/target_1"`` for the second of several
      targets), holding one overlay per image, at step ``epoch`` (as Keras's own
      ``TensorBoard`` callback logs its epoch summaries). The event file is written by
      TensorFlow's summary writer (``tf.summary.write``), whichever backend Keras runs on;
      TensorBoard itself (``pip install tensorboard``) is needed only to look at it;
    * with ``png_dir``, to ``png_dir/epoch_0000/image_000.png`` (``epoch_<epoch>/
      image_<n>_target_<k>.png`` with several targets), RGB.

    The engine is built once, when training begins (:meth:`on_train_begin`): it computes
    the maps once then, so that images of the wrong size for the model, unknown targets or
    layers fail before the first epoch, and it is compiled then; every epoch after that
    reuses the compiled computation, which reads the weights as they are (no recompiling).
    The last epoch's explanations are kept in :attr:`explanations`.

    Args:
        images: the images to explain, ``(N, H, W, C)`` or one ``(H, W, C)``: ready for
            the model, or raw (RGB, 0..255) with ``preprocess``. Copied: changing the
            array afterwards changes nothing.
        targets: as for :meth:`~gradcam.methods.base.Method.compute`: ``None`` (each
            image's top prediction at that epoch), a class index or name, a list of them
            shared by all images, or one row per image. Defaults to ``None``.
        layer: the layer to explain, as for :class:`~gradcam.GradCAM`. Defaults to
            ``None``.
        method: a name of :data:`gradcam.METHODS`. Defaults to ``"gradcam"``.
        every: write the maps every this many epochs, a positive integer. Defaults to
            ``1``.
        log_dir: the TensorBoard log directory to write the image summaries to, or
            ``None``. Defaults to ``None``.
        png_dir: the directory to write PNG files to, or ``None``. Defaults to ``None``.
        preprocess: the model's preprocessing, applied to ``images`` (see
            :class:`~gradcam.GradCAM`); the maps are then drawn on the raw images.
            Defaults to ``None``.
        score: as for :class:`~gradcam.GradCAM`. Defaults to ``"auto"``.
        class_names: as for :class:`~gradcam.GradCAM`. Defaults to ``None``.
        method_options: the method's own keyword arguments, a dict. Defaults to ``None``.
        batch_size: how many images go through the model at once. Defaults to ``32``.

    Attributes:
        engine: the method's engine (a :class:`~gradcam.methods.base.Method`), built when
            training begins; ``None`` before.
        explanations: the last written epoch's :class:`~gradcam.Explanation` list, one per
            image; ``None`` before.

    Raises:
        TypeError: ``images`` is not an array of numbers; ``preprocess`` is not callable;
            an option the method does not take.
        ValueError: ``images`` has the wrong rank, no image, or NaN or infinite values;
            an unknown method; ``every`` or ``batch_size`` not a positive integer; neither
            ``log_dir`` nor ``png_dir``. When training begins, as for
            :class:`~gradcam.GradCAM` and its ``compute``: images of another size than the
            model takes, an unknown layer, score or target.

    Example:
        >>> callback = ExplainCallback(x_test[:4], log_dir="logs", every=2)
        >>> model.fit(x_train, y_train, epochs=10, callbacks=[callback])
    """

    def __init__(self, images, targets=None, layer=None, method: str = "gradcam", every: int = 1,
                 log_dir=None, png_dir=None, preprocess=None, score: str = "auto", class_names=None,
                 method_options=None, batch_size: int = 32):
        super().__init__()
        self.images = np.array(to_batch(images, name="images"))
        self.targets = targets
        self.layer = layer
        self.method = check_method_name(method)
        self.every = check_positive_int(every, "every")
        if log_dir is None and png_dir is None:
            raise ValueError(
                "ExplainCallback writes the maps to TensorBoard (log_dir=...) and/or to PNG files "
                "(png_dir=...); got neither."
            )
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a function or None; got {preprocess!r}.")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.png_dir = None if png_dir is None else os.fspath(png_dir)
        self.preprocess = preprocess
        self.score = score
        self.class_names = class_names
        self.method_options = dict(check_method_options(self.method, method_options))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.engine = None
        self.explanations = None
        self._writer = None

    def on_train_begin(self, logs=None):
        """Build the engine for the model being trained (once per model), check the images
        and targets against it by computing their maps, and open the TensorBoard writer."""
        if self.engine is None or self.engine.model is not self.model:
            self.engine = build_engine(
                self.model, self.method, layer=self.layer, score=self.score, class_names=self.class_names,
                preprocess=self.preprocess, options=self.method_options,
            )
        self.engine.warn_empty = False  # untrained weights may well give empty maps
        try:
            self.engine.compute(self.images, self.targets, self.batch_size)
        finally:
            self.engine.warn_empty = True
        if self.log_dir is not None and self._writer is None:
            import tensorflow as tf  # a dependency of gradcam; only its summary writer is used

            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        """Write the maps after every ``every``-th epoch."""
        if (epoch + 1) % self.every:
            return
        self.explanations = self.engine.explain(self.images, self.targets, batch_size=self.batch_size)
        count = len(self.explanations[0].targets)
        overlays = np.stack([
            [np.asarray(format_as_image(explanation, target=k).convert("RGB")) for k in range(count)]
            for explanation in self.explanations
        ])  # (N, K, H, W, 3) uint8
        names = [self.method if count == 1 else f"{self.method}/target_{k}" for k in range(count)]
        if self._writer is not None:
            with self._writer.as_default():
                for k, name in enumerate(names):
                    _write_images(name, overlays[:, k], epoch)
            self._writer.flush()
        if self.png_dir is not None:
            folder = os.path.join(self.png_dir, f"epoch_{epoch:04d}")
            os.makedirs(folder, exist_ok=True)
            for n, per_target in enumerate(overlays):
                for k, overlay in enumerate(per_target):
                    suffix = "" if count == 1 else f"_target_{k}"
                    Image.fromarray(overlay).save(os.path.join(folder, f"image_{n:03d}{suffix}.png"))

    def on_train_end(self, logs=None):
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _write_images(name, images, step):
    """Write uint8 RGB ``images`` ``(N, H, W, 3)`` as one TensorBoard image summary to the
    default summary writer: what ``tf.summary.image`` writes (TensorBoard's image plugin:
    a string tensor holding the width, the height, then each image's PNG), written with
    TensorFlow's own ``tf.summary.write``, so that TensorBoard need not be installed to
    write it (only to look at it)."""
    import tensorflow as tf

    height, width = images.shape[1:3]
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="images"),
        data_class="DATA_CLASS_BLOB_SEQUENCE",
    )
    pngs = [tf.image.encode_png(image) for image in images]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + pngs)
    tf.summary.write(name, tensor, step=step, metadata=metadata)
