"""gradcam.keras.ExplainCallback: the maps of fixed images written while a model trains.

A small classifier (6x6 one-channel inputs, a ReLU convolution with positive hand-set
weights, global average pooling, a softmax Dense whose class-0 weights are positive, so
that no class-0 map is empty) trains with plain SGD; a second callback after ours records
the weights at each epoch's end, and the overlays read back from the TensorBoard event
file and the PNG files must be those of Grad-CAM with the weights of that epoch.
"""

from __future__ import annotations

import glob
import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers.tiny import tracing_count
from PIL import Image

import gradcam
from gradcam.keras import ExplainCallback

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 1, (3, 6, 6, 1)).astype(np.float32)
TRAIN_X = RNG.uniform(0, 1, (16, 6, 6, 1)).astype(np.float32)
TRAIN_Y = (TRAIN_X[:, :3].sum(axis=(1, 2, 3)) > TRAIN_X[:, 3:].sum(axis=(1, 2, 3))).astype(np.int32)


def make_model():
    inputs = keras.Input((6, 6, 1))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))), name="small")
    conv.set_weights([RNG.uniform(0, 1, (3, 3, 1, 3)).astype(np.float32), np.zeros(3, np.float32)])
    dense.set_weights([np.array([[1.0, -1.0], [0.5, 0.5], [0.2, 1.0]], np.float32), np.zeros(2, np.float32)])
    return model


class RecordWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def train(callback, epochs=2):
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    record = RecordWeights()
    model.fit(TRAIN_X, TRAIN_Y, epochs=epochs, batch_size=4, shuffle=False, verbose=0, callbacks=[callback, record])
    return model, record.weights


def expected_overlays(model, weights, targets):
    """The overlays (N, K, 6, 6, 3) of Grad-CAM with these weights."""
    model.set_weights(weights)
    explanations = gradcam.GradCAM(model).explain(IMAGES, targets)
    count = len(explanations[0].targets)
    return np.stack([
        [np.asarray(gradcam.format_as_image(e, target=k).convert("RGB")) for k in range(count)]
        for e in explanations
    ])


def read_event_images(log_dir):
    """{tag: {step: (N, H, W, 3) uint8}} from the event files under ``log_dir``."""
    found = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                encoded = tf.make_ndarray(value.tensor)  # [width, height, png, png, ...]
                pictures = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in encoded[2:]]
                found.setdefault(value.tag, {})[event.step] = np.stack(pictures)
    return found


def test_tensorboard_images_per_epoch_follow_the_weights(tmp_path):
    callback = ExplainCallback(IMAGES, targets=[0], log_dir=tmp_path)
    model, weights = train(callback)
    found = read_event_images(str(tmp_path))
    assert list(found) == ["gradcam"] and sorted(found["gradcam"]) == [0, 1]
    for epoch in (0, 1):
        pictures = found["gradcam"][epoch]
        assert pictures.shape == (3, 6, 6, 3)  # one overlay per image, per epoch
        expected = expected_overlays(model, weights[epoch], [0])[:, 0]
        np.testing.assert_allclose(pictures.astype(int), expected.astype(int), atol=1)
    # the weights changed, and so did the maps
    assert np.abs(found["gradcam"][0].astype(int) - found["gradcam"][1].astype(int)).max() > 10
    assert len(callback.explanations) == 3
    assert not any(t.empty for e in callback.explanations for t in e.targets)  # real maps
    if keras.backend.backend() == "tensorflow":  # built and traced once, for every epoch
        assert tracing_count(callback.engine) == 1


def test_png_files_every_second_epoch_with_two_targets(tmp_path):
    callback = ExplainCallback(IMAGES, targets=[0, 1], png_dir=tmp_path / "maps", every=2)
    model, weights = train(callback, epochs=4)
    folders = sorted(os.listdir(tmp_path / "maps"))
    assert folders == ["epoch_0001", "epoch_0003"]
    for folder, epoch in zip(folders, (1, 3)):
        names = sorted(os.listdir(tmp_path / "maps" / folder))
        assert names == [f"image_{n:03d}_target_{k}.png" for n in range(3) for k in range(2)]
        expected = expected_overlays(model, weights[epoch], [0, 1])
        for n in range(3):
            for k in range(2):
                picture = np.asarray(Image.open(tmp_path / "maps" / folder / f"image_{n:03d}_target_{k}.png"))
                np.testing.assert_allclose(picture.astype(int), expected[n, k].astype(int), atol=1)


def test_one_engine_per_model_across_fits(tmp_path):
    callback = ExplainCallback(IMAGES, targets=[0], png_dir=tmp_path)
    model, _ = train(callback, epochs=1)
    engine = callback.engine
    model.fit(TRAIN_X, TRAIN_Y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.engine is engine


def test_images_of_the_wrong_size_fail_when_training_begins(tmp_path):
    callback = ExplainCallback(np.zeros((2, 5, 6, 1), np.float32), png_dir=tmp_path)
    with pytest.raises(ValueError, match=r"expects images of shape \(6, 6, 1\).*got a batch of shape \(2, 5, 6, 1\)"):
        train(callback, epochs=1)
    assert os.listdir(tmp_path) == []  # nothing written, before the first epoch


def test_an_unknown_target_fails_when_training_begins(tmp_path):
    with pytest.raises(ValueError, match="7"):
        train(ExplainCallback(IMAGES, targets=[7], png_dir=tmp_path), epochs=1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(every=0), ValueError, r"every must be a positive integer.*0"),
        (dict(every=1.5), ValueError, r"every must be a positive integer.*1.5"),
        (dict(batch_size=0), ValueError, r"batch_size must be a positive integer.*0"),
        (dict(method="gradcan"), ValueError, r"gradcan"),
        (dict(log_dir=None, png_dir=None), ValueError, r"TensorBoard \(log_dir=...\) and/or to PNG files \(png_dir=...\); got neither"),
        (dict(preprocess="resnet50"), TypeError, r"preprocess must be a function or None; got 'resnet50'"),
        (dict(method_options={"max_channels": 4}), TypeError, r"method 'gradcam' has no option 'max_channels'"),
    ],
)
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, error, message):
    kwargs = {"png_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=message):
        ExplainCallback(IMAGES, **kwargs)


def test_bad_images_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="images"):
        ExplainCallback(np.zeros((6, 6)), png_dir=tmp_path)
    with pytest.raises(TypeError, match="images"):
        ExplainCallback("cat.jpg", png_dir=tmp_path)
