"""The capture: the model's description, and record, probe and replace of a layer's
output, thread by thread, on every backend; the model is never changed, for any thread.

Run once per backend: ``KERAS_BACKEND=jax pytest tests/test_capture.py`` (likewise
``torch`` and ``tensorflow``).
"""

from __future__ import annotations

import threading
import time
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from helpers.tiny import CONV_KERNEL, DENSE_KERNEL, LOGITS, PROBAS, X, make_functional, make_nested, make_subclassed

import gradcam
import gradcam.methods.base
from gradcam import backend
from gradcam.layers import iter_layers
from gradcam.methods import GradCAM
from gradcam.capture import capture, find_softmax, model_info

A0 = np.array([[10, 18], [42, 50]], np.float32)  # the tiny model's conv output, channel 0
A1 = np.full((2, 2), -5, np.float32)  # channel 1
ACTIVATIONS = np.stack([A0, A1], axis=-1)[None]  # (1, 2, 2, 2)


def numpy(tensor):
    return backend.current().to_numpy(tensor)


def attributes(model):
    """The instance attributes of every layer of ``model`` (and of the model)."""
    return {ref.path: sorted(vars(ref.layer)) for ref in iter_layers(model)} | {"": sorted(vars(model))}


def test_record_reads_the_activations_and_the_logits(tiny):
    conv = tiny.get_layer("conv")
    with capture(conv, find_softmax(tiny)) as recording:
        outputs = tiny(X)
    assert len(recording.activations) == 1 and len(recording.logits) == 1
    np.testing.assert_allclose(numpy(recording.activations[0]), ACTIVATIONS, atol=1e-5)
    np.testing.assert_allclose(numpy(recording.logits[0]), LOGITS[None], atol=1e-5)
    np.testing.assert_allclose(numpy(outputs), PROBAS[None], atol=1e-6)


def test_softmax_layer_input_is_recorded():
    model = make_functional(activation=None)
    softmax = keras.layers.Softmax(name="softmax")
    model = keras.Model(model.inputs[0], softmax(model.outputs[0]))
    assert find_softmax(model) == (softmax, "call")
    with capture(None, find_softmax(model)) as recording:
        model(X)
    np.testing.assert_allclose(numpy(recording.logits[0]), LOGITS[None], atol=1e-5)


def test_probe_is_added_to_the_output(tiny):
    # A probe of ones adds 1 to both channels' means: z = LOGITS + column sums of W.
    with capture(tiny.get_layer("conv"), find_softmax(tiny), probe=ops.ones_like) as recording:
        tiny(X)
    np.testing.assert_allclose(numpy(recording.activations[0]), ACTIVATIONS, atol=1e-5)
    np.testing.assert_allclose(numpy(recording.logits[0]), [[2.3, -4.3]], atol=1e-5)


def test_replace_runs_the_rest_of_the_model_on_a_batch(tiny):
    # Channel 0 off: z = 0.2 * mean(A1) * [1, 1.5] = [-1, -1.5]; channel 1 off:
    # z = mean(A0) * [0.1, -0.1] = [3, -3]. One input image, two replaced activations.
    ablated = ACTIVATIONS * np.array([[0, 1], [1, 0]], np.float32)[:, None, None, :]
    with capture(tiny.get_layer("conv"), find_softmax(tiny), replace=ops.convert_to_tensor(ablated)) as recording:
        outputs = tiny(X)
    assert tuple(outputs.shape) == (2, 2)
    np.testing.assert_allclose(numpy(recording.logits[0]), [[-1, -1.5], [3, -3]], atol=1e-5)


def test_replace_broadcasts_a_skip_connection_around_the_layer():
    # image -> conv (A) -> conv2 (1x1, identity: A) ; add(conv2, conv) = 2A -> pool -> dense.
    inputs = keras.Input((4, 4, 1))
    a = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")(inputs)
    b = keras.layers.Conv2D(2, 1, use_bias=False, name="conv2")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([b, a]))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="predictions")(x))
    model.get_layer("conv").set_weights([CONV_KERNEL])
    model.get_layer("conv2").set_weights([np.eye(2, dtype=np.float32)[None, None]])
    model.get_layer("predictions").set_weights([DENSE_KERNEL])
    # conv2's channel 0 off: means [30, -10], z0 = 3 - 2 = 1; channel 1 off: [60, -5], z0 = 5.
    ablated = ACTIVATIONS * np.array([[0, 1], [1, 0]], np.float32)[:, None, None, :]
    with capture(model.get_layer("conv2"), replace=ops.convert_to_tensor(ablated)):
        outputs = numpy(model(X))
    np.testing.assert_allclose(outputs[:, 0], [1, 5], atol=1e-5)


def test_input_of_a_layer_is_recorded_probed_and_replaced(tiny):
    # The pooling's input is the conv's output: the same tensor, read on the other side.
    pool = tiny.get_layer("pool")
    with capture(pool, find_softmax(tiny), of_input=True) as recording:
        tiny(X)
    np.testing.assert_allclose(numpy(recording.activations[0]), ACTIVATIONS, atol=1e-5)
    np.testing.assert_allclose(numpy(recording.logits[0]), LOGITS[None], atol=1e-5)
    with capture(pool, find_softmax(tiny), probe=ops.ones_like, of_input=True) as recording:
        tiny(X)
    np.testing.assert_allclose(numpy(recording.logits[0]), [[2.3, -4.3]], atol=1e-5)
    ablated = ACTIVATIONS * np.array([[0, 1], [1, 0]], np.float32)[:, None, None, :]
    with capture(pool, find_softmax(tiny), replace=ops.convert_to_tensor(ablated), of_input=True) as recording:
        tiny(X)
    np.testing.assert_allclose(numpy(recording.logits[0]), [[-1, -1.5], [3, -3]], atol=1e-5)
    assert "call" not in vars(pool)


def test_replace_by_a_function_of_the_layers_own_output(tiny):
    # The function sees the conv's own output and returns a batch of two: A and 2A.
    def twice(own):
        return ops.concatenate([own, own * 2], axis=0)

    with capture(tiny.get_layer("conv"), find_softmax(tiny), replace=twice) as recording:
        tiny(X)
    np.testing.assert_allclose(numpy(recording.logits[0]), [LOGITS, LOGITS * 2], atol=1e-5)


def test_probe_and_replace_together_is_an_error(tiny):
    with pytest.raises(ValueError, match="a probe or a replacement, not both"):
        with capture(tiny.get_layer("conv"), probe=ops.zeros_like, replace=ops.zeros((1, 2, 2, 2))):
            pass


def test_the_model_is_restored_even_on_error():
    model = make_functional()
    before = attributes(model)
    dense = model.get_layer("predictions")
    activation = dense.activation
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model.get_layer("conv"), find_softmax(model), probe=ops.zeros_like):
            assert "call" in vars(model.get_layer("conv"))
            raise RuntimeError("boom")
    assert attributes(model) == before
    assert dense.activation is activation
    np.testing.assert_allclose(numpy(model(X)), PROBAS[None], atol=1e-6)


def test_other_threads_go_straight_through(tiny):
    conv = tiny.get_layer("conv")
    seen = {}

    def plain_call():
        seen["outputs"] = numpy(tiny(X))

    with capture(conv, find_softmax(tiny), probe=ops.ones_like) as recording:
        other = threading.Thread(target=plain_call)
        other.start()
        other.join()
        assert recording.activations == [] and recording.logits == []
        tiny(X)
    # The other thread got the plain output: no probe added, nothing recorded for it.
    np.testing.assert_allclose(seen["outputs"], PROBAS[None], atol=1e-6)
    assert len(recording.activations) == 1


def test_two_captures_of_a_shared_layer_never_stack():
    # The base model's conv is also a layer of the wrapper: captures through either
    # model wrap the same layer object, and must take turns.
    wrapper = make_nested()
    base = wrapper.get_layer("base")
    conv = base.get_layer("conv")
    before = attributes(wrapper)
    first_inside, second_started, second_done = threading.Event(), threading.Event(), threading.Event()

    def second():
        second_started.set()
        with capture(conv):
            base(X)
        second_done.set()

    with capture(conv, find_softmax(wrapper)):
        first_inside.set()
        other = threading.Thread(target=second)
        other.start()
        second_started.wait()
        time.sleep(0.2)  # room for the second capture to (wrongly) wrap the layer now
        assert not second_done.is_set()
    other.join()
    assert second_done.is_set()
    assert attributes(wrapper) == before


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="PyTorch does not trace: it captures at every call")
def test_compiled_calls_never_patch_the_model(monkeypatch):
    cam = GradCAM(make_functional())
    first = cam.heatmaps(X)

    def no_capture(*args, **kwargs):
        raise AssertionError("the model was patched again")

    monkeypatch.setattr(gradcam.methods.base, "capture", no_capture)
    np.testing.assert_array_equal(cam.heatmaps(X), first)
    with pytest.raises(AssertionError, match="patched again"):
        GradCAM(make_functional()).heatmaps(X)  # a new engine traces, and captures


def test_threads_mixing_targets_on_a_fresh_model():
    """4 threads x 12 calls (1 and 3 targets) through engines of a fresh model, and a
    thread calling the model itself, all at once."""

    def build():
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = keras.layers.Conv2D(6, 3, padding="same", name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
        rng = np.random.default_rng(1)
        for variable in model.weights:
            variable.assign(rng.normal(size=variable.shape).astype(np.float32))
        return model

    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    # Single-threaded references, from an engine of a twin (same seed, same weights).
    reference = GradCAM(build())
    model = build()
    expected = {1: reference.heatmaps(images), 3: reference.heatmaps(images, targets=[0, 1, 2])}
    plain = numpy(model(images))
    before = attributes(model)
    shared = GradCAM(model)  # fresh: traced by the threads, concurrently
    errors, results = [], []
    start = threading.Barrier(5)

    def explain(worker):
        try:
            own = GradCAM(model)
            start.wait()
            for call in range(12):
                cam = shared if call % 2 else own
                targets = [0, 1, 2] if (call + worker) % 3 == 0 else None
                maps = cam.heatmaps(images, targets=targets)
                results.append((maps.shape[1], maps))
        except Exception as error:  # reported below
            errors.append(error)

    def call_model():
        try:
            start.wait()
            for _ in range(24):
                results.append(("plain", numpy(model(images))))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=explain, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=call_model))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 4 * 12 + 24
    for kind, value in results:
        np.testing.assert_allclose(value, plain if kind == "plain" else expected[kind], atol=1e-5)
    assert attributes(model) == before
    np.testing.assert_allclose(model.predict(images, verbose=0), plain, atol=1e-5)


# -- explanations from several threads at once --------------------------------------------
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
    before = attributes(model)
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
            outputs = numpy(model(docs, training=False))
            if not np.allclose(outputs, expected_outputs, atol=1e-6):
                mismatches.append("model(x)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        errors = run_threads(*[lambda calls=calls: explain(calls) for calls in plan], plain)
    assert errors == []
    assert mismatches == []
    assert attributes(model) == before
    np.testing.assert_allclose(numpy(model(docs)), expected_outputs, atol=1e-6)
    np.testing.assert_allclose(model.predict(docs, verbose=0), expected_outputs, atol=1e-6)


def test_model_info_of_each_kind(tiny):
    info = model_info(tiny)
    assert (info.input_shape, info.input_dtype) == ((None, 4, 4, 1), "float32")
    assert (info.num_classes, info.softmax) == (2, (tiny.get_layer("predictions"), "activation"))
    assert info.layer_shapes is None
    with pytest.raises(TypeError, match="model must be a keras.Model; got str"):
        model_info("resnet50")
    subclassed = make_subclassed()
    info = model_info(subclassed)
    assert (info.input_shape, info.num_classes) == ((None, 4, 4, 1), 2)
    assert info.softmax == (subclassed.predictions, "activation")  # found by the trace
    assert [(layer.name, shape) for layer, shape in info.layer_shapes.items()] == [
        ("early", (None, 4, 4, 1)), ("conv", (None, 2, 2, 2)),
        ("pool", (None, 2)), ("predictions", (None, 2)),
    ]


class AnySize(keras.Model):
    """A subclassed model of images of any size, ending in a Softmax layer, a layer
    called twice (``twice``) and a softmax that is not its last step (``inner``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.twice = keras.layers.Conv2D(3, 3, padding="same", name="twice")
        self.inner = keras.layers.Softmax(name="inner")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.dense = keras.layers.Dense(5, name="dense")
        self.softmax = keras.layers.Softmax(name="softmax")

    def call(self, inputs):
        x = self.inner(self.twice(self.twice(inputs)))
        return self.softmax(self.dense(self.pool(x)))


def test_model_info_of_a_subclassed_model_of_any_size():
    model = AnySize(name="any_size")
    model(np.zeros((2, 8, 6, 3), np.float32))
    model.build_from_config({"input_shape": (None, None, None, 3)})  # as if built for any size
    info = model_info(model)
    assert (info.input_shape, info.num_classes) == ((None, None, None, 3), 5)
    assert info.softmax == (model.softmax, "call")
    # the layer called twice has no single shape; the others keep the sizes they do not know
    assert [(layer.name, shape) for layer, shape in info.layer_shapes.items()] == [
        ("inner", (None, None, None, 3)), ("pool", (None, 3)), ("dense", (None, 5)), ("softmax", (None, 5)),
    ]
