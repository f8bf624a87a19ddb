"""gradcam.models.fully_convolutional: a classifier's scores per location, exact on tiny models."""

import keras
import numpy as np
import pytest

from gradcam.models.fully_convolutional import fully_convolutional
from helpers.tiny import (LOGITS, PROBAS, X, make_flatten, make_functional, make_nested,
                          make_separate_softmax, make_sequential, make_subclassed)

# The tiny classifier's feature maps are A0 = [[10, 18], [42, 50]] and A1 = -5 everywhere
# (helpers.tiny); its dense kernel is W = [[0.1, -0.1], [0.2, 0.3]], no bias. Per location:
# class 0: 0.1 A0 + 0.2 * -5 = 0.1 A0 - 1, class 1: -0.1 A0 + 0.3 * -5 = -0.1 A0 - 1.5.
TINY_SCORES = np.stack(
    [np.array([[0.0, 0.8], [3.2, 4.0]]), np.array([[-2.5, -3.3], [-5.7, -6.5]])], axis=-1
)[np.newaxis].astype(np.float32)  # (1, 2, 2, 2)


@pytest.mark.parametrize("make", [make_functional, make_sequential, make_nested,
                                  make_separate_softmax])
def test_tiny_scores_per_location_are_hand_computed_and_average_to_the_logits(make):
    classifier = make()
    scores = keras.ops.convert_to_numpy(fully_convolutional(classifier)(X))
    np.testing.assert_allclose(scores, TINY_SCORES, atol=1e-5)
    np.testing.assert_allclose(scores.mean(axis=(1, 2)), LOGITS[np.newaxis], atol=1e-5)


def test_bias_and_dropout_average_to_the_logits():
    inputs = keras.Input((6, 5, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(3, name="dense")(x)
    x = keras.layers.Softmax(name="softmax")(x)
    classifier = keras.Model(inputs, x)
    classifier.get_layer("dense").set_weights(
        [np.arange(12, dtype=np.float32).reshape(4, 3) / 10, np.array([1.0, -2.0, 0.5], np.float32)]
    )
    images = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype(np.float32)
    logits = keras.Model(inputs, classifier.get_layer("dense").output)(images)
    scores = fully_convolutional(classifier)(images)
    assert tuple(scores.shape) == (2, 6, 5, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores).mean(axis=(1, 2)),
                               keras.ops.convert_to_numpy(logits), atol=1e-5)


def test_the_classifier_is_not_changed_and_its_layers_are_shared():
    classifier = make_functional()
    before = [w.copy() for w in classifier.get_weights()]
    model = fully_convolutional(classifier)
    assert [layer.name for layer in classifier.layers] == ["image", "conv", "pool", "predictions"]
    for old, new in zip(before, classifier.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(classifier(X)), PROBAS[np.newaxis],
                               atol=1e-6)
    assert model.get_layer("conv") is classifier.get_layer("conv")
    assert model.layers[-1].name == "predictions_per_location"
    assert model.name == "tiny_fully_convolutional"


def test_resize_to_input_and_activation():
    model = fully_convolutional(make_functional(), resize_to_input=True, activation="softmax")
    probas = keras.ops.convert_to_numpy(model(X))
    assert probas.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(probas.sum(axis=-1), 1.0, atol=1e-6)
    # Class 0's score (0.1 A0 - 1) beats class 1's (-0.1 A0 - 1.5) at every location, so
    # also at every pixel of the bilinear interpolation.
    assert (probas.argmax(axis=-1) == 0).all()


def test_resize_to_input_needs_a_fixed_input_size():
    classifier = make_functional(input_shape=(None, None, 1))
    assert tuple(fully_convolutional(classifier)(X).shape) == (1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"fixed height and width.*\(None, None, None, 1\)"):
        fully_convolutional(classifier, resize_to_input=True)


def test_a_classifier_without_global_average_pooling_is_refused():
    with pytest.raises(ValueError, match="global average pooling.*'flatten', a Flatten"):
        fully_convolutional(make_flatten())
    inputs = keras.Input((4, 4, 1))
    conv_only = keras.Model(inputs, keras.layers.Conv2D(2, 2, name="conv")(inputs), name="c")
    with pytest.raises(ValueError, match="end in a Dense classifier.*'conv' is a Conv2D"):
        fully_convolutional(conv_only)
    with pytest.raises(ValueError, match="'tiny_subclassed' is a TinySubclassed without a graph"):
        fully_convolutional(make_subclassed())


def test_output_layout_matches_keras_hub_segmenters():
    """A keras-hub SegFormer (random weights, built from a config) gives (N, H, W, classes),
    channels last, at the input's size: the layout of fully_convolutional(resize_to_input=True),
    so a segmentation target reads both the same way."""
    keras_hub = pytest.importorskip("keras_hub")
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 1],
        layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2], image_shape=(32, 32, 3), hidden_dims=[8, 16],
    )
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=8)
    segmenter = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=5)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    hub_scores = segmenter(images)

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same")(inputs)
    x = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x))
    ours = fully_convolutional(keras.Model(inputs, x), resize_to_input=True)(images)
    assert tuple(hub_scores.shape) == tuple(ours.shape) == (2, 32, 32, 5)
    assert segmenter.output_shape == (None, 32, 32, 5)
