"""Fixtures shared by the tests; the models and helpers behind them are in :mod:`helpers`."""

import keras
import pytest

from helpers.tiny import make_functional


@pytest.fixture(scope="session")
def tiny():
    return make_functional()


@pytest.fixture(scope="session")
def two_conv():
    """Input 8x8x3 -> conv1 -> conv2 -> pool -> dense(3): for layer selection."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="two_conv")
