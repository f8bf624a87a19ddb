"""The method template's Grad-CAM against the floor of the backend Keras runs on.

Run once per backend (the backend is chosen per process, before Keras is imported)::

    KERAS_BACKEND=tensorflow python benchmarks/backends.py
    KERAS_BACKEND=jax python benchmarks/backends.py
    KERAS_BACKEND=torch python benchmarks/backends.py

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded) and its automatic layer (``conv5_block3_out`` / ``out_relu``), in
one process on CPU:

* the floor: the model split at the layer (``body``: input -> layer, ``head``: layer ->
  output, the same layers and weights), running the body forward, then the head forward
  and backward to the layer's output for one class score. Compiled where the backend
  compiles: one ``tf.function``; one ``jax.jit`` of ``stateless_call`` with the weights
  as arguments; PyTorch eagerly, the body under ``torch.no_grad()``;
* the floor from host memory: the same floor called on the numpy images, so that it
  includes copying them to the device (on a GPU, what every numpy batch costs);
* ours: ``gradcam.GradCAM(model).heatmaps(x)`` (top class) on the same images, at batch 1
  and batch 16, and ``gradcam.explain_prediction(model, x)`` at batch 1 (the engine from
  its cache, plus the explanation object: the picture rebuilt from the input, the
  class name).
 Every call is warm (two warm-up calls first); the calls are
interleaved, each round calling every row once in a rotated order, and a row's ratio is
the median over rounds of (its time / the floor's time in the same round). The first
call of each (compile included) is timed once, on the model already built.

PyTorch's CPU threads spin while they wait: on a machine whose cores are shared with
other work, run it with ``OMP_NUM_THREADS`` at most the number of free cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcam  # noqa: E402
from gradcam.layers import find_layer  # noqa: E402

BACKEND = keras.backend.backend()
# Random weights: some maps are all zero, which is no concern for timing.
warnings.filterwarnings("ignore", category=gradcam.EmptyMapWarning)
MODELS = {
    "resnet50": ("ResNet50", keras.applications.ResNet50, "conv5_block3_out"),
    "mobilenet_v2": ("MobileNetV2", keras.applications.MobileNetV2, "out_relu"),
}
TARGET = 1
WARMUP = 2


# -- the floor, per backend ------------------------------------------------------------
def split(model, layer):
    body = keras.Model(model.inputs[0], layer.output)
    head = keras.Model(layer.output, model.outputs[0])
    return body, head


def tensorflow_floor(body, head):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(body.inputs[0].shape[1:]), "float32")

    @tf.function(input_signature=[spec], autograph=False)
    def floor(x):
        activations = body(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(activations)
            score = tf.reduce_sum(head(activations, training=False)[:, TARGET])
        return tape.gradient(score, activations)

    return floor


def jax_floor(body, head):
    import jax

    def pure(body_state, head_state, x):
        activations, _ = body.stateless_call(*body_state, x, training=False)

        def score(a):
            outputs, _ = head.stateless_call(*head_state, a, training=False)
            return outputs[:, TARGET].sum()

        return jax.grad(score)(activations)

    jitted = jax.jit(pure)

    def state(model):
        return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]

    return lambda x: jitted(state(body), state(head), x)


def torch_floor(body, head):
    import torch

    def floor(x):
        with torch.no_grad():
            activations = body(x, training=False)
        activations.requires_grad_(True)
        with torch.enable_grad():
            score = head(activations, training=False)[:, TARGET].sum()
            (gradient,) = torch.autograd.grad(score, activations)
        return gradient

    return floor


def make_floor(model, layer):
    body, head = split(model, layer)
    return {"tensorflow": tensorflow_floor, "jax": jax_floor, "torch": torch_floor}[BACKEND](body, head)


def block(value):
    """Wait for an asynchronous backend's result (JAX dispatches asynchronously)."""
    if hasattr(value, "block_until_ready"):
        value.block_until_ready()
    return value


# -- timing ------------------------------------------------------------------------------
class Row:
    """One timed call; ``times`` are wall-clock seconds, ``cpu_times`` the process's CPU
    seconds during the call (all its threads: on cores shared with other processes, the
    work done, which load changes less than the wall-clock time)."""

    def __init__(self, label, call, floor=None, host_floor=None):
        self.label, self.call, self.floor, self.host_floor = label, call, floor, host_floor
        self.times, self.ratios, self.host_ratios = [], [], []
        self.cpu_times, self.cpu_ratios = [], []

    def run(self):
        start, cpu = time.perf_counter(), time.process_time()
        block(self.call())
        self.last_cpu = time.process_time() - cpu
        return time.perf_counter() - start


def time_rows(rows, repeats, warmup=WARMUP):
    for row in rows:
        for _ in range(warmup):
            row.run()
    for round_ in range(repeats):
        shift = round_ % len(rows)
        times, cpu_times = {}, {}
        for row in rows[shift:] + rows[:shift]:
            times[row] = row.run()
            cpu_times[row] = row.last_cpu
        for row, seconds in times.items():
            row.times.append(seconds)
            row.cpu_times.append(cpu_times[row])
            if row.floor is not None:
                row.ratios.append(seconds / times[row.floor])
                row.cpu_ratios.append(cpu_times[row] / max(cpu_times[row.floor], 1e-9))
                if row.host_floor is not None:
                    row.host_ratios.append(seconds / times[row.host_floor])


def first_call(call):
    start = time.perf_counter()
    block(call())
    return time.perf_counter() - start


def bench_model(key, batch, repeats):
    title, builder, expected = MODELS[key]
    model = builder(weights=None)  # random weights (keras.utils.set_random_seed would import TensorFlow)
    layer = find_layer(model).layer
    if layer.name != expected:
        raise RuntimeError(f"{title}: automatic layer is {layer.name!r}, expected {expected!r}")
    rng = np.random.default_rng(0)
    x1 = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    xb = rng.uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)
    t1, tb = keras.ops.convert_to_tensor(x1), keras.ops.convert_to_tensor(xb)
    floor = make_floor(model, layer)
    cam = gradcam.GradCAM(model)
    first = {"floor": first_call(lambda: floor(t1)), "ours": first_call(lambda: cam.heatmaps(x1))}
    floor1, host1 = Row("floor", lambda: floor(t1)), Row("floor, host", lambda: floor(x1))
    floorb, hostb = Row("floor", lambda: floor(tb)), Row("floor, host", lambda: floor(xb))
    ours1 = Row("GradCAM.heatmaps", lambda: cam.heatmaps(x1), floor1, host1)
    oursb = Row("GradCAM.heatmaps", lambda: cam.heatmaps(xb, batch_size=batch), floorb, hostb)
    explain1 = Row("explain_prediction", lambda: gradcam.explain_prediction(model, x1), floor1, host1)
    time_rows([floor1, host1, ours1, explain1, floorb, hostb, oursb], repeats)
    return title, first, [(1, floor1, host1, ours1), (1, floor1, host1, explain1), (batch, floorb, hostb, oursb)]


def ms(row):
    return 1000 * statistics.median(row.times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batch", type=int, default=16, help="the large batch. Default: 16")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds. Default: 7")
    args = parser.parse_args(argv)
    versions = {"keras": keras.__version__}
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    versions[module] = __import__(module).__version__
    print(
        f"backend {BACKEND} ({', '.join(f'{k} {v}' for k, v in versions.items())}); "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"median of {args.repeats} warm calls; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'model':<12} {'call':<19} {'batch':>5} {'floor':>10} {'ours':>10} {'ratio':>6}   "
          f"{'host floor':>10} {'ratio':>6}   first call: floor, ours")
    for key in args.models:
        title, first, results = bench_model(key, args.batch, args.repeats)
        for i, (batch, floor, host, ours) in enumerate(results):
            tail = f"   {first['floor']:.1f} s, {first['ours']:.1f} s" if i == 0 else ""
            print(
                f"{title:<12} {ours.label:<19} {batch:>5} {ms(floor):>8.1f}ms {ms(ours):>8.1f}ms "
                f"{statistics.median(ours.ratios):>5.2f}x   {ms(host):>8.1f}ms "
                f"{statistics.median(ours.host_ratios):>5.2f}x{tail}",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
