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


@pytest.fixture
def no_backward_pass(monkeypatch):
    """The current backend's gradient functions replaced by one that raises
    ``AssertionError("a backward pass was run")``: a test of a method that needs no
    gradients fails if the method asks for any."""
    from gradcam import backend

    def no_gradients(*args, **kwargs):
        raise AssertionError("a backward pass was run")

    for name in ("probe_gradients", "tap_gradients", "probe_hessian_products"):
        monkeypatch.setattr(backend.current(), name, no_gradients)
