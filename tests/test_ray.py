"""gradcam.ray: the Explainer on its own (hand-computed maps), then explain_images on a
local Ray instance of two CPUs, the bundled EfficientNet-Lite0 and the bundled photos.

The tiny RGB model is the tiny classifier (helpers/tiny.py) reading the red channel: its conv
kernel is the tiny classifier's on channel 0 and zero on green and blue. An image whose red channel
is ``arange(16)`` (4x4) therefore gives its hand-computed values: logits
``[2, -4.5]``, class 0's map ``[[0, 0.2], [0.8, 1]]``, class 1's map all zero.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import ray
import ray.data

import gradcam
import gradcam.ray as gradcam_ray
from gradcam.models import efficientnet_lite
from helpers.ray import local_ray as start_local_ray
from helpers.ray import save_tiny, tiny_rgb
from helpers.tiny import LOGIT_MAP_0, LOGIT_MAP_1, LOGITS, PROBAS

RED = np.zeros((4, 4, 3), np.uint8)
RED[..., 0] = np.arange(16).reshape(4, 4)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The bundled photos (several sizes) in a folder, with one grayscale PNG."""
    folder = tmp_path_factory.mktemp("photos")
    for name in gradcam.samples.names():
        os.link(gradcam.samples.path(name), folder / f"{name}.jpg")
    Image.open(gradcam.samples.path("chelsea")).convert("L").save(folder / "gray.png")
    return sorted(str(p) for p in folder.iterdir())


# -- the Explainer, in this process --------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*all zero:UserWarning")  # class 1's map, by design
def test_explainer_adds_hand_computed_columns_and_keeps_the_others(tiny_file):
    explainer = gradcam_ray.Explainer(model=tiny_file, targets=[0, 1])
    out = explainer({"image": RED[np.newaxis], "path": np.array(["red.png"]), "label": np.array([7])})
    assert sorted(out) == ["heatmap", "label", "path", "proba", "score", "target"]
    assert out["path"].tolist() == ["red.png"] and out["label"].tolist() == [7]
    assert out["target"].dtype == np.int64 and out["target"].tolist() == [[0, 1]]
    np.testing.assert_allclose(out["score"], [LOGITS], atol=1e-6)
    np.testing.assert_allclose(out["proba"], [PROBAS], atol=1e-6)
    assert out["heatmap"].dtype == np.float32 and out["heatmap"].shape == (1, 2, 2, 2)
    np.testing.assert_allclose(out["heatmap"][0], [LOGIT_MAP_0, LOGIT_MAP_1], atol=1e-6)


def test_explainer_builds_a_model_from_a_function_and_marks_missing_probabilities():
    explainer = gradcam_ray.Explainer(model=lambda: tiny_rgb(activation=None))
    out = explainer({"image": RED[np.newaxis].astype(np.float32)})  # the model's size: used as is
    assert out["target"].tolist() == [[0]]
    np.testing.assert_allclose(out["score"], [[LOGITS[0]]], atol=1e-6)
    assert np.isnan(out["proba"]).all() and out["proba"].dtype == np.float32
    np.testing.assert_allclose(out["heatmap"][0, 0], LOGIT_MAP_0, atol=1e-6)


def test_explainer_resizes_images_of_any_size_as_image_from_path(tiny_file, photos):
    """A column of arrays of several shapes (what read_images gives without size=),
    grayscale included, gives the maps of image_from_path's arrays."""
    explainer = gradcam_ray.Explainer(model=tiny_file)
    images = np.empty(len(photos), dtype=object)
    images[:] = [np.asarray(Image.open(p)) for p in photos]
    assert len({image.shape for image in images}) == len(photos)
    assert [image.ndim for image, p in zip(images, photos) if p.endswith("gray.png")] == [2]
    out = explainer({"image": images})
    docs = np.concatenate([gradcam.image_from_path(p, (4, 4)) for p in photos])
    expected = gradcam.GradCAM(keras.models.load_model(tiny_file)).compute(docs)
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-6)
    np.testing.assert_array_equal(out["target"], expected.targets)


def test_explainer_passes_the_methods_options(photos, tmp_path):
    """Score-CAM on the first conv of the command line's tiny model (4 channels), scoring
    only the 1 of largest variance: the maps of ScoreCAM(max_channels=1), not of all 4."""
    from helpers.cli import save_model

    path = save_model(tmp_path / "four.keras")
    options = {"max_channels": 1, "perturbation_batch": 3}
    explainer = gradcam_ray.Explainer(model=path, method="scorecam", layer="conv1", method_options=options)
    images = np.empty(len(photos), dtype=object)
    images[:] = [np.asarray(gradcam.load_image(p)) for p in photos]
    out = explainer({"image": images})
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in photos])
    model = keras.models.load_model(path)
    expected = gradcam.ScoreCAM(model, layer="conv1", max_channels=1).compute(docs)
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-5)
    every_channel = gradcam.ScoreCAM(model, layer="conv1").compute(docs)
    assert np.abs(every_channel.heatmaps - expected.heatmaps).max() > 1e-3


def test_explainer_passes_the_smoothing(photos, tmp_path):
    """eigen_smooth and aug_smooth reach the actor's engine: the maps of
    GradCAM.compute(..., eigen_smooth=True, aug_smooth=True), not the plain maps."""
    from helpers.cli import save_model

    path = save_model(tmp_path / "smooth.keras")
    explainer = gradcam_ray.Explainer(model=path, eigen_smooth=True, aug_smooth=True)
    images = np.empty(len(photos), dtype=object)
    images[:] = [np.asarray(gradcam.load_image(p)) for p in photos]
    out = explainer({"image": images})
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in photos])
    engine = gradcam.GradCAM(keras.models.load_model(path))
    expected = engine.compute(docs, eigen_smooth=True, aug_smooth=True)
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-5)
    assert np.abs(engine.compute(docs).heatmaps - expected.heatmaps).max() > 1e-3


def test_explainer_converts_16_bit_and_one_channel_images_as_load_image(tiny_file, tmp_path):
    """A 16-bit grayscale array (H, W) and an 8-bit (H, W, 1) one give the maps of
    image_from_path on the same pixels saved as 16-bit and 8-bit grayscale PNG files."""
    gray16 = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300)
    gray8 = (np.arange(48, dtype=np.uint8).reshape(6, 8) * 5)[..., np.newaxis]
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    Image.fromarray(gray8[..., 0]).save(tmp_path / "gray8.png")
    images = np.empty(2, dtype=object)
    images[0], images[1] = gray16, gray8
    out = gradcam_ray.Explainer(model=tiny_file)({"image": images})
    docs = np.concatenate([gradcam.image_from_path(tmp_path / name, (4, 4)) for name in ("gray16.png", "gray8.png")])
    expected = gradcam.GradCAM(keras.models.load_model(tiny_file)).compute(docs)
    np.testing.assert_allclose(out["heatmap"], expected.heatmaps, atol=1e-6)
    np.testing.assert_allclose(out["score"], expected.scores, atol=1e-5)


def test_explainer_empty_batch_keeps_the_columns_shapes(tiny_file):
    explainer = gradcam_ray.Explainer(model=tiny_file, targets=[1, 0])
    out = explainer({"image": np.zeros((0, 4, 4, 3), np.uint8), "path": np.array([], dtype=str)})
    assert out["heatmap"].shape == (0, 2, 2, 2) and out["heatmap"].dtype == np.float32
    assert out["target"].shape == (0, 2) and out["proba"].shape == (0, 2)


@pytest.mark.parametrize("batch, message", [
    ({"pixels": RED[np.newaxis]}, "The batch has no 'image' column; its columns: 'pixels'."),
    ({"image": RED[np.newaxis], "score": np.array([1.0])}, "The batch already has a column 'score'"),
    ({"image": np.zeros((1, 5, 5, 3), np.float32)},
     "Cannot explain an image of shape (5, 5, 3) and dtype float32: expected 8-bit images"),
    ({"image": np.zeros((1, 5, 5, 2), np.uint8)}, "Cannot explain an image of shape (5, 5, 2) and dtype uint8"),
])
def test_explainer_bad_batches(tiny_file, batch, message):
    explainer = gradcam_ray.Explainer(model=tiny_file)
    with pytest.raises(ValueError) as error:
        explainer(batch)
    assert message in str(error.value)


def test_explainer_bad_target_fails_at_start(tiny_file):
    with pytest.raises(ValueError, match="tiger cat"):
        gradcam_ray.Explainer(model=tiny_file, targets=["tiger cat"])


# -- arguments, checked before anything runs -------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam++", "scorecam"])
def test_explainer_runs_each_method_as_its_engine(tiny_file, photos, method):
    """Any method of METHODS: the maps of method_class(method) on image_from_path's arrays
    (a gradient method and a perturbation one)."""
    images = np.empty(len(photos), dtype=object)
    images[:] = [np.asarray(Image.open(p)) for p in photos]
    out = gradcam_ray.Explainer(model=tiny_file, method=method, targets=[0])({"image": images})
    docs = np.concatenate([gradcam.image_from_path(p, (4, 4)) for p in photos])
    engine = gradcam.methods.method_class(method)(keras.models.load_model(tiny_file))
    expected = engine.heatmaps(docs, targets=[0])
    gradcam_maps = gradcam.GradCAM(engine.model).heatmaps(docs, targets=[0])
    assert np.abs(expected - gradcam_maps).max() > 0.5  # Grad-CAM's maps would not pass
    np.testing.assert_allclose(out["heatmap"], expected, atol=1e-4, rtol=0)


def test_ray_versions_older_than_the_minimum_are_refused(monkeypatch):
    assert gradcam_ray.MINIMUM_RAY == (2, 9)
    for version in ("2.9.0", "2.60.0", "3.0.0.dev0"):
        gradcam_ray.check_ray_version(version)
    with pytest.raises(ImportError) as error:
        gradcam_ray.check_ray_version("2.8.1")
    assert str(error.value) == ('gradcam.ray needs Ray 2.9 or newer; found Ray 2.8.1. Upgrade it: '
                                'pip install -U "ray[data]>=2.9"')
    with pytest.raises(ImportError, match="found Ray not-a-version"):
        gradcam_ray.check_ray_version("not-a-version")
    # importing the package reads ray.__version__
    monkeypatch.setattr(ray, "__version__", "2.5.0")
    monkeypatch.delitem(sys.modules, "gradcam.ray")
    with pytest.raises(ImportError, match=r"^gradcam.ray needs Ray 2.9 or newer; found Ray 2.5.0\."):
        importlib.import_module("gradcam.ray")


def test_reading_tasks_leave_a_cpu_to_each_actor():
    from gradcam.ray.explain import _reading_tasks

    assert [_reading_tasks(cpus, actors) for cpus, actors in [(2, 1), (2, 2), (1, 1), (2.5, 1), (16, 1), (64, 4)]] \
        == [1, 1, 1, 1, 15, 60]


def test_builtin_models_are_read_at_their_native_size():
    from gradcam.models.registry import BUILTIN_MODELS, builtin_image_size

    assert [builtin_image_size(name) for name in ("efficientnet_lite0", "efficientnet_lite1",
                                                   "efficientnet_lite2")] == [(224, 224), (240, 240), (260, 260)]
    assert {name: builtin_image_size(name)[0] for name in BUILTIN_MODELS} == {
        f"efficientnet_lite{i}": efficientnet_lite.IMAGE_SIZES[f"EfficientNetLite{i}"] for i in range(3)}
    assert efficientnet_lite.EfficientNetLite1(weights=None).input_shape == (None, 240, 240, 3)
    assert builtin_image_size("model.keras") is None and builtin_image_size(tiny_rgb) is None


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(method="gradcam+"), ValueError, "Unknown method 'gradcam+'; the methods are 'gradcam', 'gradcam++', "),
    (dict(method="scorecam", method_options={"max_channel": 8}), TypeError,
     "method 'scorecam' has no option 'max_channel'; its options are 'perturbation_batch', 'max_channels'."),
    (dict(method_options={"max_channels": 8}), TypeError, "method 'gradcam' has no option 'max_channels'; it takes none."),
    (dict(eigen_smooth="yes"), ValueError, "eigen_smooth must be True or False; got 'yes'."),
    (dict(aug_smooth=None), ValueError, "aug_smooth must be True or False; got None."),
    (dict(model="resnet_fifty"), ValueError, "unknown model 'resnet_fifty'; expected one of efficientnet_lite0"),
    (dict(model="missing.keras"), ValueError, "no model file at 'missing.keras'"),
    (dict(model=tiny_rgb()), TypeError, "model must be a built-in model's name"),
    (dict(score="logits"), ValueError, "score must be one of 'auto', 'logit', 'output'; got 'logits'."),
    (dict(preprocess="bgr"), ValueError, "preprocess must be 'auto', one of 'none', 'lite'"),
    (dict(image_size=(224, 0)), ValueError, "image_size must be (height, width) with two positive integers, "
                                            "or None; got (224, 0)."),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer; got 0."),
    (dict(num_gpus=-1), ValueError, "num_gpus must be a number of GPUs, 0 or more; got -1."),
    (dict(concurrency=0), ValueError, "concurrency must be None, a positive number of actors, or (min, max); "
                                      "got 0."),
    (dict(concurrency=(3, 2)), ValueError, "got (3, 2)."),
])
def test_explain_images_checks_its_arguments_first(photos, kwargs, error, message):
    with pytest.raises(error) as raised:
        gradcam_ray.explain_images(photos, **kwargs)
    assert message in str(raised.value)


@pytest.mark.parametrize("source, error, message", [
    (42, TypeError, "source must be a folder, an image file, a list of paths or a ray.data.Dataset; got int."),
    ("no/such/folder", ValueError, "'no/such/folder' does not exist."),
    ([], ValueError, "source is an empty list; expected image files or folders."),
])
def test_explain_images_bad_sources(source, error, message):
    with pytest.raises(error) as raised:
        gradcam_ray.explain_images(source, concurrency=1)
    assert str(raised.value) == message


# -- on a local Ray instance -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """Ray on two CPUs, as on this machine: two actors and the reading tasks must fit."""
    with start_local_ray():
        yield


def test_a_script_makes_the_dataset_without_importing_keras(local_ray, photos):
    """Keras takes seconds to import; a script that only starts the run (its driver) does
    not need it: the actors import it."""
    code = (
        "import sys, ray, gradcam.ray\n"
        f"ray.init(address={ray.get_runtime_context().gcs_address!r}, log_to_driver=False)\n"
        "for method in ('gradcam', 'scorecam'):\n"
        f"    gradcam.ray.explain_images({photos!r}, model='efficientnet_lite1', method=method, concurrency=1)\n"
        "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def test_explainer_takes_read_images_batches(local_ray, photos, tiny_file):
    """A batch as ray.data.read_images gives it without size= (a column of arrays of
    several shapes) gives the maps of image_from_path's arrays."""
    batch = ray.data.read_images(photos, mode="RGB", include_paths=True).take_batch(
        len(photos), batch_format="numpy")
    assert len({image.shape for image in batch["image"]}) > 1
    out = gradcam_ray.Explainer(model=tiny_file)(batch)
    order = np.argsort(out["path"])
    assert out["path"][order].tolist() == photos
    docs = np.concatenate([gradcam.image_from_path(p, (4, 4)) for p in photos])
    expected = gradcam.GradCAM(keras.models.load_model(tiny_file)).compute(docs)
    np.testing.assert_allclose(out["heatmap"][order], expected.heatmaps, atol=1e-6)


def test_explain_images_equals_gradcam_heatmaps_in_parquet(local_ray, photos, tmp_path):
    """Two actors on two CPUs (with a full CPU each, none would be left for the tasks that
    read the files, and the run would never end); the maps written to Parquet equal
    GradCAM.heatmaps on image_from_path's arrays."""
    explained = gradcam_ray.explain_images(photos, model="efficientnet_lite0", batch_size=3, concurrency=2)
    explained.write_parquet(str(tmp_path / "out"))
    rows = sorted(ray.data.read_parquet(str(tmp_path / "out")).take_all(), key=lambda row: row["path"])
    assert [row["path"] for row in rows] == photos
    assert sorted(rows[0]) == ["heatmap", "path", "proba", "score", "target"]
    engine = gradcam.GradCAM(efficientnet_lite.EfficientNetLite0(weights="imagenet"),
                             preprocess=efficientnet_lite.preprocess_input)
    expected = engine.compute(np.concatenate([gradcam.image_from_path(p, (224, 224)) for p in photos]))
    heatmaps = np.stack([row["heatmap"] for row in rows])
    assert heatmaps.dtype == np.float32 and heatmaps.shape == (len(photos), 1, 7, 7)
    np.testing.assert_allclose(heatmaps, expected.heatmaps, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(np.stack([row["target"] for row in rows]), expected.targets)
    np.testing.assert_allclose(np.stack([row["score"] for row in rows]), expected.scores, atol=1e-3, rtol=0)
    np.testing.assert_allclose(np.stack([row["proba"] for row in rows]), expected.probas, atol=1e-5, rtol=0)


def test_explain_images_runs_the_method_asked_for(local_ray, photos, tiny_file):
    """method= reaches the actors: Grad-CAM++'s maps (far from Grad-CAM's on this model)."""
    explained = gradcam_ray.explain_images(photos, model=tiny_file, method="gradcam++", targets=[0],
                                           batch_size=4, concurrency=1)
    rows = sorted(explained.take_all(), key=lambda row: row["path"])
    assert [row["path"] for row in rows] == photos
    docs = np.concatenate([gradcam.image_from_path(p, (4, 4)) for p in photos])
    expected = gradcam.GradCAMPlusPlus(keras.models.load_model(tiny_file)).heatmaps(docs, targets=[0])
    np.testing.assert_allclose(np.stack([row["heatmap"] for row in rows]), expected, atol=1e-4, rtol=0)
