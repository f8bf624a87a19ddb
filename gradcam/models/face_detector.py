"""MTCNN's three face networks (P-Net, R-Net, O-Net) for Keras 3, with offline pretrained weights.

MTCNN (Zhang et al., 2016, arXiv 1604.02878) finds faces in three stages; its first, P-Net,
is fully convolutional: for every 12x12 window of the image (stride 2) it gives the
probability that the window holds a face and four offsets that move the window onto the
face. Its second and third stages look again at each proposed window, cut out of the image
and resized: R-Net at 24x24 pixels, O-Net at 48x48; each gives the probability of a face
and four offsets that refine the window's edges, and O-Net also five landmarks (eyes,
nose, mouth corners). The weights come from the ``mtcnn`` wheel (MIT licence), a
dependency of this package: its ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4`` are read by
:mod:`gradcam.models.joblib_weights` (numpy and ``lz4`` only: neither mtcnn's code nor
joblib is imported) and checked against stored sha256 digests.

:func:`PNet` builds the proposal network, optionally behind a resizing layer so that one
scale of MTCNN's image pyramid is one model; :func:`decode_pnet` turns its outputs into
boxes in the input's pixels and per-box scores, the pair a detector target reads;
:func:`box_decoder` binds it to a model's scale (and decodes R-Net's and O-Net's outputs
too). :func:`RNet` and :func:`ONet` build the refinement networks; :func:`decode_refined`
turns their outputs into the refined box in the crop's pixels and its scores, and
:func:`decode_landmarks` O-Net's landmarks into the crop's pixels.
"""

from __future__ import annotations


import keras
import numpy as np

from gradcam.models.joblib_weights import read_joblib_arrays
from gradcam.models.packaged import check_weights_argument, package_file

__all__ = ["ONet", "PNet", "RNet", "box_decoder", "decode_landmarks", "decode_pnet", "decode_refined",
           "preprocess_input"]

_PACKAGE = "mtcnn"
_WEIGHTS = "assets/weights/pnet.lz4"
_SHA256 = "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5"
# The refinement networks: weights file, its sha256, and input size.
_REFINERS = {
    "rnet": ("assets/weights/rnet.lz4", "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee", 24),
    "onet": ("assets/weights/onet.lz4", "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3", 48),
}
#: P-Net looks at windows of this many input pixels ...
CELL_SIZE = 12
#: ... every this many pixels (its one max pooling halves the resolution).
STRIDE = 2
#: The columns of the scores: P-Net's softmax over "no face" and "face".
CLASS_NAMES = ("no face", "face")
# Layers with weights, in the order of the file's arrays, and how many arrays each takes.
_WEIGHTED_LAYERS = (("conv1", 2), ("prelu1", 1), ("conv2", 2), ("prelu2", 1), ("conv3", 2),
                    ("prelu3", 1), ("conv4_1", 2), ("conv4_2", 2))


def preprocess_input(x):
    """Scale RGB images from 0..255 to about -1..1, as MTCNN expects: ``(x - 127.5) / 128``.

    Args:
        x: images with RGB values 0..255 in the last axis, e.g. ``(N, H, W, 3)``: a numpy
            array (or anything ``numpy.asarray`` accepts) or a tensor. It is not modified.

    Returns:
        A new float32 numpy array, or a float32 tensor if ``x`` is a tensor.
    """
    if keras.ops.is_tensor(x) or isinstance(x, keras.KerasTensor):
        return (keras.ops.cast(x, "float32") - 127.5) / 128.0
    return (np.asarray(x, dtype=np.float32) - np.float32(127.5)) / np.float32(128.0)


def _weights_path(file: str = _WEIGHTS, network: str = "P-Net") -> str:
    """Path of a network's weights inside the ``mtcnn`` wheel, found without importing it."""
    return package_file(_PACKAGE, file, f"The weights of MTCNN's {network}")


def _read_weights(file: str, sha256: str, layers, network: str = "P-Net") -> tuple[str, list]:
    """Read and check a network's weights before it is built: ``(path, arrays)``."""
    path = _weights_path(file, network)
    arrays = read_joblib_arrays(path, expected_sha256=sha256)
    expected = sum(count for _, count in layers)
    if len(arrays) != expected:
        raise ValueError(f"{path} holds {len(arrays)} arrays; the network has {expected}.")
    return path, arrays


def _set_weights(model, path: str, arrays: list, layers) -> None:
    """Give ``layers`` (``(name, count)`` in the file's order) their arrays."""
    start = 0
    for layer_name, count in layers:
        layer = model.get_layer(layer_name)
        try:
            layer.set_weights(arrays[start:start + count])
        except ValueError as error:
            raise ValueError(f"{path} does not fit layer {layer_name!r}: {error}") from None
        start += count


def _check_arguments(weights, input_shape, scale):
    """Validate the builder's arguments; return the input shape."""
    check_weights_argument(weights, "mtcnn", "the weights shipped in the mtcnn wheel")
    shape = (None, None, 3) if input_shape is None else tuple(input_shape)
    if not (len(shape) == 3 and shape[2] == 3
            and all(n is None or (isinstance(n, (int, np.integer)) and n >= CELL_SIZE)
                    for n in shape[:2])):
        raise ValueError(
            "`input_shape` should be (height, width, 3) with height and width None or at "
            f"least {CELL_SIZE}, e.g. (None, None, 3). Received: input_shape={input_shape!r}"
        )
    if not (isinstance(scale, (int, float, np.number)) and 0 < scale <= 1):
        raise ValueError(f"`scale` should be a number in (0, 1]. Received: scale={scale!r}")
    if scale != 1 and (shape[0] is None or shape[1] is None):
        raise ValueError(
            "`scale` other than 1 needs a fixed input size, e.g. input_shape=(512, 512, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    if scale != 1 and min(round(n * scale) for n in shape[:2]) < CELL_SIZE:
        raise ValueError(
            f"`scale`={scale!r} makes the {shape[0]}x{shape[1]} input smaller than P-Net's "
            f"{CELL_SIZE}x{CELL_SIZE} window."
        )
    return shape


def PNet(weights="mtcnn", input_shape=None, scale=1.0, name="pnet"):  # noqa: N802 (a builder)
    """Build MTCNN's proposal network, by default with the ``mtcnn`` wheel's weights.

    The layers are those of mtcnn 1.0's ``PNet`` (``conv1``, ``prelu1``, ``maxpooling1``,
    ``conv2``, ``prelu2``, ``conv3``, ``prelu3``, then the 1x1 heads ``conv4_1``: box
    offsets, and ``conv4_2``: softmax face probability). With ``scale`` below 1 the model
    first resizes its input (bilinear, antialiased, layer ``rescale``) to
    ``round(height * scale) x round(width * scale)``: one level of MTCNN's image pyramid,
    where a window covers ``12 / scale`` input pixels. The network expects inputs prepared
    by :func:`preprocess_input`.

    Args:
        weights: `None` (random initialisation), `"mtcnn"` (the weights shipped in the
            ``mtcnn`` wheel) or the path to a Keras weights file to load.
            Defaults to `"mtcnn"`.
        input_shape: ``(height, width, 3)``; height and width may be None (any size) when
            ``scale`` is 1. Defaults to `None`, meaning ``(None, None, 3)``.
        scale: how much the input is shrunk before P-Net sees it, in (0, 1].
            Defaults to `1.0`.
        name: name of the model. Defaults to `"pnet"`.

    Returns:
        A Keras Functional model with two outputs: box offsets ``(N, h, w, 4)`` (``x1, y1,
        x2, y2``, in window sizes) and probabilities ``(N, h, w, 2)`` (no face, face), one
        per window. Its last spatial layer with a feature map is ``prelu3``.

    Raises:
        ValueError: an argument is invalid (the message echoes it), or the weights file is
            corrupted or does not fit the model.
        ImportError: ``weights="mtcnn"`` but the ``mtcnn`` wheel is not installed.

    Example:
        >>> from gradcam.models import face_detector
        >>> pnet = face_detector.PNet(input_shape=(512, 512, 3), scale=0.15)
        >>> x = face_detector.preprocess_input(gradcam.image_from_path(
        ...     gradcam.samples.path("astronaut"), image_shape=(512, 512)))
        >>> boxes, scores = face_detector.box_decoder(pnet)(pnet(x))
    """
    shape = _check_arguments(weights, input_shape, scale)
    arrays = None
    if weights == "mtcnn":  # read and check the weights before building
        path, arrays = _read_weights(_WEIGHTS, _SHA256, _WEIGHTED_LAYERS)

    layers = keras.layers
    inputs = keras.Input(shape=shape)
    x = inputs
    if scale != 1:
        x = layers.Resizing(round(shape[0] * scale), round(shape[1] * scale),
                            interpolation="bilinear", antialias=True, name="rescale")(x)
    for i, filters in enumerate((10, 16, 32), start=1):
        x = layers.Conv2D(filters, 3, name=f"conv{i}")(x)
        x = layers.PReLU(shared_axes=[1, 2], name=f"prelu{i}")(x)
        if i == 1:
            x = layers.MaxPooling2D(2, 2, padding="same", name="maxpooling1")(x)
    offsets = layers.Conv2D(4, 1, name="conv4_1")(x)
    probabilities = layers.Conv2D(2, 1, activation="softmax", name="conv4_2")(x)
    model = keras.Model(inputs, [offsets, probabilities], name=name)

    if arrays is not None:
        _set_weights(model, path, arrays, _WEIGHTED_LAYERS)
    elif weights is not None:
        model.load_weights(weights)
    model.pnet_scale = _exact_scale(model)
    return model


def _exact_scale(model):
    """The factors (y, x) from the model's input to what P-Net sees, after rounding."""
    height, width = model.inputs[0].shape[1:3]
    try:
        rescale = model.get_layer("rescale")
    except ValueError:
        return (1.0, 1.0)
    return (rescale.height / height, rescale.width / width)


def _head_names(model) -> list:
    """The names of the layers that give the model's outputs (``conv4_1``, ``conv4_2`` for P-Net)."""
    operations = [getattr(getattr(t, "_keras_history", None), "operation", None) for t in getattr(model, "outputs", [])]
    return [getattr(operation, "name", None) for operation in operations]


def decode_pnet(outputs, scale=1.0):
    """P-Net's outputs as boxes in the input's pixels and one score row per box, in keras.ops.

    Window ``(i, j)`` of the output grid covers input pixels ``x`` from ``2 j`` to
    ``2 j + 12`` and ``y`` from ``2 i`` to ``2 i + 12`` (in what P-Net sees); its offsets
    move each edge by a fraction of the window (mtcnn 1.0's ``generate_bounding_box``), and
    dividing by ``scale`` maps the box back onto the input. No threshold and no
    non-maximum suppression: every window is a box, so the result has a fixed shape and is
    differentiable with respect to the outputs.

    Args:
        outputs: the model's outputs ``[offsets (N, h, w, 4), probabilities (N, h, w, 2)]``.
        scale: the model's resizing factor: a number, or ``(y, x)`` factors (a model built
            by :func:`PNet` stores its exact ones as ``model.pnet_scale``).
            Defaults to `1.0`.

    Returns:
        ``(boxes, scores)``: boxes ``(N, h * w, 4)`` as ``(x1, y1, x2, y2)`` in input
        pixels, scores ``(N, h * w, 2)``: the probabilities of "no face" and "face".

    Raises:
        ValueError: ``outputs`` is not a pair of 4-D tensors with 4 and 2 channels.
    """
    if not (isinstance(outputs, (list, tuple)) and len(outputs) == 2):
        raise ValueError(
            "Expected P-Net's outputs [offsets (N, h, w, 4), probabilities (N, h, w, 2)]; "
            f"received {type(outputs).__name__}."
        )
    offsets, probabilities = outputs
    if (len(offsets.shape) != 4 or offsets.shape[-1] != 4 or len(probabilities.shape) != 4
            or probabilities.shape[-1] != 2):
        raise ValueError(
            "Expected P-Net's outputs [offsets (N, h, w, 4), probabilities (N, h, w, 2)]; "
            f"received shapes {tuple(offsets.shape)} and {tuple(probabilities.shape)}."
        )
    ops = keras.ops
    scale_y, scale_x = (scale, scale) if np.ndim(scale) == 0 else scale
    shape = ops.shape(offsets)
    dtype = offsets.dtype
    top = ops.cast(ops.arange(shape[1]), dtype)[:, None] * STRIDE   # (h, 1)
    left = ops.cast(ops.arange(shape[2]), dtype)[None, :] * STRIDE  # (1, w)
    x1 = (left + CELL_SIZE * offsets[..., 0]) / scale_x
    y1 = (top + CELL_SIZE * offsets[..., 1]) / scale_y
    x2 = (left + CELL_SIZE + CELL_SIZE * offsets[..., 2]) / scale_x
    y2 = (top + CELL_SIZE + CELL_SIZE * offsets[..., 3]) / scale_y
    boxes = ops.reshape(ops.stack([x1, y1, x2, y2], axis=-1), (shape[0], -1, 4))
    return boxes, ops.reshape(probabilities, (shape[0], -1, 2))


def box_decoder(model):
    """The ``decode`` of a detector target for one of the three networks: for P-Net,
    :func:`decode_pnet` bound to the model's exact scale; for R-Net and O-Net,
    :func:`decode_refined` with their crop size.

    The command line's ``--decode gradcam.models.face_detector:box_decoder`` calls it with
    the loaded model: a P-Net saved with ``model.save`` and loaded again has lost its
    ``pnet_scale``, which is then read from its ``rescale`` layer.

    Args:
        model: a model built by :func:`PNet`, :func:`RNet` or :func:`ONet`, or one loaded
            from its saved file.

    Returns:
        A function from the model's outputs to ``(boxes (N, A, 4), scores (N, A, 2))``
        (``A = 1`` for R-Net and O-Net).

    Raises:
        ValueError: ``model`` is none of the three networks.
    """
    heads = _head_names(model)
    for size, names in ((24, ["fc5-1", "fc5-2"]), (48, ["fc6-1", "fc6-2", "fc6-3"])):
        if heads == names:
            return lambda outputs: decode_refined(outputs, size)
    scale = getattr(model, "pnet_scale", None)
    if scale is None and heads == ["conv4_1", "conv4_2"]:
        scale = _exact_scale(model)
    if scale is None:
        raise ValueError(f"Expected a model built by face_detector.PNet, RNet or ONet; received {model!r}.")

    def decode(outputs):
        return decode_pnet(outputs, scale)

    return decode


# -- the refinement networks --------------------------------------------------------------
#: R-Net's and O-Net's layers: (convolution filters, kernel, pooling (size, stride,
#: padding) or None) per block, then the dense layer's units, then the heads' units.
_REFINER_LAYOUT = {
    "rnet": (((28, 3, (3, 2, "same")), (48, 3, (3, 2, "valid")), (64, 2, None)), 128, (("fc5-1", 4),),
             "fc5-2"),
    "onet": (((32, 3, (3, 2, "same")), (64, 3, (3, 2, "valid")), (64, 3, (2, 2, "same")), (128, 2, None)), 256,
             (("fc6-1", 4), ("fc6-2", 10)), "fc6-3"),
}


def _refiner(kind: str, weights, name: str):
    """Build R-Net or O-Net (mtcnn 1.0's layers and names) with the wheel's weights."""
    check_weights_argument(weights, "mtcnn", "the weights shipped in the mtcnn wheel")
    blocks, units, heads, classifier = _REFINER_LAYOUT[kind]
    file, sha256, size = _REFINERS[kind]
    network = "R-Net" if kind == "rnet" else "O-Net"
    dense = len(blocks) + 1
    order = [entry for i in range(1, len(blocks) + 1) for entry in ((f"conv{i}", 2), (f"prelu{i}", 1))]
    order += [(f"fc{dense}", 2), (f"prelu{dense}", 1)] + [(head, 2) for head, _ in heads] + [(classifier, 2)]
    arrays = None
    if weights == "mtcnn":
        path, arrays = _read_weights(file, sha256, order, network)

    layers = keras.layers
    inputs = keras.Input(shape=(size, size, 3))
    x = inputs
    for i, (filters, kernel, pool) in enumerate(blocks, start=1):
        x = layers.Conv2D(filters, kernel, name=f"conv{i}")(x)
        x = layers.PReLU(shared_axes=[1, 2], name=f"prelu{i}")(x)
        if pool is not None:
            x = layers.MaxPooling2D(pool[0], pool[1], padding=pool[2], name=f"maxpooling{i}")(x)
    # mtcnn flattens the last feature map column by column (Caffe's order)
    x = layers.Flatten(name=f"flatten{len(blocks)}")(layers.Permute((2, 1, 3), name="permute")(x))
    x = layers.PReLU(name=f"prelu{dense}")(layers.Dense(units, name=f"fc{dense}")(x))
    outputs = [layers.Dense(count, name=head)(x) for head, count in heads]
    outputs.append(layers.Dense(2, activation="softmax", name=classifier)(x))
    model = keras.Model(inputs, outputs, name=name)
    if arrays is not None:
        _set_weights(model, path, arrays, order)
    elif weights is not None:
        model.load_weights(weights)
    return model


def RNet(weights="mtcnn", name="rnet"):  # noqa: N802 (a builder)
    """Build MTCNN's refinement network, by default with the ``mtcnn`` wheel's weights.

    R-Net looks at one window proposed by P-Net, cut out of the image and resized to
    24x24 pixels (prepared by :func:`preprocess_input`): the layers are mtcnn 1.0's
    (``conv1``-``conv3`` with ``prelu1``-``prelu3`` and two max poolings, ``permute`` and
    ``flatten3``, ``fc4`` and ``prelu4``, then the heads ``fc5-1``: box offsets, and
    ``fc5-2``: softmax face probability).

    Args:
        weights: `None` (random initialisation), `"mtcnn"` (the weights shipped in the
            ``mtcnn`` wheel) or the path to a Keras weights file to load.
            Defaults to `"mtcnn"`.
        name: name of the model. Defaults to `"rnet"`.

    Returns:
        A Keras Functional model from ``(N, 24, 24, 3)`` to ``[offsets (N, 4),
        probabilities (N, 2)]``: the offsets move each edge of the window by a fraction
        of its size (:func:`decode_refined`). Its last layer with a feature map is
        ``prelu3``.

    Raises:
        ValueError: ``weights`` is invalid, or the weights file is corrupted or does not
            fit the model.
        ImportError: ``weights="mtcnn"`` but the ``mtcnn`` wheel is not installed.
    """
    return _refiner("rnet", weights, name)


def ONet(weights="mtcnn", name="onet"):  # noqa: N802 (a builder)
    """Build MTCNN's output network, by default with the ``mtcnn`` wheel's weights.

    O-Net looks at one window refined by R-Net, cut out of the image and resized to 48x48
    pixels (prepared by :func:`preprocess_input`): the layers are mtcnn 1.0's
    (``conv1``-``conv4`` with ``prelu1``-``prelu4`` and three max poolings, ``permute``
    and ``flatten4``, ``fc5`` and ``prelu5``, then the heads ``fc6-1``: box offsets,
    ``fc6-2``: landmarks, and ``fc6-3``: softmax face probability).

    Args:
        weights: `None` (random initialisation), `"mtcnn"` (the weights shipped in the
            ``mtcnn`` wheel) or the path to a Keras weights file to load.
            Defaults to `"mtcnn"`.
        name: name of the model. Defaults to `"onet"`.

    Returns:
        A Keras Functional model from ``(N, 48, 48, 3)`` to ``[offsets (N, 4), landmarks
        (N, 10), probabilities (N, 2)]`` (:func:`decode_refined`,
        :func:`decode_landmarks`). Its last layer with a feature map is ``prelu4``.

    Raises:
        ValueError: ``weights`` is invalid, or the weights file is corrupted or does not
            fit the model.
        ImportError: ``weights="mtcnn"`` but the ``mtcnn`` wheel is not installed.

    Example:
        >>> onet = face_detector.ONet()
        >>> boxes, scores = face_detector.box_decoder(onet)(onet(crops))  # crops (N, 48, 48, 3)
    """
    return _refiner("onet", weights, name)


def _refiner_outputs(outputs, what: str):
    """``outputs`` after checking they are R-Net's (2) or O-Net's (3) output tensors."""
    fits = isinstance(outputs, (list, tuple)) and len(outputs) in (2, 3)
    if fits:
        counts = (4, 2) if len(outputs) == 2 else (4, 10, 2)
        fits = all(len(t.shape) == 2 and t.shape[-1] == c for t, c in zip(outputs, counts))
    if not fits:
        got = (f"shapes {' and '.join(str(tuple(t.shape)) for t in outputs)}"
               if isinstance(outputs, (list, tuple)) else type(outputs).__name__)
        raise ValueError(f"Expected {what}; received {got}.")
    return outputs


def decode_refined(outputs, size: int):
    """R-Net's or O-Net's outputs as the refined box in the crop's pixels and its scores, in keras.ops.

    The crop (the window, resized to ``size`` pixels) spans ``0..size`` on each axis; the
    offsets move its edges by a fraction of its size, as mtcnn 1.0's ``adjust_bboxes``:
    ``(size dx1, size dy1, size + size dx2, size + size dy2)``. Multiply by the window's
    size over ``size`` and add its corner to read the box in the image's pixels.

    Args:
        outputs: R-Net's ``[offsets (N, 4), probabilities (N, 2)]`` or O-Net's
            ``[offsets (N, 4), landmarks (N, 10), probabilities (N, 2)]``.
        size: the crop's side in pixels: 24 for R-Net, 48 for O-Net.

    Returns:
        ``(boxes, scores)``: boxes ``(N, 1, 4)`` as ``(x1, y1, x2, y2)`` in the crop's
        pixels, scores ``(N, 1, 2)``: the probabilities of "no face" and "face".

    Raises:
        ValueError: ``outputs`` is not R-Net's or O-Net's.
    """
    outputs = _refiner_outputs(outputs, "R-Net's [offsets (N, 4), probabilities (N, 2)] or O-Net's [offsets "
                                        "(N, 4), landmarks (N, 10), probabilities (N, 2)]")
    ops = keras.ops
    offsets, probabilities = outputs[0], outputs[-1]
    corners = ops.convert_to_tensor(np.array([0, 0, size, size], np.float32))
    boxes = corners + ops.cast(offsets, "float32") * float(size)
    return boxes[:, None, :], ops.cast(probabilities, "float32")[:, None, :]


def decode_landmarks(outputs, size: int = 48):
    """O-Net's landmarks in the crop's pixels, in keras.ops: mtcnn 1.0's
    ``adjust_landmarks`` on a crop that spans ``0..size``.

    Args:
        outputs: O-Net's ``[offsets (N, 4), landmarks (N, 10), probabilities (N, 2)]``;
            the landmarks are five x fractions, then five y fractions of the crop (left
            eye, right eye, nose, left and right mouth corners).
        size: the crop's side in pixels. Defaults to `48`.

    Returns:
        float32 ``(N, 5, 2)``: each landmark's ``(x, y)`` in the crop's pixels.

    Raises:
        ValueError: ``outputs`` is not O-Net's.
    """
    what = "O-Net's [offsets (N, 4), landmarks (N, 10), probabilities (N, 2)]"
    if not (isinstance(outputs, (list, tuple)) and len(outputs) == 3):
        raise ValueError(f"Expected {what}; received {type(outputs).__name__}.")
    landmarks = keras.ops.cast(_refiner_outputs(outputs, what)[1], "float32")
    return keras.ops.stack([landmarks[:, :5], landmarks[:, 5:]], axis=-1) * float(size)
