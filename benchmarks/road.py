"""ROAD's imputation: the iterative solve, the direct solve and pytorch-grad-cam's imputer.

Run with the backend Keras should use (the iterative solve runs on it)::

    python benchmarks/road.py
    KERAS_BACKEND=jax python benchmarks/road.py --rounds 5

One 224x224 photo (``gradcam.samples`` "chelsea", RGB 0..255), its Grad-CAM map from
EfficientNet-Lite0 (ImageNet weights, offline) upsampled to the image, and the nine
default percentiles of ROAD (10..90, most relevant first): nine removed regions. In one
process, on the device Keras uses (the CPU unless a GPU is visible), each of:

* ``iterative``: :func:`gradcam.metrics.remove_and_debias.impute_iteratively`, the nine
  systems in one call (conjugate gradients in ``keras.ops``, compiled once per image
  size; the first call, compile included, is timed apart);
* ``direct``: :func:`gradcam.metrics.remove_and_debias.impute` per percentile, one after
  the other in one thread (a sparse factorisation each);
* ``pytorch-grad-cam``: ``NoisyLinearImputer`` of grad-cam 1.5.7
  (``pytorch_grad_cam.metrics.road``, what ``ROADMostRelevantFirst`` calls), per
  percentile, when grad-cam is installed.

The calls alternate, each round calling every row once; a row's ratio is the median over
rounds of its time over the direct solve's time in the same round. The largest difference
of each result from the direct solve's (noise off) is printed as a share of the pixel
range (255).

PyTorch's CPU threads spin while they wait: on a machine whose cores are shared with
other work, run it with ``OMP_NUM_THREADS`` at most the number of free cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcam  # noqa: E402
from gradcam import backend  # noqa: E402
from gradcam.metrics.maps import rank_pixels, upsample  # noqa: E402
from gradcam.metrics.remove_and_debias import impute, impute_iteratively  # noqa: E402
from gradcam.models import efficientnet_lite  # noqa: E402

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
SIZE = 224


def load_grad_cam_road():
    """pytorch-grad-cam's ROAD module, or ``None`` when grad-cam is not installed.

    ``pytorch_grad_cam/__init__.py`` imports every method, and with them torchvision; the
    ROAD module needs only torch, numpy, scipy and OpenCV. So the package and its
    ``metrics`` subpackage are entered in ``sys.modules`` as empty packages at their own
    paths before the module is imported, and their ``__init__`` files are not run.
    """
    spec = importlib.util.find_spec("pytorch_grad_cam")
    if spec is None:
        return None
    path = spec.submodule_search_locations[0]
    for package, where in (("pytorch_grad_cam", path), ("pytorch_grad_cam.metrics", os.path.join(path, "metrics"))):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [where]
            sys.modules[package] = module
    import pytorch_grad_cam.metrics.road as road

    return road


def removed_regions():
    """The photo ``(224, 224, 3)`` and the nine removed regions ``(9, 224, 224)``."""
    doc = gradcam.image_from_path(gradcam.samples.path("chelsea"), image_shape=(SIZE, SIZE))
    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    cam = gradcam.GradCAM(model, preprocess=efficientnet_lite.preprocess_input)
    heatmap = cam.heatmaps(doc)[:, 0]
    ranked = rank_pixels(upsample(heatmap, (SIZE, SIZE)))[0]
    removed = np.zeros((len(PERCENTILES), SIZE * SIZE), bool)
    for row, share in enumerate(PERCENTILES):
        removed[row, ranked[: int(np.floor(share * SIZE * SIZE / 100))]] = True
    return doc[0], removed.reshape(-1, SIZE, SIZE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    args = parser.parse_args(argv)

    image, removed = removed_regions()
    images = np.repeat(image[None], len(removed), axis=0)

    def iterative():
        return impute_iteratively(images, removed)

    def direct():
        return np.stack([impute(image, mask) for mask in removed])

    rows = {"iterative": iterative, "direct": direct}
    grad_cam_road = load_grad_cam_road()
    if grad_cam_road is not None:
        import torch

        imputer = grad_cam_road.NoisyLinearImputer(noise=0.0)
        chw = torch.tensor(image.transpose(2, 0, 1))

        def grad_cam():  # its mask is 1 where a pixel is kept
            masks = [torch.tensor((~mask).astype(np.float32)) for mask in removed]
            return np.stack([imputer(chw, mask).numpy().transpose(1, 2, 0) for mask in masks])

        rows["pytorch-grad-cam"] = grad_cam

    start = time.perf_counter()
    results = {"iterative": iterative()}
    first = time.perf_counter() - start
    results.update({name: call() for name, call in rows.items() if name != "iterative"})
    times = {name: [] for name in rows}
    for round_ in range(args.rounds):
        names = list(rows)[round_ % len(rows) :] + list(rows)[: round_ % len(rows)]
        for name in names:
            start = time.perf_counter()
            rows[name]()
            times[name].append(time.perf_counter() - start)

    print(f"ROAD's imputation: one {SIZE}x{SIZE} RGB image, {len(PERCENTILES)} percentiles "
          f"({PERCENTILES[0]}..{PERCENTILES[-1]}% removed, most relevant first)")
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, "
          f"{'accelerator' if backend.current().on_accelerator() else 'CPU'}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"median of {args.rounds} rounds")
    print(f"{'solver':<18} {'seconds':>8} {'/ direct':>9} {'max |diff| / 255':>17}")
    for name in rows:
        ratio = statistics.median(t / d for t, d in zip(times[name], times["direct"]))
        difference = np.abs(results[name] - results["direct"]).max() / 255
        print(f"{name:<18} {statistics.median(times[name]):8.3f} {ratio:8.2f}x {difference:17.1e}")
    print(f"iterative, first call (compile included): {first:.2f} s")
    if grad_cam_road is None:
        print("pytorch-grad-cam: not installed (pip install --no-deps grad-cam==1.5.7)")


if __name__ == "__main__":
    main()
