"""Ray's test helpers."""

import keras
import numpy as np

from helpers.tiny import CONV_KERNEL, DENSE_KERNEL


def tiny_rgb(activation="softmax"):
    """the tiny classifier (helpers/tiny.py) on the red channel of a 4x4 RGB image."""
    inputs = keras.Input((4, 4, 3), name="image")
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(conv(inputs))
    dense = keras.layers.Dense(2, use_bias=False, activation=activation, name="predictions")
    model = keras.Model(inputs, dense(x), name="tiny_rgb")
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[:, :, :1, :] = CONV_KERNEL
    conv.set_weights([kernel])
    dense.set_weights([DENSE_KERNEL])
    return model
