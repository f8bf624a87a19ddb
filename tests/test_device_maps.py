"""The engine's device-resident path: ``as_tensor=True``, images and class labels as backend
tensors, and the last partial batch padded to a compiled size.

The tiny classifier's maps are known by hand (``helpers.tiny``): class 0's logit map is
``LOGIT_MAP_0``, class 1's is all zero.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from helpers.tiny import LOGIT_MAP_0, X, assert_map, make_functional
from helpers.training import small_classifier

import gradcam
from gradcam import backend
from gradcam.methods import build_engine
from gradcam.methods.base import EmptyMapWarning, padded_size
from gradcam.targets import Output

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 1, (33, 6, 6, 1)).astype(np.float32)


def numpy_of(tensor) -> np.ndarray:
    return backend.current().to_numpy(tensor)


def device_of(tensor):
    """Where a backend tensor lives, comparable between tensors."""
    if BACKEND == "jax":
        return tensor.devices()
    if BACKEND == "torch":
        return tensor.device
    return tensor.device.rpartition("/")[2]  # TensorFlow: ".../device:CPU:0"


def assert_on_the_models_device(tensor, model):
    assert keras.ops.is_tensor(tensor) and not isinstance(tensor, np.ndarray), type(tensor)
    assert device_of(tensor) == device_of(model.trainable_variables[0].value)


def count_traces(engine):
    """Record the batch size each time the engine's forward computation is traced (run as
    Python: once per trace under ``tf.function`` and ``jax.jit``, once per batch on
    PyTorch, which runs eagerly)."""
    sizes = []
    forward = engine._forward

    def counted(call, x, *args, **kwargs):
        sizes.append(x.shape[0])
        return forward(call, x, *args, **kwargs)

    engine._forward = counted
    return sizes


# -- as_tensor ---------------------------------------------------------------------------
def test_tensor_maps_are_the_hand_computed_maps_on_the_models_device():
    model = make_functional()
    cam = gradcam.GradCAM(model)
    maps = cam.heatmaps(X, targets=[0], as_tensor=True)
    assert_on_the_models_device(maps, model)
    assert keras.backend.standardize_dtype(maps.dtype) == "float32" and tuple(maps.shape) == (1, 1, 2, 2)
    assert_map(numpy_of(maps)[0, 0], LOGIT_MAP_0)


def test_a_tensor_result_equals_the_numpy_result_field_by_field():
    model = small_classifier()
    cam = gradcam.GradCAM(model)
    expected = cam.compute(IMAGES[:5], targets=[1, 0])
    result = cam.compute(IMAGES[:5], targets=[1, 0], as_tensor=True)
    for field in ("heatmaps", "targets", "scores", "probas", "outputs", "empty"):
        value = getattr(result, field)
        assert_on_the_models_device(value, model)
        np.testing.assert_allclose(numpy_of(value), getattr(expected, field), atol=1e-6, err_msg=field)
    assert expected.heatmaps.max() == pytest.approx(1.0)


def test_tensor_maps_warn_and_mark_empty_maps_as_the_numpy_path_does():
    cam = gradcam.GradCAM(make_functional())
    with pytest.warns(EmptyMapWarning, match="are all zero"):
        result = cam.compute(X, targets=[0, 1], as_tensor=True)
    np.testing.assert_array_equal(numpy_of(result.empty), [[False, True]])
    assert_map(numpy_of(result.heatmaps)[0, 1], np.zeros((2, 2), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam.compute(X, targets=[0], as_tensor=True)  # no empty map, no warning


@pytest.mark.parametrize("method", ["gradcam++", "layercam", "eigencam", "scorecam"])
def test_other_methods_give_the_same_maps_as_tensors(method):
    model = small_classifier()
    engine = build_engine(model, method)
    expected = engine.heatmaps(IMAGES[:3], targets=[0, 1])
    maps = engine.heatmaps(IMAGES[:3], targets=[0, 1], as_tensor=True)
    assert_on_the_models_device(maps, model)
    np.testing.assert_allclose(numpy_of(maps), expected, atol=1e-6)


def test_smoothing_and_target_objects_as_tensors():
    cam = gradcam.GradCAM(small_classifier())
    for kwargs in ({"aug_smooth": True}, {"eigen_smooth": True}, {"targets": Output(1)}):
        expected = cam.heatmaps(IMAGES[:3], **kwargs)
        np.testing.assert_allclose(numpy_of(cam.heatmaps(IMAGES[:3], as_tensor=True, **kwargs)), expected,
                                   atol=1e-6, err_msg=str(kwargs))
        assert expected.max() > 0.5  # not empty: the comparison means something


def test_as_tensor_must_be_a_bool():
    with pytest.raises(ValueError, match="as_tensor must be True or False; got 1"):
        gradcam.GradCAM(make_functional()).heatmaps(X, as_tensor=1)


# -- images as backend tensors -------------------------------------------------------------
def test_images_given_as_a_tensor_give_the_maps_of_the_array():
    model = small_classifier()
    cam = gradcam.GradCAM(model)
    expected = cam.heatmaps(IMAGES[:4], targets=[0])
    images = keras.ops.convert_to_tensor(IMAGES[:4])
    np.testing.assert_allclose(numpy_of(cam.heatmaps(images, targets=[0], as_tensor=True)), expected, atol=1e-6)
    np.testing.assert_allclose(cam.heatmaps(images, targets=[0]), expected, atol=1e-6)
    one = cam.heatmaps(images[0], targets=[0], as_tensor=True)  # one image (H, W, C)
    np.testing.assert_allclose(numpy_of(one), expected[:1], atol=1e-6)


def test_a_tensor_of_images_goes_through_preprocess_as_a_tensor():
    seen = []

    def preprocess(batch):
        seen.append(type(batch))
        return batch / 2

    cam = gradcam.GradCAM(small_classifier(), preprocess=preprocess)
    maps = cam.heatmaps(keras.ops.convert_to_tensor(IMAGES[:2] * 2), targets=[0], as_tensor=True)
    assert keras.ops.is_tensor(maps) and not issubclass(seen[0], np.ndarray)
    np.testing.assert_allclose(numpy_of(maps), cam.heatmaps(IMAGES[:2], targets=[0], preprocess=None), atol=1e-6)


def test_bad_image_tensors():
    cam = gradcam.GradCAM(small_classifier())
    bad = IMAGES[:3].copy()
    bad[1, 2, 3, 0] = np.nan
    for as_tensor in (True, False):
        with pytest.raises(ValueError, match="docs contains NaN or infinite values"):
            cam.heatmaps(keras.ops.convert_to_tensor(bad), as_tensor=as_tensor)
    with pytest.raises(ValueError, match=r"expects images of shape \(6, 6, 1\).*got a batch of shape \(3, 5, 6, 1\)"):
        cam.heatmaps(keras.ops.convert_to_tensor(IMAGES[:3, :5]), as_tensor=True)
    with pytest.raises(ValueError, match=r"rank 4 .* got a tensor of shape \(6, 6\)"):
        cam.heatmaps(keras.ops.convert_to_tensor(IMAGES[0, :, :, 0]), as_tensor=True)


# -- the last partial batch -------------------------------------------------------------------
def test_padded_size():
    assert padded_size(1, 32, {32}) == 32  # the last image of 33 at batch 32
    assert padded_size(5, 32, {8, 32}) == 8
    assert padded_size(8, 32, {8, 32}) == 8
    assert padded_size(5, 32, set()) == 8
    assert padded_size(20, 24, set()) == 24
    assert padded_size(1, 32, set()) == 1
    assert padded_size(3, 4, {64}) == 4  # never above the call's batch size


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
def test_33_images_at_batch_32_are_traced_once_and_the_padding_never_shows(as_tensor):
    model = small_classifier()
    cam = gradcam.GradCAM(model)
    sizes = count_traces(cam)
    result = cam.compute(IMAGES, targets=[0, 1], batch_size=32, as_tensor=as_tensor)
    maps = numpy_of(result.heatmaps) if as_tensor else result.heatmaps
    if BACKEND == "torch":
        assert sizes == [32, 1]  # eager: each batch runs as it is, nothing is traced or padded
    else:
        assert len(sizes) == 1, sizes  # one trace for both batches
        assert sizes[0] == (32 if BACKEND == "jax" else None)  # JAX: the last image padded to 32
    assert maps.shape == (33, 2, 6, 6)
    alone = gradcam.GradCAM(model).compute(IMAGES[32:], targets=[0, 1])
    np.testing.assert_allclose(maps[32:], alone.heatmaps, atol=1e-6)
    np.testing.assert_allclose(maps[:32], gradcam.GradCAM(model).heatmaps(IMAGES[:32], targets=[0, 1]), atol=1e-6)
    for field in ("scores", "targets", "outputs", "empty"):
        value = getattr(result, field)
        value = numpy_of(value) if as_tensor else value
        assert len(value) == 33, field
        np.testing.assert_allclose(value[32:], getattr(alone, field), atol=1e-6, err_msg=field)
    cam.compute(IMAGES[:7], targets=[0, 1], batch_size=32, as_tensor=as_tensor)  # padded to 32 on JAX
    cam.compute(IMAGES, targets=[0, 1], batch_size=32, as_tensor=as_tensor)
    assert len(sizes) == (5 if BACKEND == "torch" else 1), sizes


# -- class labels as backend tensors -------------------------------------------------------------
LABELS = np.array([1, 0, 0, 1, 1], np.int32)


def test_labels_as_a_tensor_explain_each_images_class():
    model = small_classifier()
    cam = gradcam.GradCAM(model)
    expected = cam.compute(IMAGES[:5], targets=LABELS[:, None])
    for labels in (LABELS, LABELS[:, None]):
        result = cam.compute(IMAGES[:5], targets=keras.ops.convert_to_tensor(labels), as_tensor=True)
        np.testing.assert_allclose(numpy_of(result.heatmaps), expected.heatmaps, atol=1e-6)
        np.testing.assert_array_equal(numpy_of(result.targets), LABELS[:, None])
        np.testing.assert_allclose(cam.heatmaps(IMAGES[:5], keras.ops.convert_to_tensor(labels)), expected.heatmaps,
                                   atol=1e-6)
    assert not np.allclose(expected.heatmaps[0], expected.heatmaps[1])  # two classes, two maps
    top = cam.compute(IMAGES[:5], targets=keras.ops.convert_to_tensor(np.full(5, -1, np.int32)))
    np.testing.assert_array_equal(top.targets[:, 0], np.argmax(top.outputs, axis=1))  # -1: the top prediction


def test_bad_label_tensors():
    cam = gradcam.GradCAM(small_classifier())
    with pytest.raises(ValueError, match=r"Label 2 is out of range: the model has 2 classes \(0\.\.1; -1 for the top"):
        cam.heatmaps(IMAGES[:3], keras.ops.convert_to_tensor(np.array([0, 2, 1], np.int32)), as_tensor=True)
    with pytest.raises(ValueError, match=r"Label -3 is out of range"):
        gradcam.maps(small_classifier(), IMAGES[:3], keras.ops.convert_to_tensor(np.array([0, -3, 1], np.int32)))
    with pytest.raises(ValueError, match=r"must have shape \(3,\) \(one per image\) or \(3, K\) for 3 images; got "
                                         r"shape \(4,\)"):
        cam.heatmaps(IMAGES[:3], keras.ops.convert_to_tensor(np.zeros(4, np.int32)))
    with pytest.raises(TypeError, match="must be integers; got a tensor of dtype float32"):
        cam.heatmaps(IMAGES[:3], keras.ops.convert_to_tensor(np.zeros(3, np.float32)))


def test_labels_as_a_tensor_inside_a_compiled_training_step():
    """The labels are an argument of the compiled step (traced): one trace serves labels of
    any value, and the maps and their loss's gradients are those of the same labels given
    eagerly as numpy targets."""
    model = small_classifier()
    variables = model.trainable_variables[:3]  # not the Dense bias: the maps do not depend on it
    mask = np.linspace(0, 1, 36, dtype=np.float32).reshape(6, 6)
    traces = []

    def loss_of_maps(maps):
        return keras.ops.sum(keras.ops.multiply(maps, mask))

    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(autograph=False)
        def step(x, labels):
            traces.append(1)
            with tf.GradientTape() as tape:
                maps = gradcam.maps(model, x, labels)
                loss = loss_of_maps(maps)
            return maps, tape.gradient(loss, [v.value for v in variables])
    elif BACKEND == "jax":
        import jax

        def loss_and_maps(values, x, labels):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                maps = gradcam.maps(model, x, labels)
            return loss_of_maps(maps), maps

        @jax.jit
        def step(x, labels):
            traces.append(1)
            (_, maps), gradients = jax.value_and_grad(loss_and_maps, has_aux=True)(
                [v.value for v in variables], x, labels)
            return maps, gradients
    else:
        import torch

        def step(x, labels):  # PyTorch runs a training step eagerly
            maps = gradcam.maps(model, x, labels)
            return maps, torch.autograd.grad(loss_of_maps(maps), [v.value for v in variables])

    x = keras.ops.convert_to_tensor(IMAGES[:5])
    for labels in (LABELS, 1 - LABELS):
        maps, gradients = step(x, keras.ops.convert_to_tensor(labels))
        expected = gradcam.GradCAM(model).heatmaps(IMAGES[:5], targets=labels[:, None])
        np.testing.assert_allclose(numpy_of(maps), expected, atol=1e-5)
        eager_maps = gradcam.maps(model, IMAGES[:5], labels[:, None])
        np.testing.assert_allclose(numpy_of(eager_maps), expected, atol=1e-5)
        assert max(np.abs(numpy_of(g)).max() for g in gradients) > 1e-3
    assert len(traces) == (1 if BACKEND != "torch" else 0)
