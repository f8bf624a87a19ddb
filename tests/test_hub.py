"""keras-hub image classifiers are explained with their preprocessor (gradcam.hub).

The classifiers are built from configs with random weights (nothing is downloaded): a
ResNet and an EfficientNet, each with a preprocessor that rescales the images and resizes
them to the backbone's size, as keras-hub's own presets do.
"""

from __future__ import annotations

import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest

import gradcam
from gradcam import hub

# random weights leave some classes without positive evidence: their empty maps are expected
pytestmark = pytest.mark.filterwarnings("ignore::gradcam.EmptyMapWarning")

RAW = np.random.default_rng(0).uniform(0, 255, (2, 40, 48, 3)).astype(np.float32)


def _resnet(crop=False, pad=False, activation="softmax", preprocessor=True):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2],
        block_type="basic_block", image_shape=(32, 32, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=1 / 255, offset=-0.5,
        crop_to_aspect_ratio=crop, pad_to_aspect_ratio=pad,
    )
    return keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=5, activation=activation,
        preprocessor=(keras_hub.models.ResNetImageClassifierPreprocessor(converter)
                      if preprocessor else None),
    )


def _efficientnet():
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0], stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1], stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16], stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25], stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"], stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False], num_features=16, input_shape=(32, 32, 3),
    )
    converter = keras_hub.layers.EfficientNetImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1, crop_to_aspect_ratio=False
    )
    return keras_hub.models.EfficientNetImageClassifier(
        backbone=backbone, num_classes=4, activation="softmax",
        preprocessor=keras_hub.models.EfficientNetImageClassifierPreprocessor(converter),
    )


@pytest.fixture(scope="module")
def resnet():
    return _resnet()


@pytest.fixture(scope="module")
def efficientnet():
    return _efficientnet()


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("size", [(40, 48), (32, 32)], ids=["resized", "backbone-size"])
@pytest.mark.parametrize("name", ["resnet", "efficientnet"])
def test_scores_and_probabilities_are_predicts(name, size, request):
    # at the backbone's size, the model alone runs on raw images too, to other scores
    model = request.getfixturevalue(name)
    images = RAW[:, : size[0], : size[1]]
    predicted = model.predict(images, verbose=0)
    classes = predicted.shape[1]
    result = gradcam.GradCAM(model).compute(images, targets=list(range(classes)))
    np.testing.assert_allclose(result.outputs, predicted, atol=1e-5)
    np.testing.assert_allclose(result.probas, predicted, atol=1e-5)
    # the scores are the logits whose softmax predict() returns
    np.testing.assert_allclose(_softmax(result.scores), predicted, atol=1e-5)
    # ... which the model called on the images without its preprocessor does not give
    unprocessed = keras.ops.convert_to_numpy(model(keras.ops.image.resize(images, (32, 32))))
    assert np.abs(unprocessed - predicted).max() > 1e-2


def test_model_without_softmax_scores_are_predicts():
    model = _resnet(activation=None)
    predicted = model.predict(RAW, verbose=0)
    result = gradcam.GradCAM(model).compute(RAW, targets=[0, 3])
    np.testing.assert_allclose(result.scores, predicted[:, [0, 3]], atol=1e-5)
    assert result.probas is None


def test_explain_prediction_uses_the_preprocessor(resnet):
    predicted = resnet.predict(RAW[:1], verbose=0)[0]
    expl = gradcam.explain_prediction(resnet, RAW[:1], class_names=list("abcde"))
    top = int(np.argmax(predicted))
    assert (expl.targets[0].target, expl.targets[0].name) == (top, "abcde"[top])
    assert expl.targets[0].proba == pytest.approx(float(predicted[top]), abs=1e-5)
    # drawn on the user's image, in its true colours, at its own size
    np.testing.assert_array_equal(np.asarray(expl.image), np.round(RAW[0]).astype(np.uint8))


def test_users_preprocess_runs_first_on_the_raw_images(resnet):
    def flip(x):
        return x[:, :, ::-1]

    predicted = resnet.predict(flip(RAW), verbose=0)
    result = gradcam.GradCAM(resnet, preprocess=flip).compute(RAW, targets=[0, 1, 2, 3, 4])
    np.testing.assert_allclose(result.probas, predicted, atol=1e-5)
    through_api = gradcam.explain_prediction(resnet, RAW[:1], targets=[2], preprocess=flip)
    assert through_api.targets[0].proba == pytest.approx(float(predicted[0, 2]), abs=1e-5)


def test_the_callers_images_are_not_changed(resnet):
    raw = RAW.copy()
    gradcam.GradCAM(resnet).compute(raw)
    np.testing.assert_array_equal(raw, RAW)


def test_setting_the_preprocessor_to_none_explains_the_bare_model():
    model = _resnet(preprocessor=False)
    ready = RAW[:, :32, :32] / 255 - 0.5
    result = gradcam.GradCAM(model).compute(ready, targets=[1])
    np.testing.assert_allclose(result.probas[:, 0], model.predict(ready, verbose=0)[:, 1], atol=1e-5)


def test_layers_inside_the_backbone(resnet):
    automatic = gradcam.GradCAM(resnet)
    assert automatic.layer == "res_net_backbone/stack1_block0_out"
    everything = [0, 1, 2, 3, 4]
    by_path = gradcam.GradCAM(resnet, layer="res_net_backbone/stack1_block0_out").compute(RAW, everything)
    by_name = gradcam.GradCAM(resnet, layer="stack1_block0_out").compute(RAW, everything)
    assert not by_path.empty.all()
    np.testing.assert_array_equal(by_path.heatmaps, by_name.heatmaps)
    np.testing.assert_array_equal(automatic.compute(RAW, everything).heatmaps, by_path.heatmaps)
    # the 32 x 32 backbone input: / 4 by the stem, / 2 by stack 1
    assert by_path.heatmaps.shape == (2, 5, 4, 4)
    earlier = gradcam.GradCAM(resnet, layer="res_net_backbone/stack0_block0_out")
    assert earlier.compute(RAW, everything).heatmaps.shape == (2, 5, 8, 8)


def test_vision_transformer_classifier():
    # a ViTImageClassifier reads the class token: its own head, another subclass
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1)
    model = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=3, activation="softmax",
        preprocessor=keras_hub.models.ViTImageClassifierPreprocessor(converter),
    )
    predicted = model.predict(RAW, verbose=0)
    cam = gradcam.GradCAM(model)
    assert cam.layer == f"{backbone.name}/vit_encoder/transformer_block_2/ln_1"
    for target in range(3):  # one target per call: a 4 x 4 grid of 8 x 8 patches each
        result = cam.compute(RAW, targets=[target])
        np.testing.assert_allclose(result.probas[:, 0], predicted[:, target], atol=1e-5)
        assert result.heatmaps.shape == (2, 1, 4, 4)


def test_several_targets_at_once_on_a_vision_transformer():
    # One image, three targets in one call: TensorFlow's vectorised Jacobian (pfor) made
    # rank-4 matrix products with a size-1 dimension here, which oneDNN corrupts memory on
    # (the process crashed in most runs); the maps must equal one target per call.
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(96, 96, 3), patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    model = keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, activation="softmax",
                                                preprocessor=None)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    cam = gradcam.GradCAM(model)
    together = cam.compute(x, targets=[0, 1, 2])
    alone = [cam.compute(x, targets=[target]) for target in range(3)]
    np.testing.assert_allclose(together.heatmaps[0], [r.heatmaps[0, 0] for r in alone], atol=1e-5)
    np.testing.assert_allclose(together.probas[0], model.predict(x, verbose=0)[0], atol=1e-5)


def test_efficientnet_automatic_layer(efficientnet):
    assert gradcam.GradCAM(efficientnet).layer == "efficient_net_backbone/top_activation"


def test_a_cropping_preprocessor_draws_on_the_centred_window():
    # 40 x 48 images, a 32 x 32 target: the converter keeps the centred 40 x 40 window
    model = _resnet(crop=True)
    (expl,) = gradcam.GradCAM(model).explain(RAW[:1])
    np.testing.assert_array_equal(np.asarray(expl.image), np.round(RAW[0, :, 4:44]).astype(np.uint8))
    assert expl.targets[0].proba == pytest.approx(float(model.predict(RAW[:1], verbose=0).max()), abs=1e-5)


def test_a_padding_preprocessor_draws_on_the_padded_image():
    # 40 x 48 images, a 32 x 32 target: padded with black to 48 x 48, 4 rows above
    model = _resnet(pad=True)
    (expl,) = gradcam.GradCAM(model).explain(RAW[:1])
    expected = np.zeros((48, 48, 3), np.uint8)
    expected[4:44] = np.round(RAW[0]).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(expl.image), expected)


def test_model_view_crops_as_keras_resize_does():
    model = _resnet(crop=True)
    pictures = np.arange(2 * 5 * 9 * 1, dtype=np.float32).reshape(2, 5, 9, 1)
    # target 32 x 32 (1:1): the centred 5 x 5 window of a 5 x 9 picture, columns 2..6
    np.testing.assert_array_equal(hub.model_view(model, pictures), pictures[:, :, 2:7])
    tall = pictures.transpose(0, 2, 1, 3)  # 9 x 5: rows 2..6
    np.testing.assert_array_equal(hub.model_view(model, tall), tall[:, 2:7])


@pytest.mark.parametrize("kind", ["crop", "pad"])
def test_the_command_line_reads_the_window_the_preprocessor_keeps(kind, tmp_path):
    """gradcam explain resizes each file for the model: from the window a cropping or
    padding preprocessor keeps, not from the whole picture (whose squeezed copy the
    converter would leave as it is)."""
    from PIL import Image

    from gradcam import cli
    from gradcam.image import doc_from_image

    model = _resnet(**{kind: True})
    model.save(tmp_path / "hub.keras")
    # 40 x 80: the window is the centred 40 x 40 (crop) or the picture in a black 80 x 80
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, :20], picture[:, 20:60], picture[:, 60:] = (250, 20, 20), (20, 20, 250), (20, 250, 20)
    Image.fromarray(picture).save(tmp_path / "wide.png")
    window = hub.picture_view(model, Image.fromarray(picture))
    assert np.asarray(window).tolist() == hub.model_view(model, picture[None])[0].tolist()
    assert window.size == ((40, 40) if kind == "crop" else (80, 80))

    out = tmp_path / "out"
    assert cli.main(["explain", str(tmp_path / "wide.png"), "--model", str(tmp_path / "hub.keras"),
                     "--out", str(out), "--quiet"]) == 0
    saved = np.load(out / "heatmaps.npz")
    expected = gradcam.GradCAM(model).compute(doc_from_image(window, (32, 32)))
    np.testing.assert_allclose(saved["heatmaps"], expected.heatmaps, atol=1e-5)
    squeezed = gradcam.GradCAM(model).compute(doc_from_image(Image.fromarray(picture), (32, 32)))
    assert np.abs(squeezed.probas - expected.probas).max() > 1e-3  # what it read before


def test_padding_a_strip_is_bounded():
    """A 1 x 8193 strip padded to the square target would be 8193 x 8193 (67 million
    pixels): it is scaled to 1 x 4096 first, and padded to 4096 x 4096."""
    from PIL import Image

    model = _resnet(pad=True)
    strip = Image.new("RGB", (8193, 1), (200, 100, 50))
    view = hub.picture_view(model, strip)
    assert view.size == (4096, 4096) and 4096 * 4096 == hub.MAX_PADDED_PIXELS
    pixels = np.asarray(view)
    assert pixels[2047].tolist() == [[200, 100, 50]] * 4096  # the strip, centred
    assert not pixels[:2047].any() and not pixels[2048:].any()  # black above and below
    # a picture that padding does not blow up is padded at its own resolution
    assert hub.picture_view(model, Image.new("RGB", (300, 100))).size == (300, 300)


def test_the_ray_explainer_reads_the_window_the_preprocessor_keeps(tmp_path):
    from PIL import Image

    from gradcam.image import doc_from_image
    from gradcam.ray import Explainer

    model = _resnet(crop=True)
    model.save(tmp_path / "hub.keras")
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, :20], picture[:, 20:60], picture[:, 60:] = (250, 20, 20), (20, 20, 250), (20, 250, 20)
    out = Explainer(model=str(tmp_path / "hub.keras"))({"image": np.array([picture])})
    window = hub.picture_view(model, Image.fromarray(picture))
    expected = gradcam.GradCAM(model).compute(doc_from_image(window, (32, 32)))
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-5)
    np.testing.assert_allclose(out["proba"], expected.probas, atol=1e-5)


def test_other_models_are_left_alone(resnet):
    plain = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 2), keras.layers.Flatten()])
    assert hub.image_classifier_preprocessor(plain) is None
    assert hub.image_classifier_preprocessor("not a model") is None
    assert hub.preprocess_samples(plain, RAW) is RAW
    assert hub.model_view(plain, RAW) is RAW
    assert hub.image_classifier_preprocessor(resnet) is resnet.preprocessor


def test_a_preprocessor_that_changes_the_batch_is_refused():
    model = _resnet(preprocessor=False)
    model.preprocessor = lambda x: x[0]
    message = (r"preprocessor of keras-hub model .* turned a batch of shape \(2, 40, 48, 3\) "
               r"into .* of shape \(40, 48, 3\); expected a batch of 2")
    with pytest.raises(ValueError, match=message):
        gradcam.GradCAM(model).compute(RAW)


def _run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_gradcam_does_not_import_keras_hub():
    out = _run_python(
        "import sys, gradcam, gradcam.hub, gradcam.methods.base; print('keras_hub' in sys.modules)"
    )
    assert out.strip().splitlines()[-1] == "False"


def test_gradcam_works_without_keras_hub():
    code = (
        "import sys; sys.modules['keras_hub'] = None\n"  # makes `import keras_hub` fail
        "import keras, numpy as np, gradcam\n"
        "model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 2),"
        " keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])\n"
        "print(gradcam.GradCAM(model).heatmaps(np.ones((1, 4, 4, 1)), targets=[0]).shape)\n"
    )
    assert _run_python(code).strip().splitlines()[-1] == "(1, 1, 3, 3)"


def test_metrics_score_through_the_preprocessor(resnet):
    # images at the backbone's size: without the preprocessor they would be scored silently
    images = RAW[:, :32, :32]
    _, curves = gradcam.metrics.deletion(resnet, images, np.ones((2, 4, 4)), 0, steps=2, return_curves=True)
    np.testing.assert_allclose(curves[:, 0], resnet.predict(images, verbose=0)[:, 0], atol=1e-5)
