"""Each perturbation metric of ``gradcam.metrics`` against the forward passes it needs.

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/metrics.py
    KERAS_BACKEND=jax python benchmarks/metrics.py --images 4 --steps 50

EfficientNet-Lite0 with its ImageNet weights (``gradcam.models.efficientnet_lite``,
offline) on the sample photos (``gradcam.samples``, with mirrored copies to make up
``--images``), at 224x224, explained by Grad-CAM for the top class; in one process on CPU:

* each metric, called as a user calls it (raw images, ``preprocess=preprocess_input``,
  ``batch_size=32``): deletion and insertion with ``--steps`` steps (``steps + 1``
  forward passes per image), average drop and increase in confidence (2 per image), ROAD
  (MoRF, one per percentile: 9 per image);
* its floor: the same number of forward passes of the model alone, compiled (the same
  compiled forward as ``benchmarks/methods.py``), in batches of 32 made beforehand (the
  last one smaller). Target: each perturbation metric at most 1.2x its floor.

Every call is warm (two warm-up calls first); a metric and its floor are timed in
alternation, and a row's ratio is the median over rounds of (its time / its floor's time
in the same round). ROAD's noisy linear imputation solves one sparse linear system per
image and percentile on the CPU (a batch's systems in one thread per CPU); its row shows
what that costs beside the forward passes.

PyTorch's CPU threads spin while they wait: on a machine whose cores are shared with
other work, run it with ``OMP_NUM_THREADS`` at most the number of free cores.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from backends import BACKEND, Row, block, first_call, time_rows  # noqa: E402
from methods import make_forward  # noqa: E402

import gradcam  # noqa: E402
from gradcam import metrics  # noqa: E402
from gradcam.models import efficientnet_lite  # noqa: E402

CHUNK = 32  # the metrics' batch_size and the floors' batch


def load_docs(count):
    names = gradcam.samples.names()
    docs = [gradcam.image_from_path(gradcam.samples.path(name), image_shape=(224, 224))[0] for name in names]
    mirrored = [doc[:, ::-1] for doc in docs]
    return np.stack((docs + mirrored)[:count])


def floor_call(forward, passes):
    """``passes`` forward passes in batches of CHUNK, on tensors made beforehand."""
    x = np.random.default_rng(0).uniform(-1, 1, (CHUNK, 224, 224, 3)).astype(np.float32)
    sizes = [min(CHUNK, passes - start) for start in range(0, passes, CHUNK)]
    batches = {size: keras.ops.convert_to_tensor(x[:size]) for size in set(sizes)}

    def call():
        for size in sizes:
            block(forward(batches[size]))

    return call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8, help="images. Default: 8")
    parser.add_argument("--steps", type=int, default=100, help="deletion/insertion steps. Default: 100")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds. Default: 3")
    parser.add_argument("--metrics", nargs="+", default=["deletion", "insertion", "average_drop",
                                                         "increase_in_confidence", "road"])
    args = parser.parse_args(argv)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    print(
        f"backend {BACKEND} (keras {keras.__version__}, {module} {__import__(module).__version__}); "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load average "
        f"{os.getloadavg()[0]:.1f}; EfficientNet-Lite0, {args.images} images 224x224, batch {CHUNK}; "
        f"median of {args.repeats} warm calls"
    )
    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    preprocess = efficientnet_lite.preprocess_input
    docs = load_docs(args.images)
    result = gradcam.GradCAM(model, preprocess=preprocess).compute(docs)
    maps, targets = result.heatmaps[:, 0], result.targets[:, 0]
    forward = make_forward(model)
    percentiles = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    calls = {
        "deletion": (args.steps + 1, lambda: metrics.deletion(
            model, docs, maps, targets, preprocess=preprocess, batch_size=CHUNK, steps=args.steps)),
        "insertion": (args.steps + 1, lambda: metrics.insertion(
            model, docs, maps, targets, preprocess=preprocess, batch_size=CHUNK, steps=args.steps)),
        "average_drop": (2, lambda: metrics.average_drop(
            model, docs, maps, targets, preprocess=preprocess, batch_size=CHUNK)),
        "increase_in_confidence": (2, lambda: metrics.increase_in_confidence(
            model, docs, maps, targets, preprocess=preprocess, batch_size=CHUNK)),
        "road": (len(percentiles), lambda: metrics.road(
            model, docs, maps, targets, preprocess=preprocess, batch_size=CHUNK, percentiles=percentiles)),
    }
    print(f"{'metric':<23} {'passes':>6} {'ours':>9} {'floor':>9} {'ratio':>7} {'target':>6}   first call")
    for name in args.metrics:
        per_image, call = calls[name]
        passes = per_image * len(docs)
        floor = Row("floor", floor_call(forward, passes))
        ours = Row(name, call, floor, host_floor=floor)
        first = first_call(call)
        time_rows([floor, ours], args.repeats)
        print(
            f"{name:<23} {passes:>6} {statistics.median(ours.times):>8.2f}s {statistics.median(floor.times):>8.2f}s "
            f"{statistics.median(ours.ratios):>6.3f}x {'1.2x':>6}   {first:.2f} s "
            f"({math.ceil(passes / CHUNK)} batches)",
            flush=True,
        )


if __name__ == "__main__":
    main()
