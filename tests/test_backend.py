"""The backend adapters: compile, the gradients with respect to the zero probe and to tapped
tensors, numpy.

Run once per backend: ``KERAS_BACKEND=jax pytest tests/test_backend.py`` (likewise
``torch`` and ``tensorflow``).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from helpers.tiny import DENSE_KERNEL, LOGIT_MAP_0, PROBAS, X, make_functional

from gradcam import backend, samples
from gradcam.image import image_from_path
from gradcam.methods import GradCAM

BACKEND = keras.backend.backend()
x_2x2 = np.array([[1, 2], [3, 4]], np.float32)
W1 = np.ones((2, 2), np.float32)
W2 = np.array([[1, 0], [0, -1]], np.float32)


def probe_function(adapter, count, connected=True):
    """A computation whose gradients are known: ``A = 3x``, totals
    ``[sum(W1 (A + p)), sum(W2 (A + p)), sum((A + p)^2)][:count]``, so the gradients at
    ``p = 0`` are ``W1``, ``W2`` and ``2 A = 6x``."""

    def fn(call, x):
        w1, w2 = ops.convert_to_tensor(W1), ops.convert_to_tensor(W2)

        def forward(probe):
            activation = x * 3
            out = activation + probe(activation)
            if not connected:
                out = activation
            totals = ops.stack([ops.sum(out * w1), ops.sum(out * w2), ops.sum(out * out)])
            return totals[:count], (activation, totals)

        gradients, (activation, totals) = adapter.probe_gradients(forward, count > 1)
        return gradients, activation, totals

    return fn


def test_current_is_the_keras_backend():
    assert backend.current().__name__ == f"gradcam.backend.{BACKEND}"


def test_a_backend_that_cannot_differentiate_is_refused(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(RuntimeError, match="Keras runs on 'numpy'. Set the KERAS_BACKEND"):
        backend.current()


@pytest.mark.parametrize("count", [1, 2, 3])
def test_probe_gradients(tiny, count):
    adapter = backend.current()
    run = adapter.compile(tiny, probe_function(adapter, count), [((2, 2), "float32")])
    gradients, activation, totals = run(x_2x2)
    expected = np.stack([W1, W2, 6 * x_2x2])[:count]
    np.testing.assert_allclose(adapter.to_numpy(totals), [30, -9, 270], atol=1e-5)
    np.testing.assert_allclose(adapter.to_numpy(gradients), expected, atol=1e-6)
    np.testing.assert_allclose(adapter.to_numpy(activation), 3 * x_2x2, atol=1e-6)


def test_probe_gradients_of_totals_that_ignore_the_probe(tiny):
    adapter = backend.current()
    run = adapter.compile(tiny, probe_function(adapter, 1, connected=False), [((2, 2), "float32")])
    gradients, _, _ = run(x_2x2)
    if BACKEND == "jax":  # JAX cannot tell: the gradient is zero
        np.testing.assert_array_equal(adapter.to_numpy(gradients), np.zeros((1, 2, 2), np.float32))
    else:
        assert gradients is None


def tap_function(adapter, count, differentiable=False):
    """A computation with three taps whose gradients are known: ``A = 3x``, ``B = A^2``
    and ``x + 1`` (unused); totals ``[sum(W1 B), sum(W2 A), sum(B)][:count]``, so the
    gradients at ``A`` are ``2 A W1``, ``W2`` and ``2 A`` (through ``B``), at ``B``
    ``W1``, ``0`` and ``1``, and zeros at ``x + 1``."""

    def fn(call, x):
        w1, w2 = ops.convert_to_tensor(W1), ops.convert_to_tensor(W2)

        def forward(tap):
            a = tap(x * 3)
            b = tap(a * a)
            tap(x + 1)
            totals = ops.stack([ops.sum(b * w1), ops.sum(a * w2), ops.sum(b)])
            return totals[:count], totals

        return adapter.tap_gradients(forward, count > 1, differentiable=differentiable)

    return fn


@pytest.mark.parametrize("count", [1, 2, 3])
def test_tap_gradients(tiny, count):
    adapter = backend.current()
    run = adapter.compile(tiny, tap_function(adapter, count), [((2, 2), "float32")])
    gradients, totals = run(x_2x2)
    a = 3 * x_2x2
    expected = [np.stack([2 * a * W1, W2, 2 * a])[:count], np.stack([W1, 0 * W1, 1 + 0 * W1])[:count],
                np.zeros((count, 2, 2))]
    np.testing.assert_allclose(adapter.to_numpy(totals), [270, -9, 270], atol=1e-4)
    assert len(gradients) == 3
    for gradient, wanted in zip(gradients, expected):
        np.testing.assert_allclose(adapter.to_numpy(gradient), wanted, atol=1e-5)


def test_tap_gradients_to_be_differentiated_again():
    adapter = backend.current()
    gradients, _ = tap_function(adapter, 2, differentiable=True)(None, ops.convert_to_tensor(x_2x2))
    np.testing.assert_allclose(adapter.to_numpy(gradients[0]), np.stack([6 * x_2x2 * W1, W2]), atol=1e-5)
    np.testing.assert_allclose(adapter.to_numpy(gradients[1]), np.stack([W1, 0 * W1]), atol=1e-6)


def test_tap_gradients_of_half_precision_tensors(tiny):
    adapter = backend.current()

    def fn(call, x):
        def forward(tap):
            half = tap(ops.cast(x * 3, "float16"))
            return ops.stack([ops.sum(ops.cast(half, "float32") * ops.convert_to_tensor(W1))]), half

        return adapter.tap_gradients(forward, False)

    (gradient,), _ = adapter.compile(tiny, fn, [((2, 2), "float32")])(x_2x2)
    np.testing.assert_allclose(adapter.to_numpy(ops.cast(gradient, "float32")), W1[None])


def test_compiled_functions_read_the_current_weights():
    model = make_functional()
    adapter = backend.current()
    run = adapter.compile(model, lambda call, x: call(x), [((None, 4, 4, 1), "float32")])
    np.testing.assert_allclose(adapter.to_numpy(run(X)), PROBAS[None], atol=1e-6)
    # Swap the classes' columns: the compiled function must see the new weights.
    model.get_layer("predictions").set_weights([DENSE_KERNEL[:, ::-1]])
    np.testing.assert_allclose(adapter.to_numpy(run(X)), PROBAS[None, ::-1], atol=1e-6)


def test_compiled_functions_hold_the_model_weakly():
    model = make_functional()
    adapter = backend.current()
    run = adapter.compile(model, lambda call, x: call(x), [((None, 4, 4, 1), "float32")])
    run(X)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's gradient graph and grad mode")
@pytest.mark.parametrize("grad_enabled", [True, False])
def test_torch_keeps_no_graph_and_restores_grad_mode(tiny, grad_enabled):
    import torch

    adapter = backend.current()
    run = adapter.compile(tiny, probe_function(adapter, 3), None)
    with torch.set_grad_enabled(grad_enabled):
        gradients, activation, totals = run(x_2x2)
        maps = GradCAM(tiny).heatmaps(X)
        assert torch.is_grad_enabled() is grad_enabled
    assert not gradients.requires_grad and gradients.grad_fn is None
    assert not activation.requires_grad and activation.grad_fn is None
    assert not totals.requires_grad and totals.grad_fn is None  # computed after the probe
    assert all(variable.value.grad is None for variable in tiny.weights)
    np.testing.assert_allclose(maps[0, 0], LOGIT_MAP_0, atol=1e-5)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow is the backend here")
def test_other_backends_never_import_tensorflow():
    # A fresh process: the test session itself may have imported TensorFlow elsewhere.
    script = textwrap.dedent(
        """
        import sys
        import keras
        import numpy as np
        from gradcam.methods import METHODS

        inputs = keras.Input((4, 4, 1))
        x = keras.layers.Conv2D(2, 2, strides=2, activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
        images = np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1)
        for method in METHODS.values():
            method(model).heatmaps(images, targets=[0, 1])
        print(keras.backend.backend(), "tensorflow" in sys.modules)
        """
    )
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [BACKEND, "False"]


def lite0_maps() -> dict:
    """EfficientNet-Lite0's Grad-CAM maps of the sample photos: the top class and two
    named classes, at the automatic layer and at an earlier one.

    The earlier one is block6d_add. At block5c_add, the backends' maps of
    cat_and_coffee differ by up to 1.7e-3 (TensorFlow, JAX and PyTorch alike, pairwise):
    their activations agree to 1.5e-6, but one gradient element differs by 1.7e-2, a
    ReLU6 downstream whose input lies within float32 rounding of its threshold."""
    from gradcam.models import efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    docs = np.concatenate([image_from_path(samples.path(name)) for name in samples.names()])
    x = efficientnet_lite.preprocess_input(docs)
    maps = {}
    for layer in (None, "block6d_add"):
        cam = GradCAM(model, layer=layer)
        top = cam.compute(x)
        maps[f"{layer}-top"], maps[f"{layer}-targets"] = top.heatmaps, top.targets
        maps[f"{layer}-named"] = cam.heatmaps(x, targets=["tiger cat", "espresso"])
    return maps


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow gives the reference")
def test_same_maps_as_tensorflow(tmp_path):
    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
        "from test_backend import lite0_maps; np.savez(sys.argv[2], **lite0_maps())"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    reference_file = tmp_path / "tensorflow.npz"
    args = [sys.executable, "-c", script, str(Path(__file__).parent), str(reference_file)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    reference = np.load(reference_file)
    maps = lite0_maps()
    assert sorted(maps) == sorted(reference.files)
    assert maps["None-top"].shape == (len(samples.names()), 1, 7, 7)
    assert maps["block6d_add-named"].shape == (len(samples.names()), 2, 7, 7)
    for key, value in maps.items():
        np.testing.assert_allclose(value, reference[key], atol=1e-3, rtol=0, err_msg=key)


def hessian_function(adapter, count):
    """A computation whose gradients and Hessian-vector products are known: ``A = 3x``,
    totals ``[sum((A + p)^3) / 3, sum(W1 (A + p)), sum((A + p)^2)][:count]``: at ``p = 0``
    the gradients are ``A^2``, ``W1`` and ``2 A``, the Hessians diagonal, ``2 A``, 0 and 2,
    so the products with ``A`` are ``2 A^2``, 0 and ``2 A``."""

    def fn(call, x):
        w1 = ops.convert_to_tensor(W1)

        def forward(probe):
            activation = x * 3
            out = activation + probe(activation)
            totals = ops.stack([ops.sum(out * out * out) / 3, ops.sum(out * w1), ops.sum(out * out)])
            return totals[:count], (activation, totals)

        gradients, products, (activation, totals) = adapter.probe_hessian_products(forward, count > 1)
        return gradients, products, totals

    return fn


@pytest.mark.parametrize("count", [1, 2, 3])
def test_probe_hessian_products(tiny, count):
    adapter = backend.current()
    run = adapter.compile(tiny, hessian_function(adapter, count), [((2, 2), "float32")])
    gradients, products, totals = run(x_2x2)
    a = 3 * x_2x2
    np.testing.assert_allclose(adapter.to_numpy(totals), [(a**3).sum() / 3, 30, 270], rtol=1e-6)
    np.testing.assert_allclose(adapter.to_numpy(gradients), np.stack([a * a, W1, 2 * a])[:count], atol=1e-5)
    np.testing.assert_allclose(adapter.to_numpy(products), np.stack([2 * a * a, 0 * a, 2 * a])[:count], atol=1e-5)


def test_probe_hessian_products_of_a_linear_score(tiny):
    # sum(W1 (A + p)): the gradient W1 does not depend on the probe: products of zero.
    adapter = backend.current()

    def fn(call, x):
        def forward(probe):
            out = x + probe(x)
            return ops.sum(out * ops.convert_to_tensor(W1))[None], ()

        gradients, products, _ = adapter.probe_hessian_products(forward, False)
        return gradients, products

    gradients, products = adapter.compile(tiny, fn, [((2, 2), "float32")])(x_2x2)
    np.testing.assert_allclose(adapter.to_numpy(gradients), W1[None], atol=1e-6)
    np.testing.assert_array_equal(adapter.to_numpy(products), np.zeros((1, 2, 2), np.float32))
