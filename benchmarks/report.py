"""What a report costs: its forward passes and time against those of its metrics alone.

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/report.py
    python benchmarks/report.py --steps 20 --methods gradcam layercam

EfficientNet-Lite0 with its ImageNet weights (offline) on the 6 sample photos
(``gradcam.samples``) at 224x224, the top class of each, ``preprocess_input``; in one
process on CPU, each side timed once after a warm-up of both:

* **alone**: what a user who writes the study calls: each method's engine for the maps,
  then each ``gradcam.metrics`` function of the report's default metrics, called
  separately for each method and control (the report's rows, ``randomcam`` included: deletion and insertion with ``--steps``,
  average drop, increase in confidence, cascading randomisation of the top
  ``--randomisation-steps`` layers, Smooth MPRT and Efficient MPRT);
* **report**: ``gradcam.report`` with the same settings, which shares the classes, the
  scores of the images, of the all-baseline images and of the blurred images, and the
  masked images' scores between average drop and increase in confidence; then writing
  ``report.json`` and ``report.html``.

Forward passes are the images prepared for the model (a counting ``preprocess``). The
process's CPU time is printed beside the wall time: on a machine shared with other work
it is the steadier measure (2 busy CPUs for 2 minutes are 240 CPU seconds). The
targets: the report at most 1.1x the passes and the time of its metrics alone; the whole
report, page included, under 2 minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcam  # noqa: E402
from gradcam import metrics  # noqa: E402
from gradcam.methods import build_engine  # noqa: E402
from gradcam.models import efficientnet_lite  # noqa: E402
from gradcam.reporting import write  # noqa: E402
from gradcam.reporting.controls import CONTROLS, RANDOM_METHOD  # noqa: E402
from gradcam.reporting.study import PassCounter, run_study  # noqa: E402


def alone(model, docs, args, counter):
    """The study by hand: maps, then every metric function once per method and control
    (the report's rows: the methods, the random channel weights control and the map
    controls)."""
    maps, targets = {}, None
    methods = [*args.methods, RANDOM_METHOD]
    for name in methods:
        engine = build_engine(model, name, preprocess=counter)
        result = engine.compute(docs, None if targets is None else targets[:, None])
        targets = result.targets[:, 0] if targets is None else targets
        maps[name] = result.heatmaps[:, 0]
    for name, control in CONTROLS.items():
        maps[name] = control(docs)
    common = dict(preprocess=counter)
    for name, heat in maps.items():
        metrics.deletion(model, docs, heat, targets, steps=args.steps, **common)
        metrics.insertion(model, docs, heat, targets, steps=args.steps, **common)
        metrics.average_drop(model, docs, heat, targets, **common)
        metrics.increase_in_confidence(model, docs, heat, targets, **common)
    for name in methods:
        metrics.randomisation(model, docs, targets, method=name, max_steps=args.randomisation_steps, **common)
        metrics.smooth_mprt(model, docs, targets, method=name, samples=args.smooth_samples, every_step=False, **common)
        metrics.efficient_mprt(model, docs, targets, method=name, **common)


def load() -> str:
    """The load average over 1, 5 and 15 minutes: how busy the machine is besides this."""
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "layercam"])
    parser.add_argument("--steps", type=int, default=50, help="deletion/insertion steps. Default: 50")
    parser.add_argument("--randomisation-steps", type=int, default=5, help="Default: 5")
    parser.add_argument("--smooth-samples", type=int, default=10, help="Default: 10")
    parser.add_argument("--out", help="keep the report's files in this folder. Default: a temporary one")
    parser.add_argument("--report-only", action="store_true",
                        help="time the report alone (the 2-minute target), not the study by hand")
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    print(f"backend {backend} (keras {keras.__version__}); {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; load average {load()}; "
          f"EfficientNet-Lite0, 6 sample photos 224x224; methods {', '.join(args.methods)}; "
          f"controls {', '.join(CONTROLS)}; {args.steps} steps", flush=True)
    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    docs = np.concatenate([gradcam.image_from_path(gradcam.samples.path(name)) for name in gradcam.samples.names()])
    options = dict(methods=args.methods, steps=args.steps, randomisation_steps=args.randomisation_steps,
                   smooth_samples=args.smooth_samples)

    warm = PassCounter(efficientnet_lite.preprocess_input)  # compiles every function both sides use
    gradcam.report(model, docs[:1], preprocess=warm, **{**options, "steps": 2})
    if not args.report_only:
        alone(model, docs[:1], argparse.Namespace(**{**vars(args), "steps": 2}), warm)

        by_hand = PassCounter(efficientnet_lite.preprocess_input)
        start, cpu = time.perf_counter(), time.process_time()
        alone(model, docs, args, by_hand)
        alone_time, alone_cpu = time.perf_counter() - start, time.process_time() - cpu

    counted = PassCounter(efficientnet_lite.preprocess_input)
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or temporary
        start, cpu = time.perf_counter(), time.process_time()
        data = run_study(model, docs, preprocess=counted, thumbnails=True, **options)  # gradcam.report's study
        report_time, report_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        write(data, out)
        page_time = time.perf_counter() - start
    passes = data["forward_passes"]
    print(f"{'':<8} {'passes':>7} {'time':>8} {'CPU time':>9}")
    if not args.report_only:
        print(f"{'alone':<8} {by_hand.count:>7} {alone_time:>7.1f}s {alone_cpu:>8.1f}s")
    print(f"{'report':<8} {counted.count:>7} {report_time:>7.1f}s {report_cpu:>8.1f}s   ({passes['maps']} maps, "
          f"{passes['shared']} shared, {passes['metrics']} metrics, {passes['sanity']} sanity checks)")
    if not args.report_only:
        print(f"ratio    {counted.count / by_hand.count:>7.3f}x {report_time / alone_time:>7.3f}x "
              f"{report_cpu / alone_cpu:>7.3f}x   target 1.1x")
    print(f"report with its page: wall {report_time + page_time:.1f} s (page {page_time:.1f} s), CPU "
          f"{report_cpu:.1f} s of the study; target under 120 s wall on 2 CPUs; load average now {load()}")
    print("verdict:")
    for sentence in data["verdict"]:
        print("  " + sentence)


if __name__ == "__main__":
    sys.exit(main())
