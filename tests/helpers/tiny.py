"""Tiny models with hand-set weights whose Grad-CAM maps are computed by hand.

The "tiny" classifier, for a 4x4 one-channel input ``x = arange(16)``:

* ``conv``: Conv2D, two 2x2 filters, stride 2, no bias. Filter 0 is all ones, filter 1
  is ``[[1, 0], [0, -1]]``. So ``A0 = [[10, 18], [42, 50]]`` (block sums) and
  ``A1 = -5`` everywhere.
* global average pooling: ``[30, -5]``.
* ``predictions``: Dense with kernel ``W = [[0.1, -0.1], [0.2, 0.3]]`` (channel x class),
  no bias, softmax. Logits ``z = [2, -4.5]``; top class 0.

Class 0, logit score: ``alpha = W[:, 0] / 4 = [0.025, 0.05]``,
``L = ReLU(0.025 A0 - 0.25) = [[0, 0.2], [0.8, 1.0]] * 1.0`` after ``L / max(L)``.
Class 1, logit score: ``alpha = [-0.025, 0.075]``, ``L = ReLU(-0.025 A0 - 0.375) = 0``.
Class 0, output (probability) score: ``d p0 = p0 p1 (d z0 - d z1)``, so
``alpha ~ (W[:, 0] - W[:, 1]) / 4 ~ [0.2, -0.1]`` and ``L ~ ReLU(0.2 A0 + 0.5)
= [[2.5, 4.1], [8.9, 10.5]]``, i.e. ``[[2.5, 4.1], [8.9, 10.5]] / 10.5``.

The "flatten" classifier, same input: ``conv`` with filter 0 only (``A = [[10, 18], [42,
50]]``), Flatten, then Dense with kernel ``[[1, -1, -1, 1], [-0.01] * 4]`` transposed
(position x class), softmax. Logits ``z = [10 - 18 - 42 + 50, -1.2] = [0, -1.2]``; top
class 0. Its logit's gradient is ``+1`` at two positions and ``-1`` at the other two:
it averages to ``alpha = 0``, so the map is exactly zero (the trap of Flatten -> Dense).
The probability's gradient is ``p0 p1 (W[:, 0] - W[:, 1])``, which averages to
``alpha = p0 p1 * 0.01 > 0``: the map is ``A / max(A) = [[10, 18], [42, 50]] / 50``.
"""

from __future__ import annotations

import keras
import numpy as np

X = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
CONV_KERNEL = np.stack(
    [np.ones((2, 2), np.float32), np.array([[1, 0], [0, -1]], np.float32)], axis=-1
)[:, :, np.newaxis, :]  # (2, 2, 1, 2)
DENSE_KERNEL = np.array([[0.1, -0.1], [0.2, 0.3]], np.float32)

LOGIT_MAP_0 = np.array([[0.0, 0.2], [0.8, 1.0]], np.float32)
LOGIT_MAP_1 = np.zeros((2, 2), np.float32)
OUTPUT_MAP_0 = np.array([[2.5, 4.1], [8.9, 10.5]], np.float32) / 10.5
LOGITS = np.array([2.0, -4.5], np.float32)
PROBAS = np.exp(LOGITS) / np.exp(LOGITS).sum()
FLATTEN_KERNEL = np.array([[1, -1, -1, 1], [-0.01] * 4], np.float32).T  # (positions, classes)
FLATTEN_OUTPUT_MAP_0 = np.array([[10, 18], [42, 50]], np.float32) / 50


def assert_map(actual, expected, atol=1e-5):
    """Compare a Grad-CAM map with its hand-computed value."""
    actual = np.asarray(actual)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


def conv_layer(name="conv"):
    return keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name=name)


def head_layers(activation="softmax"):
    return [
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(2, use_bias=False, activation=activation, name="predictions"),
    ]


def set_weights(model):
    """Set the hand-chosen weights on the layers named conv and predictions, anywhere."""
    from gradcam.layers import iter_layers

    for ref in iter_layers(model):
        if ref.layer.name == "conv":
            ref.layer.set_weights([CONV_KERNEL])
        elif ref.layer.name == "predictions":
            ref.layer.set_weights([DENSE_KERNEL])
    return model


def make_functional(activation="softmax", input_shape=(4, 4, 1), name="tiny"):
    inputs = keras.Input(input_shape, name="image")
    x = conv_layer()(inputs)
    for layer in head_layers(activation):
        x = layer(x)
    return set_weights(keras.Model(inputs, x, name=name))


def make_sequential():
    return set_weights(
        keras.Sequential([keras.Input((4, 4, 1)), conv_layer(), *head_layers()], name="tiny_seq")
    )


def make_nested(trainable=True):
    """A Functional base (input -> conv) inside a Sequential wrapper, like a
    keras.applications backbone under a new classification head."""
    base_in = keras.Input((4, 4, 1))
    base = keras.Model(base_in, conv_layer()(base_in), name="base")
    base.trainable = trainable
    wrapper = keras.Sequential([keras.Input((4, 4, 1)), base, *head_layers()], name="wrapper")
    return set_weights(wrapper)


def make_separate_softmax():
    inputs = keras.Input((4, 4, 1))
    x = conv_layer()(inputs)
    for layer in head_layers(activation=None):
        x = layer(x)
    x = keras.layers.Softmax(name="softmax")(x)
    return set_weights(keras.Model(inputs, x, name="tiny_softmax_layer"))


def make_flatten():
    """Conv -> Flatten -> Dense(softmax): the logit map is exactly zero (see above)."""
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(1, 2, strides=2, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.Flatten(name="flatten")(conv(inputs))), name="flat")
    conv.set_weights([CONV_KERNEL[..., :1]])
    dense.set_weights([FLATTEN_KERNEL])
    return model


class TinySubclassed(keras.Model):
    """The tiny classifier as a subclassed model, with an identity layer before ``conv``.
    Its attributes are set in another order than they are called (``early`` after
    ``conv``), so that only the call order finds ``conv`` as the last 4-D layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = conv_layer()
        self.early = keras.layers.Identity(name="early")
        self.pool, self.predictions = head_layers()

    def call(self, inputs):
        return self.predictions(self.pool(self.conv(self.early(inputs))))


def make_subclassed(call=True):
    model = TinySubclassed(name="tiny_subclassed")
    if call:
        model(X)
        set_weights(model)
    return model


def tracing_count(cam) -> int:
    """How many times the engine's compiled functions have been traced (TensorFlow's
    ``tf.function``, the only backend that counts its traces)."""
    return sum(function.experimental_get_tracing_count() for function in cam._compiled.values())


# The model randomisation tests' model (see tests/test_metrics_randomisation.py).
STEP_1_MAP = np.array([[1.225, 1.205], [1.145, 1.125]], np.float32) / 1.225
RANDOM_DENSE = [[-0.01, 0.0], [-1.0, 0.0]]


def make_constant():
    """The tiny classifier with constant initialisers: its "random" weights are known by hand
    (conv: all ones; predictions: ``RANDOM_DENSE``)."""
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(
        2, 2, strides=2, use_bias=False, name="conv", kernel_initializer=keras.initializers.Constant(1.0)
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    dense = keras.layers.Dense(
        2,
        use_bias=False,
        activation="softmax",
        name="predictions",
        kernel_initializer=keras.initializers.Constant(RANDOM_DENSE),
    )
    model = keras.Model(inputs, dense(x), name="constant")
    model.get_layer("conv").set_weights([CONV_KERNEL])
    dense.set_weights([DENSE_KERNEL])
    return model


def for_method(method: str, model):
    """``model`` as it is, or, for ``guidedgradcam`` (which needs a ReLU), inside a model
    that puts a ReLU on its input first: the images these models are given (``X``) are
    nonnegative, so every value and every layer's gradient stays as it is."""
    if method != "guidedgradcam":
        return model
    inputs = keras.Input(model.inputs[0].shape[1:], name="image")
    return keras.Model(inputs, model(keras.layers.ReLU(name="input_relu")(inputs)), name=f"{model.name}_relu")
