"""FullGrad: input-gradient times input, plus bias-gradient times bias at every layer with a bias."""

from __future__ import annotations

import warnings
import weakref

import keras
from keras import ops

from gradcam.capture import capture_layers, layer_calls
from gradcam.layers import LayerRef, iter_layers
from gradcam.methods.base import Capture, Method, _stacklevel_outside_package
from gradcam.methods.smoothing import first_component

#: The convolutions whose bias FullGrad reads (pytorch-grad-cam's ``nn.Conv2d``, which
#: holds the grouped and depthwise ones, and a separable one's pointwise part).
CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def bias_layers(model) -> list:
    """The layers whose bias FullGrad reads, nested ones too, in model order: 2-D
    convolutions (:data:`CONVOLUTIONS`) with ``use_bias`` and batch normalisations with
    ``center`` (a ``beta``)."""
    return [ref.layer for ref in iter_layers(model, sublayers=True)
            if (isinstance(ref.layer, CONVOLUTIONS) and ref.layer.use_bias)
            or (isinstance(ref.layer, keras.layers.BatchNormalization) and ref.layer.center)]


def layer_bias(layer):
    """The bias a layer adds to its output, float32 ``(C,)``: a convolution's ``bias``;
    a batch normalisation's ``beta - moving_mean * gamma / sqrt(moving_variance + epsilon)``
    (what it adds at inference, as FullGrad's authors and pytorch-grad-cam read it), read
    while the layer runs, so the values are those of that call."""
    if not isinstance(layer, keras.layers.BatchNormalization):
        return ops.cast(layer.bias, "float32")
    scale = ops.rsqrt(ops.cast(layer.moving_variance, "float32") + layer.epsilon)
    if layer.scale:
        scale = scale * ops.cast(layer.gamma, "float32")
    return ops.cast(layer.beta, "float32") - ops.cast(layer.moving_mean, "float32") * scale


def scaled(maps, axes=(1, 2)):
    """pytorch-grad-cam's ``scale_cam_image``: each map less its minimum, divided by
    ``1e-7`` plus its new maximum, over ``axes``."""
    shifted = maps - ops.min(maps, axis=axes, keepdims=True)
    return shifted / (1e-7 + ops.max(shifted, axis=axes, keepdims=True))


def resized(maps, size):
    """``(B, h, w, C)`` maps at ``size`` (bilinear, half-pixel centres, as OpenCV's
    ``resize``); as they are when already of that size."""
    if tuple(maps.shape[1:3]) == tuple(size):
        return maps
    return ops.image.resize(maps, size, interpolation="bilinear", antialias=False)


def layer_term(gradient, bias):
    """One layer call's scaled term ``(B, h, w)``: ``|g b|`` ``(B, h, w, C)`` (the gradient
    at its output times its bias ``(C,)``), each channel scaled as :func:`scaled`, summed
    over the channels.

    A channel's ``|g b|`` is ``|g| |b|``, so the channels scaled and summed are ``sum_c
    (|g_c| - lo_c) w_c``, with ``lo_c``, ``hi_c`` the least and greatest ``|g_c|`` and
    ``w_c = |b_c| / (1e-7 + |b_c| (hi_c - lo_c))``: one matrix product of the pixels'
    ``|g_c| - lo_c`` and ``w`` (the shift comes first: a channel of one value has
    ``w_c`` about ``1e7``)."""
    gradient, bias = ops.abs(gradient), ops.abs(bias)
    low, high = ops.min(gradient, axis=(1, 2), keepdims=True), ops.max(gradient, axis=(1, 2), keepdims=True)
    weights = bias / (1e-7 + bias * (high - low))  # (B, 1, 1, C)
    shape = ops.shape(gradient)
    pixels = ops.reshape(gradient - low, (shape[0], -1, shape[3]))
    return ops.reshape(ops.matmul(pixels, ops.reshape(weights, (shape[0], shape[3], 1))), shape[:3])


class FullGrad(Method):
    """FullGrad (Srinivas and Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", arXiv 1905.00780), as pytorch-grad-cam 1.5.7 computes it.

    The map is at the input's resolution ``(H, W)``, the sum of post-processed terms:
    ``|dy_c/dx * x|``, one term per input channel, and, for each call of each layer with
    a bias, ``|dy_c/dz * b|`` summed over the layer's channels, where ``z`` is the
    layer's output before its activation and ``b`` its bias. Each channel of each term
    is scaled (less its minimum, divided by its maximum, as pytorch-grad-cam's
    ``scale_cam_image``) before it is summed, and each layer's term is resized to
    ``(H, W)`` (bilinear); the sum less its minimum, divided by its maximum, is the map.

    The layers with a bias are pytorch-grad-cam's ``nn.Conv2d`` and ``nn.BatchNorm2d``
    with a bias: Keras' ``Conv2D``, ``DepthwiseConv2D`` and ``SeparableConv2D`` with
    ``use_bias`` (a depthwise convolution is an ``nn.Conv2d`` with groups; a separable
    one's bias is added after its pointwise part), and ``BatchNormalization`` with
    ``center``, whose bias is what it adds at inference, ``beta - mean * gamma /
    sqrt(variance + epsilon)`` (:func:`layer_bias`). ``Dense`` layers (``nn.Linear``),
    ``Conv2DTranspose``, 1-D and 3-D convolutions and other normalisations are left out,
    as there. A fused activation (``Conv2D(..., activation="relu")``) comes after the
    bias, so the gradient is read at its input: exact for any activation. Everything
    comes from one forward and backward pass, which reads the gradient at the input and
    at every layer's output as the backward pass computes it (the backend's
    ``tap_gradients``; the layers read by :func:`gradcam.capture.capture_layers`).

    FullGrad uses all those layers, so ``layer`` and ``reshape`` are accepted and ignored
    (with a warning when given). With ``eigen_smooth``, as pytorch-grad-cam: the terms
    (each input channel, each layer summed over its channels) scaled and resized to an
    eighth of the input, their first principal component scaled and resized back
    (all zero below 8 x 8 pixels).

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``score``,
            ``class_names``, ``preprocess`` and ``weak_model``; the model must have a
            fixed input size with a floating dtype.
        layer: ignored (warned about when not ``None``). Defaults to ``None``.
        reshape: ignored (warned about when not ``None``). Defaults to ``None``.

    Raises:
        ValueError: the model's input has no fixed height and width, or is not
            floating-point; a layer with a bias is not channels-last.
    """

    name = "fullgrad"

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, *, weak_model: bool = False):
        if layer is not None or reshape is not None:
            warnings.warn("fullgrad reads the input and every layer with a bias: layer= and reshape= are ignored.",
                          UserWarning, stacklevel=_stacklevel_outside_package())
        super().__init__(model, None, score, class_names, preprocess, None, weak_model=weak_model)
        height, width, channels = self._input_shape
        if not isinstance(height, int) or not isinstance(width, int):
            raise ValueError(f"fullgrad needs a model with a fixed input size; model {model.name!r} takes "
                             f"images of shape {self._input_shape}. Build it with keras.Input((height, width, "
                             "channels)).")
        if not keras.backend.is_float_dtype(self._input_dtype):
            raise ValueError(f"fullgrad multiplies the input by its gradient; model {model.name!r} takes "
                             f"{self._input_dtype} images. Give it a floating-point input.")
        calls = [(layer_, shape) for layer_, shape in layer_calls(model, bias_layers(model)) if len(shape) == 4]
        for layer_, _ in calls:  # a batch normalisation's axis is -1 or, once built, 3
            channels_last = getattr(layer_, "data_format", "channels_last") == "channels_last"
            if not channels_last or getattr(layer_, "axis", 3) not in (-1, 3):
                raise ValueError(f"fullgrad reads channels-last layers; layer {layer_.name!r} of model "
                                 f"{model.name!r} has its channels on another axis.")
        self._layers = [weakref.ref(layer_) for layer_ in dict.fromkeys(layer_ for layer_, _ in calls)]
        #: each term's (layer, per-image shape): the input, then each call of a layer with a bias
        self._terms = [(None, (height, width, channels))] + [(weakref.ref(l_), s[1:]) for l_, s in calls]
        self.layer = f"input and {len(self._layers)} bias layers"
        self._layer_term = self._backend.fused(layer_term)

    def _find_layer(self, model, layer, info, reshape):
        return LayerRef(model, "input")

    def _run_model(self, call, x, score, tap):
        """One forward pass in which ``tap`` marks the input and every layer call's output
        (before its activation), whose gradients the backend returns
        (``tap_gradients``); the aux: each layer call's bias ``(C,)``, the scores and
        the extras."""
        _, _, softmax = self._alive()
        biases = []

        def edit(layer, tensor):
            i = len(biases) + 1
            if i >= len(self._terms) or self._terms[i][0]() is not layer:
                raise RuntimeError(f"Layer {layer.name!r} ran out of the order of the model's traced call.")
            biases.append(layer_bias(layer))
            return tap(tensor)

        with capture_layers([ref() for ref in self._layers], softmax, edit) as recording:
            outputs = call(tap(x))
        if len(biases) + 1 != len(self._terms):
            raise RuntimeError(f"The layers with a bias ran {len(biases)} times; the trace counted "
                               f"{len(self._terms) - 1}.")
        y, extras = score(*self._scores(recording, outputs))
        return ops.sum(y, axis=0), (biases, y, extras)

    def _forward(self, call, x, score, many, eigen_smooth=False, differentiable=False):
        """The template's forward computation with one gradient per term (the backend's
        ``tap_gradients``: no probe, no concatenation): the :class:`Capture`'s
        ``gradients`` are a list, float32 ``(K, N, h, w, C)`` per term, and its
        ``activations`` the list of the layer calls' biases ``(C,)``."""

        def forward(tap):
            return self._run_model(call, x, score, tap)

        gradients, (biases, y, (resolved, probas, notes, outputs)) = self._backend.tap_gradients(
            forward, many, differentiable=differentiable)
        gradients = [ops.cast(gradient, "float32") for gradient in gradients]
        capture = Capture(x, biases, gradients, y, resolved)
        return self._forward_result(capture, probas, notes, tuple(keras.tree.flatten(outputs)), eigen_smooth)

    def _term_maps(self, capture):
        """Each term's scaled map at its own size, ``(K N, h, w, channels)``: the input's
        first (one channel per input channel), then each layer call's
        (:func:`layer_term`, through the backend's ``fused``: its channels summed, one)."""
        inputs = capture.gradients[0] * ops.cast(capture.inputs, "float32")[None]
        maps = [scaled(ops.abs(ops.reshape(inputs, (-1,) + self._terms[0][1])))]
        for gradient, bias, (_, shape) in zip(capture.gradients[1:], capture.activations, self._terms[1:]):
            # reshaped: the term's static shape (a compiled loop's result may have lost it)
            maps.append(ops.reshape(self._layer_term(ops.reshape(gradient, (-1,) + shape), bias), (-1,) + shape[:2] + (1,)))
        return maps

    def _shaped(self, maps, capture):
        """``(K N, H, W)`` maps as ``(K, N, H, W)``, less each one's minimum."""
        maps = maps - ops.min(maps, axis=(1, 2), keepdims=True)
        return ops.reshape(maps, (ops.shape(capture.gradients[0])[0], -1) + tuple(maps.shape[1:]))

    def element_map(self, capture):
        # resizing is linear: the terms of one size are summed first, then resized once
        sums = {}
        for term in self._term_maps(capture):
            key, term = tuple(term.shape[1:3]), ops.sum(term, axis=-1, keepdims=True)
            sums[key] = sums[key] + term if key in sums else term
        total = None
        for term in sums.values():
            term = resized(term, self._terms[0][1][:2])
            total = term if total is None else total + term
        return self._shaped(total[..., 0], capture)

    def eigen_map(self, capture):
        size = self._terms[0][1][:2]
        terms = ops.concatenate([resized(term, size) for term in self._term_maps(capture)], axis=-1)
        small = resized(scaled(terms), (max(size[0] // 8, 1), max(size[1] // 8, 1)))
        component = scaled(first_component(small)[..., None])
        return self._shaped(resized(component, size)[..., 0], capture)
