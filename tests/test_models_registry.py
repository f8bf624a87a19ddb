"""gradcam.models.registry: the built-in model table, loading a model by name or file, its
input size and preprocessing; errors that name the argument at fault."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers.cli import save_model

from gradcam.checks import ArgumentError
from gradcam.models import efficientnet_lite, registry


def test_the_table_gives_each_builder_and_native_size():
    assert list(registry.BUILTIN_MODELS) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert registry.DEFAULT_MODEL == "efficientnet_lite0"
    assert [m.size for m in registry.BUILTIN_MODELS.values()] == [224, 240, 260]
    for model in registry.BUILTIN_MODELS.values():
        assert getattr(efficientnet_lite, model.builder).__name__ == model.builder
        assert model.preprocessing in registry.PREPROCESSING
    assert efficientnet_lite.EfficientNetLite2(weights=None).input_shape == (None, 260, 260, 3)
    assert efficientnet_lite.IMAGE_SIZES == {"EfficientNetLite0": 224, "EfficientNetLite1": 240,
                                             "EfficientNetLite2": 260}
    assert registry.builtin_image_size("efficientnet_lite1") == (240, 240)
    assert registry.builtin_image_size("model.keras") is None and registry.builtin_image_size(len) is None


def test_the_registry_loads_without_keras():
    code = ("import sys, gradcam.models.registry as r; r.check_model_file('efficientnet_lite0'); "
            "print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("spec, message", [
    ("resnet_fifty", "unknown model 'resnet_fifty'; expected one of efficientnet_lite0, efficientnet_lite1, "
                     "efficientnet_lite2 or the path of a .keras model file."),
    ("nowhere/model.keras", "no model file at 'nowhere/model.keras'."),
])
def test_check_model_file_names_the_model_argument(spec, message):
    with pytest.raises(ArgumentError) as raised:
        registry.check_model_file(spec)
    assert raised.value.argument == "model" and str(raised.value) == message


def test_load_model_from_a_file(tmp_path):
    path = save_model(tmp_path / "tiny.keras")
    model, builtin = registry.load_model(path)
    assert isinstance(model, keras.Model) and builtin is None
    assert registry.image_shape_for(model, None) == (32, 32)
    assert registry.image_shape_for(model, (32, 32)) == (32, 32)
    with pytest.raises(ArgumentError) as raised:
        registry.image_shape_for(model, (64, 48))
    assert raised.value.argument == "image_size"
    assert str(raised.value) == "the model takes images of 32x32 (height x width); got 64x48."


def test_a_model_of_any_size_needs_one(tmp_path):
    model, _ = registry.load_model(save_model(tmp_path / "any.keras", input_shape=(None, None, 3)))
    assert registry.image_shape_for(model, (20, 30)) == (20, 30)
    with pytest.raises(ArgumentError, match="an image size .height, width. is needed") as raised:
        registry.image_shape_for(model, None)
    assert raised.value.argument == "image_size"


def test_a_model_that_does_not_take_rgb_images():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 2)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(ArgumentError, match=r"^the model takes inputs of shape \(None, 4, 4, 1\); expected RGB") \
            as raised:
        registry.image_shape_for(model, None)
    assert raised.value.argument == "model"


def test_preprocess_functions():
    x = np.array([[[[0.0, 127.0, 255.0]]]], np.float32)
    lite = registry.BUILTIN_MODELS["efficientnet_lite0"]
    assert registry.preprocess_function("none") is None and registry.preprocess_function("auto") is None
    assert registry.preprocess_function("auto", lite) is efficientnet_lite.preprocess_input
    np.testing.assert_allclose(registry.preprocess_function("lite")(x), [[[[-127 / 128, 0, 1]]]])
    np.testing.assert_allclose(registry.preprocess_function("tf")(x.copy()), [[[[-1, 127 / 127.5 - 1, 1]]]],
                               rtol=1e-6)
    with pytest.raises(ArgumentError, match="unknown preprocessing 'bgr'; expected 'auto' or one of 'none'") as raised:
        registry.preprocess_function("bgr")
    assert raised.value.argument == "preprocess"
