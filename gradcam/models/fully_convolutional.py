"""A classifier made fully convolutional: its class scores at every location of a feature map.

A classifier that ends in global average pooling and a dense layer computes its logits as
``z = W^T mean_ij A[i, j] + b``. Applying the dense layer to each location instead, as a
1x1 convolution, gives ``S[i, j] = W^T A[i, j] + b``: a map of class scores whose average
over the locations is exactly the classifier's logits. With an ImageNet classifier this is
a coarse semantic segmenter, ``(N, h, w, 1000)``, whose output reads like a keras-hub
segmenter's (``(N, H, W, classes)``, channels last) once resized to the input.
"""

from __future__ import annotations

import keras

__all__ = ["fully_convolutional"]

# Layers that do nothing at inference between the pooling and the classifier.
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Identity)


def _single_output(layer):
    """The layer's one output tensor in the model's graph, or None if it is shared."""
    try:
        return layer.output
    except (AttributeError, ValueError):
        return None


def _classifier_head(model):
    """Find ``feature map -> GlobalAveragePooling2D -> [Dropout] -> Dense [-> Activation]``.

    Returns the feature map tensor and the Dense layer; raises ValueError naming the layer
    where the pattern breaks.
    """
    if not isinstance(getattr(model, "outputs", None), list):
        raise ValueError(
            f"Expected a Functional or Sequential model; {model.name!r} is a "
            f"{type(model).__name__} without a graph of layers to read the classifier from."
        )
    if len(model.outputs) != 1:
        raise ValueError(
            f"Expected a classifier with one output; model {model.name!r} has "
            f"{len(model.outputs)}."
        )
    producers = {}
    for layer in model.layers:
        output = _single_output(layer)
        if output is not None:
            producers[id(output)] = layer

    def producer(tensor, expected):
        layer = producers.get(id(tensor))
        if layer is None:
            raise ValueError(
                f"Expected {expected} before the output of model {model.name!r}; found a "
                "tensor made by no single top-level layer."
            )
        return layer

    layer = producer(model.outputs[0], "a Dense classifier")
    if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax)):
        layer = producer(layer.input, "a Dense classifier")
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(
            f"Expected model {model.name!r} to end in a Dense classifier; its last layer "
            f"{layer.name!r} is a {type(layer).__name__}."
        )
    dense = layer
    layer = producer(dense.input, "GlobalAveragePooling2D")
    while isinstance(layer, _PASS_THROUGH):
        layer = producer(layer.input, "GlobalAveragePooling2D")
    if not isinstance(layer, keras.layers.GlobalAveragePooling2D) or layer.keepdims:
        raise ValueError(
            f"Expected global average pooling before the classifier {dense.name!r} of model "
            f"{model.name!r}; found {layer.name!r}, a {type(layer).__name__}. Only a "
            "classifier that averages its last feature map can be applied per location."
        )
    if layer.data_format != "channels_last":
        raise ValueError(
            f"Expected channels-last feature maps; {layer.name!r} pools "
            f"{layer.data_format!r} maps."
        )
    return layer.input, dense


def fully_convolutional(classifier, resize_to_input=False, activation=None, name=None):
    """Make a classifier give its class scores at every location of its last feature map.

    The classifier must end in ``GlobalAveragePooling2D``, optional ``Dropout``, and a
    ``Dense`` layer (with or without a softmax), as ``keras.applications`` models and
    :mod:`gradcam.models.efficientnet_lite` do. The new model shares every layer up to the
    pooled feature map with ``classifier`` and applies a copy of the dense layer's weights
    as a 1x1 convolution (named ``{dense}_per_location``) to that map. ``classifier`` is
    not changed; later changes to its dense weights do not reach the copy.

    Without an activation the average of the scores over the locations equals the
    classifier's logits exactly (up to float rounding).

    Args:
        classifier: a Functional or Sequential Keras classifier ending as above.
        resize_to_input: whether to resize the score maps bilinearly to the input's height
            and width (which must then be fixed), giving ``(N, H, W, classes)`` like a
            keras-hub segmenter. Defaults to `False`.
        activation: activation applied to each location's scores, e.g. `"softmax"` for
            per-location probabilities; `None` keeps the logits. Defaults to `None`.
        name: name of the new model. Defaults to `None`, meaning
            `"{classifier.name}_fully_convolutional"`.

    Returns:
        A Keras Functional model from the classifier's inputs to scores of shape
        ``(N, h, w, classes)`` (``h, w`` the feature map's size, or the input's with
        ``resize_to_input``).

    Raises:
        ValueError: the classifier is not a Functional or Sequential model, or does not
            end in global average pooling and a dense layer (the message names the layer
            found instead), or ``resize_to_input`` is
            set for an input of unknown height or width.

    Example:
        >>> from gradcam.models import efficientnet_lite, fully_convolutional
        >>> segmenter = fully_convolutional.fully_convolutional(
        ...     efficientnet_lite.EfficientNetLite0(), resize_to_input=True)
        >>> segmenter.output_shape
        (None, 224, 224, 1000)
    """
    features, dense = _classifier_head(classifier)
    kernel, *bias = dense.get_weights()
    conv = keras.layers.Conv2D(
        kernel.shape[1], 1, use_bias=dense.use_bias, activation=None,
        name=f"{dense.name}_per_location",
    )
    scores = conv(features)
    conv.set_weights([kernel[None, None], *bias])
    if resize_to_input:
        height, width = classifier.inputs[0].shape[1:3]
        if height is None or width is None:
            raise ValueError(
                "resize_to_input=True needs an input of fixed height and width; model "
                f"{classifier.name!r} takes {tuple(classifier.inputs[0].shape)}."
            )
        scores = keras.layers.Resizing(height, width, interpolation="bilinear",
                                       name="resize_to_input")(scores)
    if activation is not None:
        scores = keras.layers.Activation(activation, name="per_location_activation")(scores)
    inputs = classifier.inputs[0] if len(classifier.inputs) == 1 else classifier.inputs
    return keras.Model(inputs, scores, name=name or f"{classifier.name}_fully_convolutional")
