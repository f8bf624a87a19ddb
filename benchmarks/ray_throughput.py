"""How fast does ``gradcam.ray.explain_images`` run beside ``gradcam explain``, and does
its work divide between the nodes of a cluster?

1. **One machine**, in one process, on a folder of ``--images`` photos (copies of the
   bundled samples, as ``benchmarks/cli_throughput.py`` makes them), ``--repeats``
   alternating rounds of:

   * **engine alone**: ``GradCAM.compute`` on the images already decoded, resized and
     preprocessed (warm), for scale;
   * **gradcam explain**: the command line's ``main`` in-process
     (``cli_throughput.end_to_end``), its rate as its ``summary.json`` reports it: over
     the run, after loading the model and compiling (``setup``, not counted). The command
     always draws and writes the overlays (JPEG, 320 px); it has no option to skip them;
   * **explain_images**: ``explain_images(folder, concurrency=N)`` on a local Ray
     (``ray.init(num_cpus=<cores>)``), for each ``--concurrency``, consumed with
     ``iter_batches``. Its rate **after start-up** is the images divided by the time from
     the Explainer's first batch to its last, as Ray Data's statistics report it ("blocks
     produced in"): before it, the actors start a Python process each, import TensorFlow,
     build the model and compile (the start-up, printed, like the command's setup). The
     rate of the **whole run** counts from the call.

2. **Two nodes** on this machine (``ray start --head --num-cpus=1`` and ``ray start
   --address=... --num-cpus=1``, see ``tests/test_ray_cluster.py``), ``concurrency=2``:
   the images each node's actor explained, from Ray Data's statistics (batches per node
   times the batch size), and the rates as above. Ray Data is told to wait for both
   actors before the first batch (``DataContext.wait_for_min_actors_s``), so that the
   division shows the steady state, not which actor started first.

Usage::

    .venv/bin/python benchmarks/ray_throughput.py                   # 256 images, 3 rounds
    .venv/bin/python benchmarks/ray_throughput.py --repeats 1 --concurrency 1 --no-cluster
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(ROOT, "tests"))

import ray  # noqa: E402

import gradcam  # noqa: E402  (after the path set-up, so the checkout is benchmarked)
import gradcam.ray  # noqa: E402
from cli_throughput import end_to_end, engine_alone, make_folder  # noqa: E402
from gradcam.models import efficientnet_lite  # noqa: E402
from test_ray_cluster import START_SECONDS, two_node_cluster  # noqa: E402


def timed_run(folder: str, batch_size: int, concurrency: int) -> dict:
    """Run ``explain_images`` to the end: its rates, its start-up and the Explainer's
    batches per node (see :func:`explainer_stats`)."""
    start = time.perf_counter()
    explained = gradcam.ray.explain_images(folder, batch_size=batch_size, concurrency=concurrency)
    total = sum(len(batch["path"]) for batch in explained.iter_batches(batch_size=None))
    whole = time.perf_counter() - start
    seconds, batches, nodes, rows = explainer_stats(explained.stats())
    return {"images": total, "whole": total / whole, "after": total / seconds, "startup": whole - seconds,
            "batches": batches, "nodes": nodes, "rows": rows}


_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def explainer_stats(stats: str) -> tuple[float, list[int], int, tuple[int, int]]:
    """From ``Dataset.stats()``, the Explainer's: seconds from its first batch to its last
    (Ray Data's "blocks produced in"), batches per node (the min and max: both nodes'
    counts when there are two), nodes, and rows per batch (min, max)."""
    section = stats.split("MapBatches(Explainer)", 1)[1].split("\nOperator ", 1)[0]
    value, unit = re.search(r"blocks produced in ([\d.]+)(us|ms|s)\b", section).groups()
    low, high, _, nodes = re.search(
        r"Tasks per node: (\d+) min, (\d+) max, (\d+) mean; (\d+) nodes used", section).groups()
    rows_low, rows_high = re.search(r"Output rows per task: (\d+) min, (\d+) max", section).groups()
    return float(value) * _UNITS[unit], [int(low), int(high)], int(nodes), (int(rows_low), int(rows_high))


def one_machine(folder: str, args) -> None:
    paths = sorted(glob.glob(os.path.join(folder, "*")))
    engine = gradcam.GradCAM(efficientnet_lite.EfficientNetLite0(weights="imagenet"))
    docs = efficientnet_lite.preprocess_input(
        np.concatenate([gradcam.image_from_path(p, (224, 224)) for p in paths]))
    engine.compute(docs[: args.batch_size])  # compile
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rates: dict[str, list[float]] = {}
    try:
        for round_ in range(1, args.repeats + 1):
            line = []
            rates.setdefault("engine alone", []).append(engine_alone(engine, docs, args.batch_size)[0])
            summary = end_to_end(folder, args.batch_size)
            rates.setdefault("gradcam explain", []).append(summary["images_per_second"])
            line.append(f"engine alone {rates['engine alone'][-1]:.1f}, gradcam explain "
                        f"{summary['images_per_second']:.1f} (setup {summary['setup_seconds']:.1f} s)")
            for concurrency in args.concurrency:
                run = timed_run(folder, args.batch_size, concurrency)
                assert run["images"] == len(paths), run
                key = f"explain_images, {concurrency} actor{'s' * (concurrency > 1)}"
                rates.setdefault(key + ", after start-up", []).append(run["after"])
                rates.setdefault(key + ", whole run", []).append(run["whole"])
                line.append(f"{key}: {run['after']:.1f} after a start-up of {run['startup']:.1f} s, "
                            f"{run['whole']:.1f} whole run")
            print(f"round {round_} (images/s): " + "; ".join(line), flush=True)
    finally:
        ray.shutdown()
    cli = statistics.median(rates["gradcam explain"])
    print(f"\nmedians of {args.repeats} rounds, {len(paths)} images, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores:")
    for name, values in rates.items():
        print(f"  {name:<45} {statistics.median(values):6.1f} images/s  {statistics.median(values) / cli:6.1%} "
              "of gradcam explain")


def two_nodes(folder: str, args) -> None:
    context = ray.data.DataContext.get_current()
    context.wait_for_min_actors_s = START_SECONDS
    with two_node_cluster():
        run = timed_run(folder, args.batch_size, 2)
    batches, rows = run["batches"], run["rows"]
    images = f" ({batches[0] * rows[0]} and {batches[1] * rows[0]} images)" if rows[0] == rows[1] else ""
    print(f"\ntwo nodes of 1 CPU on this machine, 2 actors, {run['images']} images, batch {args.batch_size}:")
    print(f"  nodes whose actor explained images: {run['nodes']}; batches per node: {batches[0]} and "
          f"{batches[1]}{images}")
    print(f"  {run['after']:.1f} images/s after a start-up of {run['startup']:.1f} s; "
          f"{run['whole']:.1f} images/s whole run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="photos in the folder (default: 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="default: 32")
    parser.add_argument("--repeats", type=int, default=3, help="rounds on one machine (default: 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2],
                        help="explain_images actor counts on one machine (default: 1 2)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the two-node cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradcam-bench-") as workdir:
        folder = os.path.join(workdir, "photos")
        source = make_folder(folder, args.images)
        print(f"{args.images} images: {source}; EfficientNet-Lite0, Ray {ray.__version__}")
        one_machine(folder, args)
        if not args.no_cluster:
            two_nodes(folder, args)


if __name__ == "__main__":
    main()
