"""Each built-in target's time against the class target's, side by side in one process.

Run once per backend (the backend is chosen per process, before Keras is imported)::

    KERAS_BACKEND=tensorflow python benchmarks/targets.py
    KERAS_BACKEND=jax python benchmarks/targets.py
    KERAS_BACKEND=torch python benchmarks/targets.py

One model, ``keras.applications.MobileNetV2`` (``weights=None``: nothing is downloaded)
with four outputs on its last feature map ``out_relu``: ``logits`` (global average
pooling, Dense 1000), ``embedding`` (the pooled features), ``pixels`` (a 1x1 convolution
to 21 classes per location) and a detector's ``boxes`` (one fixed box per location) and
``scores`` (``pixels`` read as one anchor per location). All targets explain ``out_relu``
with Grad-CAM on the same model, so each one's time differs from the class target's only
by what the target computes:

* ``class``: ``Class(c, output="logits")``, the baseline;
* ``output``, ``contrast`` (three closest classes), ``similarity`` (to a reference
  embedding), ``segmentation`` (a mask per image), ``box`` (``decode`` picks boxes and
  scores), and ``function`` (a ``keras.ops`` lambda).

Every call is warm (two warm-up calls first, compile included); the calls are
interleaved, each round calling every target once in a rotated order. Per target, at
batch 1 and batch 32: its median time, the median over rounds of (its time / the class
target's time in the same round) with the quartiles of that ratio (their spread is the
noise of the machine), and the ratio of the fastest rounds. The target: at most 1.05x.
The load average is printed before and after: on shared cores (a load above the number
of cores) the ratios move by tens of percent; compare them on a quiet machine. Each
target compiles at most one computation, in its first call, and the timed calls none:
the script counts the engine's compiled computations and warns otherwise.

With the defaults (128 x 128, 9 rounds) it runs in about a minute on a quiet 2-core
machine with TensorFlow.

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
from keras import ops  # noqa: E402

import gradcam  # noqa: E402
from gradcam import targets as T  # noqa: E402

BACKEND = keras.backend.backend()
# Random weights: some maps are all zero, which is no concern for timing.
warnings.filterwarnings("ignore", category=gradcam.EmptyMapWarning)
warnings.filterwarnings("ignore", category=T.NoBoxWarning)
CLASS = 1
WARMUP = 2


class GridBoxes(keras.layers.Layer):
    """One box per location of a ``(N, h, w, C)`` map, in input pixels: ``(N, h*w, 4)``."""

    def __init__(self, image_size, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size

    def call(self, features):
        h, w = features.shape[1], features.shape[2]
        step_y, step_x = self.image_size / h, self.image_size / w
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        grid = np.stack([cols * step_x, rows * step_y, (cols + 1) * step_x, (rows + 1) * step_y], -1)
        zero = ops.reshape(ops.zeros_like(features[..., :1]), (-1, h * w, 1))
        return zero + ops.convert_to_tensor(grid.reshape(1, h * w, 4).astype("float32"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * input_shape[2], 4)


def build_model(size: int):
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
    features = base.output
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    pixels = keras.layers.Conv2D(21, 1, name="pixels")(features)
    h, w = pixels.shape[1], pixels.shape[2]
    outputs = {
        "logits": keras.layers.Dense(1000, name="logits")(pooled),
        "embedding": pooled,
        "pixels": pixels,
        "boxes": GridBoxes(size, name="boxes")(features),
        "scores": keras.layers.Reshape((h * w, 21), name="scores")(pixels),
    }
    return keras.Model(base.input, outputs, name="mobilenet_v2_heads"), (h, w)


def make_targets(batch: int, grid, size: int, rng):
    h, w = grid
    masks = rng.random((batch, h, w)) > 0.5
    cell = size / h
    boxes = np.tile(np.array([cell, cell, 3 * cell, 3 * cell], np.float32), (batch, 1))
    return {
        "class": [T.Class(CLASS, output="logits")],
        "output": [T.Output(CLASS, output="logits")],
        "contrast": [T.Contrast(CLASS, output="logits")],
        "similarity": [T.Similarity(rng.standard_normal((batch, 1280)).astype(np.float32), output="embedding")],
        "segmentation": [T.Segmentation(3, masks, output="pixels")],
        "box": [T.Box(boxes, 3, iou=0.1, decode=lambda o: (o["boxes"], o["scores"]))],
        "function": [lambda o: o["logits"][:, CLASS] - ops.mean(o["logits"], axis=1)],
    }


def quartiles(values) -> tuple:
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def measure(engine, x, targets: dict, rounds: int) -> dict:
    names = list(targets)
    for name in names:  # compile (once at most: a kind of target compiled before is reused), then warm
        compiled = len(engine._compiled)
        for _ in range(WARMUP):
            engine.heatmaps(x, targets[name], batch_size=len(x))
        if len(engine._compiled) - compiled > 1:
            print(f"warning: target {name!r} compiled {len(engine._compiled) - compiled} computations")
    compiled = len(engine._compiled)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            engine.heatmaps(x, targets[name], batch_size=len(x))
            times[name].append(time.perf_counter() - start)
    if len(engine._compiled) != compiled:
        print("warning: the timed calls compiled again")
    results = {}
    for name in names:
        ratios = [t / c for t, c in zip(times[name], times["class"])]
        results[name] = (statistics.median(times[name]) * 1000, statistics.median(ratios), *quartiles(ratios),
                         min(times[name]) / min(times["class"]))
    return results


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="input size (default 128)")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per batch size (default 9)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model, grid = build_model(args.size)
    engine = gradcam.GradCAM(model, layer="out_relu")
    started = time.perf_counter()
    print(f"backend {BACKEND}, keras {keras.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, MobileNetV2 heads at {args.size}x{args.size}, layer out_relu, Grad-CAM, "
          f"{args.rounds} interleaved rounds")
    print(f"load average (1, 5, 15 min) before: {load()}")
    results = {}
    for batch in args.batches:
        x = rng.uniform(-1, 1, (batch, args.size, args.size, 3)).astype(np.float32)
        results[batch] = measure(engine, x, make_targets(batch, grid, args.size, rng), args.rounds)
    names = list(next(iter(results.values())))
    print("per batch size: median ms; median ratio to class in the same round [quartiles]; ratio of the fastest")
    print(f"{'target':<14}" + "".join(f"{f'batch {b}':>40}" for b in args.batches))
    for name in names:
        print(f"{name:<14}" + "".join(
            f"{ms:>10.1f}{ratio:>8.3f}x [{q1:.3f}, {q3:.3f}]{fastest:>7.3f}x"
            for ms, ratio, q1, q3, fastest in (results[b][name] for b in args.batches)))
    print(f"load average after: {load()}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
