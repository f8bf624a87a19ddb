"""Ray's test helpers."""

import contextlib

import keras
import numpy as np
import ray

from helpers.tiny import CONV_KERNEL, DENSE_KERNEL


def tiny_rgb(activation="softmax"):
    """the tiny classifier (helpers/tiny.py) on the red channel of a 4x4 RGB image."""
    inputs = keras.Input((4, 4, 3), name="image")
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(conv(inputs))
    dense = keras.layers.Dense(2, use_bias=False, activation=activation, name="predictions")
    model = keras.Model(inputs, dense(x), name="tiny_rgb")
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[:, :, :1, :] = CONV_KERNEL
    conv.set_weights([kernel])
    dense.set_weights([DENSE_KERNEL])
    return model


def on_red(model):
    """A tiny model of helpers/target_models.py (4x4 one-channel input) on the red channel of
    a 4x4 RGB image: the same layers and weights, its first convolution's kernel zero on
    green and blue (the Explainer gives models RGB images)."""
    rgb = keras.models.clone_model(model, input_tensors=keras.Input((4, 4, 3), name="image"))
    for layer in rgb.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name == "conv":
            kernel = np.zeros((*weights[0].shape[:2], 3, weights[0].shape[3]), np.float32)
            kernel[:, :, :1] = weights[0]
            weights = [kernel, *weights[1:]]
        layer.set_weights(weights)
    return rgb


def save_tiny(folder) -> str:
    """Save :func:`tiny_rgb` as ``folder/tiny.keras``; its path."""
    path = folder / "tiny.keras"
    tiny_rgb().save(path)
    return str(path)


@contextlib.contextmanager
def local_ray(*by_value):
    """Ray on two CPUs, as on this machine: two actors and the reading tasks must fit. The
    modules ``by_value`` (a test file's, the helpers) travel to the workers pickled by
    value: the workers cannot import the tests' modules."""
    for module in by_value:
        ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
