"""FullGrad against maps computed by hand. Run once per KERAS_BACKEND.

The model of :func:`make_model`, for the 4x4 one-channel input ``x = arange(16)``:

* ``conv``: Conv2D, two 2x2 filters, stride 2, bias ``[-20, 6]``, fused ReLU. Filter 0
  is all ones: ``z0 = [[10, 18], [42, 50]] - 20 = [[-10, -2], [22, 30]]``, after the
  ReLU ``[[0, 0], [22, 30]]``; filter 1 is ``[[1, 0], [0, -1]]``: ``z1 = -5 + 6 = 1``.
* ``bn``: BatchNormalization, epsilon 1, gamma ``[1, 2]``, beta ``[0.5, 0]``, mean
  ``[2, 0]``, variance ``[3, 3]`` (so ``sqrt(var + eps) = 2``): ``out0 = a0 / 2 - 0.5``,
  ``out1 = a1``; its bias ``beta - mean * gamma / 2 = [-0.5, 0]``.
* ReLU, global average pooling ``[25 / 4, 1]``, Dense ``W = [[1, -1], [2, 1]]``
  (channel x class), no bias: logits ``[8.25, -5.25]``.

Class 0: the gradient at the pooling is ``[1/4, 2/4]``, at ``bn``'s output
``0.25 [[0, 0], [1, 1]]`` (channel 0, through the ReLU) and ``0.5`` (channel 1), at the
convolution's pre-activation ``0.125 [[0, 0], [1, 1]]`` and ``0.5``.

* bn: ``|g b|`` is ``0.125 [[0, 0], [1, 1]]`` (channel 0) and 0 (channel 1, bias 0);
  each channel scaled to [0, 1] and summed: ``[[0, 0], [1, 1]]``; resized to 4x4
  (bilinear, half-pixel centres: rows sample 0, 0.25, 0.75, 1): rows ``R = [0, 0.25,
  0.75, 1]``.
* conv: ``|g b|`` is ``2.5 [[0, 0], [1, 1]]`` and 3 everywhere (a constant, scaled to 0):
  ``R`` again.
* input: ``dy/dx`` is filter 1 times 0.5 plus, in the lower blocks, filter 0 times
  0.125; ``|dy/dx * x|`` = ``[[0, 0, 1, 0], [0, 2.5, 0, 3.5], [5, 1.125, 6.25, 1.375],
  [1.5, 4.875, 1.75, 5.625]]``, scaled: divided by 6.25.

The map is their sum, less its minimum (0), divided by its maximum. Class 1 (``W[:, 1]
= [-1, 1]``): the same bias terms; ``|dy/dx * x|`` = ``[[0, 0, 0.5, 0], [0, 1.25, 0,
1.75], [1, 1.125, 1.25, 1.375], [1.5, 4.875, 1.75, 5.625]]`` / 5.625.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from helpers.tiny import X, assert_map

import gradcam
from gradcam.backend import current
from gradcam.methods import FullGrad
from gradcam.methods.fullgrad import bias_layers, layer_bias
from gradcam.targets import Class, Output

to_numpy = current().to_numpy
ROWS = np.repeat(np.array([0, 0.25, 0.75, 1], np.float32)[:, None], 4, axis=1)
INPUT_0 = np.array([[0, 0, 1, 0], [0, 2.5, 0, 3.5], [5, 1.125, 6.25, 1.375], [1.5, 4.875, 1.75, 5.625]]) / 6.25
INPUT_1 = np.array([[0, 0, 0.5, 0], [0, 1.25, 0, 1.75], [1, 1.125, 1.25, 1.375], [1.5, 4.875, 1.75, 5.625]]) / 5.625
MAP_0 = (INPUT_0 + 2 * ROWS) / (5.625 / 6.25 + 2)  # the maximum, bottom right
MAP_1 = (INPUT_1 + 2 * ROWS) / 3
CONV_KERNEL = np.stack([np.ones((2, 2)), [[1, 0], [0, -1]]], axis=-1)[:, :, None, :].astype(np.float32)
BN_WEIGHTS = [np.array(v, np.float32) for v in ([1, 2], [0.5, 0], [2, 0], [3, 3])]


def make_model(activation="relu", separate=False, softmax=False):
    """The model above; ``separate``: the convolution's activation as a layer of its own."""
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(2, 2, strides=2, activation=None if separate else activation, name="conv")
    bn = keras.layers.BatchNormalization(epsilon=1.0, name="bn")
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax" if softmax else None, name="logits")
    x = conv(inputs)
    if separate:
        x = keras.layers.Activation(activation, name="conv_activation")(x)
    x = keras.layers.ReLU(name="relu")(bn(x))
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D(name="pool")(x)), name="fullgrad_tiny")
    conv.set_weights([CONV_KERNEL, np.array([-20, 6], np.float32)])
    bn.set_weights(BN_WEIGHTS)
    dense.set_weights([np.array([[1, -1], [2, 1]], np.float32)])
    return model


def test_fullgrad_hand_computed():
    engine = FullGrad(make_model())
    result = engine.compute(X, targets=[0, 1])
    assert result.heatmaps.shape == (1, 2, 4, 4)  # the input's resolution
    assert_map(result.heatmaps[0, 0], MAP_0)
    assert_map(result.heatmaps[0, 1], MAP_1)
    np.testing.assert_allclose(result.scores, [[8.25, -5.25]], atol=1e-5)
    assert engine.layer == "input and 2 bias layers"
    # the top prediction, and the logits when the model ends in a softmax
    assert_map(FullGrad(make_model(softmax=True)).heatmaps(X)[0, 0], MAP_0)


def test_batch_normalisation_bias_is_what_it_adds_at_inference():
    bn = make_model().get_layer("bn")
    np.testing.assert_allclose(to_numpy(layer_bias(bn)), [-0.5, 0], atol=1e-7)
    plain = keras.layers.BatchNormalization(scale=False, epsilon=1.0)
    plain.build((None, 2, 2, 2))
    plain.set_weights(BN_WEIGHTS[1:])  # beta, mean, variance: gamma is 1
    np.testing.assert_allclose(to_numpy(layer_bias(plain)), [0.5 - 1, 0], atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "swish", "gelu", "tanh"])
def test_a_fused_activation_is_read_at_its_input(activation):
    """The bias is added before a fused activation: the gradient is read at its input, so
    a Conv2D(activation=...) gives the map of the same Conv2D followed by an Activation."""
    fused = FullGrad(make_model(activation)).heatmaps(X, targets=[0, 1])
    separate = FullGrad(make_model(activation, separate=True)).heatmaps(X, targets=[0, 1])
    np.testing.assert_allclose(fused, separate, atol=1e-6)
    if activation == "relu":
        assert_map(fused[0, 0], MAP_0)


def test_the_layers_it_reads():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="conv_no_bias")(x)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.SeparableConv2D(4, 1, name="separable")(x)
    x = keras.layers.BatchNormalization(center=False, name="bn_no_beta")(x)
    inner_in = keras.Input((4, 4, 4))
    inner = keras.Model(inner_in, keras.layers.BatchNormalization(name="inner_bn")(inner_in), name="inner")
    x = keras.layers.GlobalAveragePooling2D()(inner(x))
    x = keras.layers.BatchNormalization(name="bn_of_vectors")(keras.layers.Dense(3, name="dense")(x))
    model = keras.Model(inputs, x)
    names = [layer.name for layer in bias_layers(model)]
    assert names == ["conv", "depthwise", "separable", "inner_bn", "bn_of_vectors"]
    # the batch normalisation of vectors (pytorch-grad-cam's BatchNorm1d) is left out
    engine = FullGrad(model)
    assert engine.layer == "input and 4 bias layers"
    maps = engine.heatmaps(np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32))
    assert maps.shape == (2, 1, 8, 8) and np.isfinite(maps).all() and maps.max() == 1


def test_weights_set_after_the_first_call_are_used():
    model = make_model()
    engine = FullGrad(model)
    engine.heatmaps(X)
    model.get_layer("conv").set_weights([CONV_KERNEL, np.array([-20, 4], np.float32)])
    model.get_layer("bn").set_weights([BN_WEIGHTS[0], np.array([0.5, 1], np.float32)] + BN_WEIGHTS[2:])
    np.testing.assert_allclose(engine.heatmaps(X, targets=[0, 1]), FullGrad(model).heatmaps(X, targets=[0, 1]),
                               atol=1e-6)
    assert not np.allclose(engine.heatmaps(X, targets=[1]), MAP_1, atol=1e-3)


def test_the_model_is_left_as_it_was():
    model = make_model()
    before = {layer.name: dict(vars(layer)) for layer in model.layers}
    FullGrad(model).heatmaps(X)
    for layer in model.layers:
        assert vars(layer).keys() == before[layer.name].keys(), layer.name
        for key in ("call", "activation"):
            assert vars(layer).get(key) is before[layer.name].get(key), (layer.name, key)


def test_every_kind_of_target():
    engine = FullGrad(make_model())
    result = engine.compute(X, [Output(0), Class(1), lambda y: y[:, 1] - y[:, 0]])
    assert_map(result.heatmaps[0, 0], MAP_0)
    assert_map(result.heatmaps[0, 1], MAP_1)
    # y1 - y0: the gradient at the pooling is [-2, -1] / 4; at the input -0.25 filter 1, less 0.25
    # in the lower blocks; the bias gradients have class 0's pattern, so the bias terms are R again
    gradient = np.array([[-0.25, 0, -0.25, 0], [0, 0.25, 0, 0.25], [-0.5, -0.25, -0.5, -0.25],
                         [-0.25, 0, -0.25, 0]])
    term = np.abs(gradient * X[0, :, :, 0])
    expected = term / term.max() + 2 * ROWS
    assert_map(result.heatmaps[0, 2], expected / expected.max())
    np.testing.assert_allclose(result.scores, [[8.25, -5.25, -13.5]], atol=1e-5)


def test_the_layer_argument_is_ignored_with_a_warning():
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = FullGrad(model).heatmaps(X)
    with pytest.warns(UserWarning, match=r"fullgrad reads the input and every layer with a bias: layer= and "
                                         r"reshape= are ignored") as record:
        engine = gradcam.methods.build_engine(model, "fullgrad", layer="no such layer")
    assert record[0].filename == __file__  # the caller's line, not the package's
    np.testing.assert_array_equal(engine.heatmaps(X), plain)


def test_eigen_smooth_of_one_term():
    """One term (the input's one channel; the convolution has no bias): its first
    principal component is its centred values. On a 16x16 ramp ``x = 16 r + c`` with a
    constant gradient, the scaled term is ``x / 255``; at an eighth of the size (2x2,
    sampling rows and columns 3.5 and 11.5) ``[[59.5, 67.5], [187.5, 195.5]] / 255``,
    centred and scaled ``[[0, 1], [16, 17]] / 17``; resized back (row ``i`` samples
    ``f_i = clip((i + 0.5) / 8 - 0.5, 0, 1)``): ``(16 f_i + f_j) / 17``."""
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    dense.set_weights([np.ones((1, 1), np.float32)])
    ramp = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1)
    f = np.clip((np.arange(16) + 0.5) / 8 - 0.5, 0, 1)
    assert_map(FullGrad(model).heatmaps(ramp, eigen_smooth=True)[0, 0], (16 * f[:, None] + f[None, :]) / 17)
    assert_map(FullGrad(model).heatmaps(ramp)[0, 0], ramp[0, :, :, 0] / 255)


def test_aug_smooth_and_differentiable_maps():
    engine = FullGrad(make_model())
    # the average of the maps of the image and of it flipped (flipped back), each x 0.9, 1, 1.1
    flipped = X[:, :, ::-1]
    expected = sum(engine.heatmaps(X * f, [0]) + engine.heatmaps(flipped * f, [0])[..., ::-1] for f in (0.9, 1, 1.1))
    np.testing.assert_allclose(engine.heatmaps(X, targets=[0], aug_smooth=True), expected / 6, atol=1e-6)
    tensors = engine.differentiable_maps(keras.ops.convert_to_tensor(X), targets=[0, 1])
    np.testing.assert_allclose(to_numpy(tensors), engine.heatmaps(X, [0, 1]), atol=1e-6)


def test_explanations_overlays_and_metrics_take_maps_at_the_input_size():
    model = make_model()
    expl = gradcam.explain_prediction(model, X, targets=[0], method="fullgrad")
    assert_map(expl.targets[0].heatmap, MAP_0)
    assert expl.heatmap.size == (4, 4)
    picture = np.zeros((12, 12, 3), np.uint8)
    overlay = gradcam.format_as_image(FullGrad(model).explain(X, [0], images=[picture])[0])
    assert overlay.size == (12, 12)
    maps = FullGrad(model).heatmaps(X, [0])[:, 0]
    drop = gradcam.metrics.average_drop(model, X, maps, [0])
    assert np.isfinite(drop).all()


def test_bad_input():
    engine = FullGrad(make_model())
    with pytest.raises(ValueError, match=r"shape"):
        engine.heatmaps(np.zeros((1, 5, 5, 1), np.float32))
    free = keras.Input((None, None, 1))
    model = keras.Model(free, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 2)(free)), name="free")
    with pytest.raises(ValueError, match=r"fullgrad needs a model with a fixed input size; model 'free' takes "
                                         r"images of shape \(None, None, 1\)"):
        FullGrad(model)
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization(axis=1, name="bn_axis_1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)), name="rows")
    with pytest.raises(ValueError, match=r"fullgrad reads channels-last layers; layer 'bn_axis_1' of model 'rows'"):
        FullGrad(model)
    with pytest.raises(ValueError, match=r"Unknown target|out of range|class"):
        engine.heatmaps(X, targets=[5])

