"""The engine's numpy path against its tensor path (``as_tensor=True``) and the floor.

Run once per backend (the backend is chosen per process, before Keras is imported)::

    KERAS_BACKEND=jax python benchmarks/device.py
    KERAS_BACKEND=tensorflow python benchmarks/device.py
    KERAS_BACKEND=torch python benchmarks/device.py

On a machine with a GPU, the check of the tensor path against the model's own compiled
forward+backward is (ResNet50, batch 32, JAX)::

    KERAS_BACKEND=jax python benchmarks/device.py --models resnet50 --batches 1 32

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded), its automatic layer and each batch size, in one process:

* the floor: the model's own compiled forward to the layer and forward+backward from it
  for one class score (:func:`backends.make_floor`), on images already on the device;
* numpy: ``GradCAM(model).heatmaps(x)`` on a numpy batch, maps returned as numpy (the
  default path: the images go to the device, the maps come back);
* tensor: ``GradCAM(model).heatmaps(t, as_tensor=True)`` on the same images as a backend
  tensor on the device, the maps left there.

Every call waits for its result (JAX's ``block_until_ready``; elsewhere one element of
the result is read, which waits for the device). The calls are interleaved, each round
calling every row once in a rotated order; a ratio is the median over rounds of the
ratio of two rows' times in the same round. The table prints tensor / numpy (the CPU
target: at most 1.05x) and tensor / floor (the GPU target: at most 1.2x at batch 32).
Last, the number of times the engine's forward computation is traced for a run of
``batch + 1`` images at batch ``batch`` on a fresh engine (one: the last image is padded
to the compiled batch on JAX; TensorFlow's trace takes any batch size; PyTorch runs
eagerly, once per batch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from backends import BACKEND, MODELS, Row, first_call, make_floor, time_rows  # noqa: E402

import gradcam  # noqa: E402
from gradcam import backend as adapters  # noqa: E402
from gradcam.layers import find_layer  # noqa: E402

warnings.filterwarnings("ignore", category=gradcam.EmptyMapWarning)  # random weights


def wait(value):
    """Wait until the device has computed ``value`` (a backend tensor)."""
    if hasattr(value, "block_until_ready"):
        value.block_until_ready()
    else:
        adapters.current().to_numpy(keras.ops.reshape(value, (-1,))[:1])


def traces_of_a_run(model, batch):
    """How many times a fresh engine's forward computation runs as Python (is traced;
    on PyTorch: runs) for ``batch + 1`` images at batch ``batch``."""
    cam = gradcam.GradCAM(model)
    forward, count = cam._forward, []

    def counted(*args, **kwargs):
        count.append(1)
        return forward(*args, **kwargs)

    cam._forward = counted
    images = np.random.default_rng(1).uniform(-1, 1, (batch + 1,) + tuple(model.inputs[0].shape[1:]))
    cam.heatmaps(images.astype(np.float32), batch_size=batch, as_tensor=True)
    return len(count)


def bench(key, batches, repeats):
    title, builder, _ = MODELS[key]
    model = builder(weights=None)
    floor = make_floor(model, find_layer(model).layer)
    cam = gradcam.GradCAM(model)
    rng = np.random.default_rng(0)
    results = []
    for batch in batches:
        x = rng.uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)
        t = keras.ops.convert_to_tensor(x)
        first = first_call(lambda: wait(cam.heatmaps(t, batch_size=batch, as_tensor=True)))
        base = Row("floor", lambda: wait(floor(t)))
        numpy_row = Row("numpy", lambda: cam.heatmaps(x, batch_size=batch), base)
        tensor_row = Row("tensor", lambda: wait(cam.heatmaps(t, batch_size=batch, as_tensor=True)), base)
        time_rows([base, numpy_row, tensor_row], repeats)
        # tensor / numpy, round by round
        versus_numpy = statistics.median(a / b for a, b in zip(tensor_row.times, numpy_row.times))
        results.append((batch, base, numpy_row, tensor_row, versus_numpy, first))
    return title, results, traces_of_a_run(model, batches[-1])


def ms(row):
    return 1000 * statistics.median(row.times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes. Default: 1 32")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds. Default: 7")
    args = parser.parse_args(argv)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    device = "accelerator" if adapters.current().on_accelerator() else "CPU"
    print(
        f"backend {BACKEND} (keras {keras.__version__}, {module} {__import__(module).__version__}) on {device}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; median of {args.repeats} "
        f"interleaved rounds; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'model':<12} {'batch':>5} {'floor':>9} {'numpy':>9} {'tensor':>9} {'tensor/numpy':>13} "
          f"{'numpy/floor':>12} {'tensor/floor':>13}   first tensor call")
    for key in args.models:
        title, results, traces = bench(key, args.batches, args.repeats)
        for batch, base, numpy_row, tensor_row, versus_numpy, first in results:
            print(
                f"{title:<12} {batch:>5} {ms(base):>7.1f}ms {ms(numpy_row):>7.1f}ms {ms(tensor_row):>7.1f}ms "
                f"{versus_numpy:>12.3f}x {statistics.median(numpy_row.ratios):>11.3f}x "
                f"{statistics.median(tensor_row.ratios):>12.3f}x   {first:.1f} s",
                flush=True,
            )
        last = args.batches[-1]
        print(f"{title}: a run of {last + 1} images at batch {last} ran the forward computation's Python "
              f"{traces} time(s) ({'once per batch, eagerly' if BACKEND == 'torch' else 'traces'})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
