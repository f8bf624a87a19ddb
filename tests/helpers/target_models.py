"""Tiny fixed-weight models that are not classifiers, for the targets' hand-computed maps.

All start as the tiny classifier does (:mod:`helpers.tiny`): for ``X = arange(16)`` the
``conv`` layer gives ``A0 = [[10, 18], [42, 50]]`` and ``A1 = -5`` everywhere.

``make_segmenter``: ``conv``, then a 1x1 convolution ``classifier`` whose kernel is the
tiny classifier's ``W = [[0.1, -0.1], [0.2, 0.3]]`` (channel x class), no bias, no
activation: a per-pixel output ``(N, 2, 2, 2)`` with
``y0 = 0.1 A0 + 0.2 A1 = [[0, 0.8], [3.2, 4.0]]`` and
``y1 = -0.1 A0 + 0.3 A1 = [[-2.5, -3.3], [-5.7, -6.5]]``: class 0 is every pixel's top class.

``make_detector``: the segmenter's output read as 4 anchors (one per cell, row-major),
``scores = reshape(y, (N, 4, 2))``, with fixed boxes, one per cell, in input pixels:
cell ``(i, j)`` is ``(2j, 2i, 2j + 2, 2i + 2)``. Outputs ``[boxes (N, 4, 4), scores
(N, 4, 2)]``.

``make_five_classes``: ``conv``, global average pooling (``[30, -5]``), Dense(5) with
``W5`` (channel x class) and no bias or softmax: logits ``z = [2, -4.5, 1, -2, -10]``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from helpers.tiny import DENSE_KERNEL, conv_layer, set_weights

GRID_BOXES = np.array([[0, 0, 2, 2], [2, 0, 4, 2], [0, 2, 2, 4], [2, 2, 4, 4]], np.float32)
SEGMENT_0 = np.array([[0, 0.8], [3.2, 4.0]], np.float32)  # y0 for X
W5 = np.array([[0.1, -0.1, 0.05, 0.0, 0.0], [0.2, 0.3, 0.1, 0.4, 2.0]], np.float32)
LOGITS_5 = np.array([2.0, -4.5, 1.0, -2.0, -10.0], np.float32)


def make_segmenter(name="segmenter"):
    inputs = keras.Input((4, 4, 1), name="image")
    classifier = keras.layers.Conv2D(2, 1, use_bias=False, name="classifier")
    model = keras.Model(inputs, classifier(conv_layer()(inputs)), name=name)
    classifier.set_weights([DENSE_KERNEL[None, None]])
    return set_weights(model)


class GridBoxes(keras.layers.Layer):
    """The fixed boxes of :data:`GRID_BOXES`, one set per image of the batch it is given."""

    def call(self, x):
        zero = ops.reshape(ops.zeros_like(x[..., :1]), (-1, 4, 1))  # (N, 4, 1): the batch size
        return zero + ops.convert_to_tensor(GRID_BOXES)[None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4, 4)


def make_detector(name="detector"):
    segmenter = make_segmenter()
    y = segmenter.output
    scores = keras.layers.Reshape((4, 2), name="scores")(y)
    boxes = GridBoxes(name="boxes")(y)
    return keras.Model(segmenter.input, [boxes, scores], name=name)


def decode_grid(outputs):
    """A segmenter's ``(N, 2, 2, 2)`` output as a detector's ``(boxes, scores)``."""
    scores = ops.reshape(outputs, (-1, 4, 2))
    return ops.zeros_like(scores[..., :1]) + ops.convert_to_tensor(GRID_BOXES)[None], scores


def make_five_classes(name="five"):
    inputs = keras.Input((4, 4, 1), name="image")
    dense = keras.layers.Dense(5, use_bias=False, name="logits")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D(name="pool")(conv_layer()(inputs))), name=name)
    dense.set_weights([W5])
    return set_weights(model)


def grad_cam_map(alpha, activations):
    """``ReLU(sum_k alpha_k A_k) / max``: Grad-CAM's map from hand-computed channel weights."""
    raw = np.maximum(np.tensordot(activations, np.asarray(alpha, np.float64), axes=([-1], [0])), 0)
    return (raw / raw.max() if raw.max() > 0 else raw).astype(np.float32)


#: The tiny conv's activations for X, ``(2, 2, 2)``.
ACTIVATIONS = np.stack([np.array([[10, 18], [42, 50]], np.float64), np.full((2, 2), -5.0)], axis=-1)


def cell_box_decoder(model):
    """For ``--decode helpers.target_models:cell_box_decoder``: a per-pixel output
    ``(N, H, W, C)`` read as a detector with one box per pixel, pixel ``(i, j)``'s box
    ``(j, i, j + 1, i + 1)`` (the model's input and output are the same size), its scores
    the pixel's ``C`` values: ``(boxes (N, H W, 4), scores (N, H W, C))``, row-major."""
    height, width = model.outputs[0].shape[1:3]
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    boxes = np.stack([columns, rows, columns + 1, rows + 1], axis=-1).reshape(-1, 4).astype(np.float32)

    def decode(outputs):
        scores = ops.reshape(outputs, (-1, height * width, outputs.shape[-1]))
        return ops.zeros_like(scores[..., :1]) + ops.convert_to_tensor(boxes)[None], scores

    return decode
