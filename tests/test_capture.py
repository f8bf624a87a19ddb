"""Capturing layer outputs: the model is never changed, for any thread, and threads mix."""

import threading
import warnings

import keras
import numpy as np
import pytest

import gradcam
from conftest import X, make_functional, make_subclassed
from gradcam.capture import model_info, record_outputs
from gradcam.layers import iter_layers

THREADS = 4
CALLS = 25


def make_model():
    """A fresh model with fixed weights: input 16x16x3, two convolutions, 3 classes."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name="threads")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def instance_attributes(model):
    return {ref.path: set(vars(ref.layer)) for ref in iter_layers(model)}


def run_threads(*functions):
    """Start every function in its own thread at the same moment; return their errors."""
    barrier = threading.Barrier(len(functions))
    errors = []

    def run(function):
        try:
            barrier.wait()
            function()
        except BaseException as error:  # collected and asserted on by the test
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(f,)) for f in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_explanations_and_plain_calls_on_a_fresh_model():
    docs = np.random.default_rng(1).uniform(0, 255, (THREADS, 16, 16, 3)).astype(np.float32)
    plan = [  # (image, layer, targets) per call, different in each thread
        [(t, ("conv2", "conv1")[(i // 2) % 2], None if (i + t) % 2 else [0, 1, 2]) for i in range(CALLS)]
        for t in range(THREADS)
    ]
    reference = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty map is no concern here
        expected = {
            (n, layer, None if targets is None else tuple(targets)):
                gradcam.explain_prediction(reference, docs[n], layer=layer, targets=targets)
            for calls in plan for n, layer, targets in calls
        }
    expected_outputs = reference.predict(docs, verbose=0)

    model = make_model()
    attributes = instance_attributes(model)
    mismatches = []

    def explain(calls):
        for n, layer, targets in calls:
            expl = gradcam.explain_prediction(model, docs[n], layer=layer, targets=targets)
            want = expected[n, layer, None if targets is None else tuple(targets)]
            got = [(t.target, t.heatmap.tolist()) for t in expl.targets]
            if got != [(t.target, t.heatmap.tolist()) for t in want.targets]:
                mismatches.append((n, layer, targets))

    def plain():
        for _ in range(CALLS):
            outputs = np.asarray(model(docs, training=False))
            if not np.allclose(outputs, expected_outputs, atol=1e-6):
                mismatches.append("model(x)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        errors = run_threads(*[lambda calls=calls: explain(calls) for calls in plan], plain)
    assert errors == []
    assert mismatches == []
    assert instance_attributes(model) == attributes
    np.testing.assert_allclose(np.asarray(model(docs)), expected_outputs, atol=1e-6)
    np.testing.assert_allclose(model.predict(docs, verbose=0), expected_outputs, atol=1e-6)


def test_recording_sees_only_its_own_thread():
    model = make_functional(name="recorded")
    conv = model.get_layer("conv")
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        inside.wait()
        seen["other"] = np.asarray(model(X))  # while the recorder is installed
        outside.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with record_outputs([conv]) as recording:
        inside.set()
        outside.wait()
        model(X)
    thread.join()
    assert [layer.name for layer, _ in recording.calls] == ["conv"]  # this thread's call only
    np.testing.assert_allclose(seen["other"], np.asarray(model(X)), atol=1e-6)
    assert "call" not in vars(conv)


def test_recording_restores_the_layer_on_error():
    model = make_functional(name="failing")
    conv = model.get_layer("conv")
    with pytest.raises(RuntimeError, match="inside"):
        with record_outputs([conv]):
            raise RuntimeError("inside")
    assert "call" not in vars(conv)


def test_model_info_of_each_kind(tiny):
    info = model_info(tiny)
    assert (info.input_shape, info.input_dtype) == ((None, 4, 4, 1), "float32")
    assert (info.num_classes, info.softmax) == (2, True)
    assert info.layer_shapes is None
    with pytest.raises(TypeError, match="model must be a keras.Model; got str"):
        model_info("resnet50")
    subclassed = make_subclassed()
    info = model_info(subclassed)
    assert (info.input_shape, info.num_classes, info.softmax) == ((None, 4, 4, 1), 2, True)
    assert [(layer.name, shape) for layer, shape in info.layer_shapes.items()] == [
        ("early", (None, 4, 4, 1)), ("conv", (None, 2, 2, 2)),
        ("pool", (None, 2)), ("predictions", (None, 2)),
    ]
