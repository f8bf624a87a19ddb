"""How fast does ``gradcam.ray.explain_images`` run beside ``gradcam explain``, where does
a whole run's time go, and does its work divide between the nodes of a cluster?

1. **One machine**, in one process, on a folder of ``--images`` photos (copies of the
   bundled samples, as ``benchmarks/cli_throughput.py`` makes them), ``--repeats``
   alternating rounds of two **whole runs**, each timed from its call to its last result:

   * **gradcam explain --no-overlays**: the command line's ``main`` in-process (this
     process has imported TensorFlow already): loading the model, compiling, reading,
     explaining, writing ``heatmaps.npz`` and the summaries. Its rate **after set-up** is
     the one its ``summary.json`` reports (without loading the model and compiling);
   * **gradcam explain --no-overlays in a new process** (``python -m gradcam explain``),
     for scale: its whole run includes starting Python and importing TensorFlow, as an
     actor's start-up does;
   * **explain_images**: ``explain_images(folder, concurrency=N)`` on a local Ray started
     beforehand (``ray.init(num_cpus=<cores>)``), for each ``--concurrency``, consumed with
     ``iter_batches``. Its rate **after start-up** is the images divided by the time from
     the Explainer's first batch to its last, as Ray Data's statistics report it ("blocks
     produced in");
   * **explain_images, a script**: the same in a script run by a new Python process on
     that Ray (as ``ray job submit`` runs a job's script on a running cluster), timed from
     the process's start to its end, like the command in a new process: its whole run
     also includes importing Ray and ``gradcam.ray``, connecting, and the new job's worker
     processes.

   Each run's **fixed cost** is its whole time less its images at its rate after
   start-up; from the medians the script prints the image count from which
   ``explain_images``'s whole-run rate reaches 70% of the command's.

2. **Phases** of one more ``explain_images`` run (one actor): when the actor's worker
   process started, when it had imported ``gradcam.ray`` (the class arrives), Keras and
   TensorFlow, built the model and compiled (the Explainer's constructor), its batches,
   and the reading tasks' time; measured by a subclass of the Explainer that records
   timestamps.

3. **Two nodes** on this machine (``ray start --head --num-cpus=1`` and ``ray start
   --address=... --num-cpus=1``, see ``tests/test_ray_cluster.py``), ``concurrency=2``:
   the images each node's actor explained, from Ray Data's statistics (batches per node
   times the batch size), and the rates as above. Ray Data is told to wait for both
   actors before the first batch (``DataContext.wait_for_min_actors_s``), so that the
   division shows the steady state, not which actor started first.

4. **Evaluation** (``--evaluate N``, off by default): on ``N`` of the photos, Grad-CAM and
   Grad-CAM++ scored by deletion and insertion (``--evaluate-steps``), alternately in this
   process (:func:`gradcam.reporting.study.run_study`, what :func:`gradcam.report` runs, on
   ``image_from_path``'s arrays, its summary with 200 resamples) and with ``evaluate_images`` for each ``--concurrency``,
   whole runs, ``--repeats`` rounds; the values are checked equal and the ratios of the
   medians printed side by side.

Usage::

    .venv/bin/python benchmarks/ray_throughput.py                   # 256 images, 3 rounds
    .venv/bin/python benchmarks/ray_throughput.py --repeats 1 --concurrency 1 --no-cluster
    .venv/bin/python benchmarks/ray_throughput.py --images 16 --evaluate 16 --repeats 1 --no-explain --no-cluster
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(ROOT, "tests"))

import ray  # noqa: E402
import ray.data  # noqa: E402

import gradcam.ray  # noqa: E402  (after the path set-up, so the checkout is benchmarked)
from cli_throughput import make_folder  # noqa: E402
from gradcam import cli  # noqa: E402
from gradcam.ray import explain as explain_module  # noqa: E402
from test_ray_cluster import START_SECONDS, two_node_cluster  # noqa: E402

TARGET = 0.7  # explain_images's whole-run rate, as a fraction of gradcam explain's


def _timed_explain(run, folder: str, batch_size: int) -> dict:
    """Time ``run(arguments)``, a whole ``gradcam explain --no-overlays`` run on ``folder``:
    its rates and fixed cost (the whole time less its images at its rate after set-up)."""
    out = tempfile.mkdtemp(prefix="gradcam-bench-out-")
    try:
        arguments = ["explain", folder, "--out", out, "--batch-size", str(batch_size), "--quiet",
                     "--no-overlays"]
        start = time.perf_counter()
        run(arguments)
        whole = time.perf_counter() - start
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as file:
            summary = json.load(file)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    images, after = summary["counts"]["images"], summary["images_per_second"]
    return {"images": images, "whole": images / whole, "after": after, "fixed": whole - images / after}


def gradcam_explain(folder: str, batch_size: int) -> dict:
    """A whole ``gradcam explain --no-overlays`` run in this process (see :func:`_timed_explain`)."""

    def in_process(arguments):
        status = cli.main(arguments)
        if status != 0:
            raise SystemExit(f"gradcam explain exited with status {status}")

    return _timed_explain(in_process, folder, batch_size)


def gradcam_explain_process(folder: str, batch_size: int) -> dict:
    """A whole ``python -m gradcam explain --no-overlays`` run in a new process."""

    def new_process(arguments):
        subprocess.run([sys.executable, "-m", "gradcam", *arguments], check=True, cwd=ROOT,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True)

    return _timed_explain(new_process, folder, batch_size)


def explain_all(folder: str, batch_size: int, concurrency: int) -> tuple[int, str]:
    """Run ``explain_images`` to the end: the images explained and the dataset's stats."""
    explained = gradcam.ray.explain_images(folder, batch_size=batch_size, concurrency=concurrency)
    total = sum(len(batch["path"]) for batch in explained.iter_batches(batch_size=None))
    return total, explained.stats()


def _rates(total: int, whole: float, stats: str) -> dict:
    """A run's rates, its fixed cost and the Explainer's batches per node (see
    :func:`explainer_stats`), from its images, its seconds and its dataset's stats."""
    seconds, batches, nodes, rows = explainer_stats(stats)
    return {"images": total, "whole": total / whole, "after": total / seconds, "fixed": whole - seconds,
            "batches": batches, "nodes": nodes, "rows": rows}


def timed_run(folder: str, batch_size: int, concurrency: int) -> dict:
    """:func:`explain_all` in this process, timed (see :func:`_rates`)."""
    start = time.perf_counter()
    total, stats = explain_all(folder, batch_size, concurrency)
    return _rates(total, time.perf_counter() - start, stats)


# A script run on the Ray that is running, as ``ray job submit`` runs a job's script: it
# imports what a user's script imports (not this benchmark's modules) and does what
# explain_all does.
SCRIPT = """\
import json, sys
sys.path.insert(0, {root!r})
import ray
import gradcam.ray
ray.init(address={address!r}, log_to_driver=False, configure_logging=False)
ray.data.DataContext.get_current().enable_progress_bars = False
explained = gradcam.ray.explain_images({folder!r}, batch_size={batch_size}, concurrency={concurrency})
total = sum(len(batch["path"]) for batch in explained.iter_batches(batch_size=None))
print(json.dumps([total, explained.stats()]))
"""


def timed_script(folder: str, batch_size: int, concurrency: int) -> dict:
    """:func:`explain_all` in a script run by a new Python process, timed from the
    process's start to its end (see :func:`_rates`)."""
    address = ray.get_runtime_context().gcs_address
    code = SCRIPT.format(root=ROOT, address=address, folder=folder, batch_size=batch_size,
                         concurrency=concurrency)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    whole = time.perf_counter() - start
    total, stats = json.loads(done.stdout.strip().splitlines()[-1])
    return _rates(total, whole, stats)


_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _section(stats: str, operator: str) -> str:
    return stats.split(f"MapBatches({operator})", 1)[1].split("\nOperator ", 1)[0]


def _produced_in(section: str) -> float:
    value, unit = re.search(r"blocks produced in ([\d.]+)(us|ms|s)\b", section).groups()
    return float(value) * _UNITS[unit]


def explainer_stats(stats: str) -> tuple[float, list[int], int, tuple[int, int]]:
    """From ``Dataset.stats()``, the Explainer's: seconds from its first batch to its last
    (Ray Data's "blocks produced in"), batches per node (the min and max: both nodes'
    counts when there are two), nodes, and rows per batch (min, max)."""
    section = _section(stats, "Explainer")
    low, high, _, nodes = re.search(
        r"Tasks per node: (\d+) min, (\d+) max, (\d+) mean; (\d+) nodes used", section).groups()
    rows_low, rows_high = re.search(r"Output rows per task: (\d+) min, (\d+) max", section).groups()
    return _produced_in(section), [int(low), int(high)], int(nodes), (int(rows_low), int(rows_high))


def break_even(cli_run: dict, ray_run: dict) -> float | None:
    """The image count from which ``ray_run``'s whole-run rate is :data:`TARGET` of
    ``cli_run``'s, each run being ``fixed + images / after`` seconds; ``None`` when its
    rate after start-up is below :data:`TARGET` of the command's (never)."""
    slope = 1 / cli_run["after"] - TARGET / ray_run["after"]
    if slope <= 0:
        return None
    return max(0.0, (TARGET * ray_run["fixed"] - cli_run["fixed"]) / slope)


class PhaseExplainer(gradcam.ray.Explainer):
    """The Explainer, recording when its process started and each step of its start-up
    and batches (``time.time()``), returned in a ``"phases"`` column with the first batch."""

    def __init__(self, **settings):
        self._phases = {"worker process started": _process_start(), "gradcam.ray imported": time.time()}
        import keras  # noqa: F401

        self._phases["Keras and TensorFlow imported"] = time.time()
        super().__init__(**settings)
        self._phases["model built and compiled"] = time.time()
        self._batches = []

    def __call__(self, batch: dict) -> dict:
        start = time.time()
        out = super().__call__(batch)
        self._batches.append((start, time.time()))
        out["phases"] = np.array([json.dumps({**self._phases, "batches": self._batches})] * len(out["heatmap"]))
        return out


def _process_start() -> float:
    """When this process started, as ``time.time()``."""
    with open("/proc/self/stat", encoding="ascii") as file:
        ticks = int(file.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime", encoding="ascii") as file:
        uptime = float(file.read().split()[0])
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def phases(folder: str, batch_size: int) -> None:
    """One ``explain_images`` run's timeline, with the PhaseExplainer in the actor."""
    start = time.time()
    dataset = explain_module._source_dataset(
        explain_module._source_paths(folder), (224, 224), batch_size, 1)
    explained = dataset.map_batches(
        PhaseExplainer, fn_constructor_kwargs={"model": "efficientnet_lite0"}, batch_size=batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=explain_module.ACTOR_CPUS)
    last = None
    for batch in explained.iter_batches(batch_size=None):
        last = batch["phases"][-1]
    end = time.time()
    timeline = json.loads(last)
    batches = timeline.pop("batches")
    reading = _produced_in(_section(explained.stats(), "read_files"))
    print(f"\nphases of one explain_images run (1 actor, {len(batches)} batches), seconds from the call:")
    for name, when in timeline.items():
        print(f"  {when - start:6.2f}  {name}")
    print(f"  {batches[0][0] - start:6.2f}  first batch begins ({batches[0][1] - batches[0][0]:.2f} s)")
    rest = [b - a for a, b in batches[1:]]
    if rest:
        print(f"  {batches[-1][1] - start:6.2f}  last batch ends (the others: median "
              f"{statistics.median(rest):.2f} s per batch of {batch_size})")
    print(f"  {end - start:6.2f}  last row in the script; the reading tasks took {reading:.2f} s from "
          "their first batch to their last")


def one_machine(folder: str, args) -> None:
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs: dict[str, list[dict]] = {}
    try:
        gradcam_explain(folder, args.batch_size)  # once before: the first run imports the command's modules
        for round_ in range(1, args.repeats + 1):
            line = []
            run = gradcam_explain(folder, args.batch_size)
            runs.setdefault("gradcam explain --no-overlays", []).append(run)
            line.append(f"gradcam explain {run['whole']:.1f} whole run, {run['after']:.1f} after set-up")
            run = gradcam_explain_process(folder, args.batch_size)
            runs.setdefault("the same, a new process", []).append(run)
            line.append(f"in a new process {run['whole']:.1f} whole run")
            for concurrency in args.concurrency:
                actors = f"{concurrency} actor{'s' * (concurrency > 1)}"
                for key, timed in ((f"explain_images, {actors}", timed_run),
                                   (f"  the same, a script, {actors}", timed_script)):
                    run = timed(folder, args.batch_size, concurrency)
                    assert run["images"] == args.images, run
                    runs.setdefault(key, []).append(run)
                    line.append(f"{key.strip()}: {run['whole']:.1f} whole run, {run['after']:.1f} after a "
                                f"start-up of {run['fixed']:.1f} s")
            print(f"round {round_} (images/s, load {os.getloadavg()[0]:.1f}): " + "; ".join(line), flush=True)
        if args.phases:
            phases(folder, args.batch_size)
    finally:
        ray.shutdown()
    medians = {name: {key: statistics.median(run[key] for run in values) for key in ("whole", "after", "fixed")}
               for name, values in runs.items()}
    cli_run = medians["gradcam explain --no-overlays"]
    print(f"\nmedians of {args.repeats} rounds, {args.images} images, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores (images/s; the whole run's share of gradcam explain's whole run):")
    print(f"  {'':<32} {'whole run':>9} {'share':>7} {'after start-up':>15} {'fixed cost':>11} {'70% from':>9}")
    for name, run in medians.items():
        images = break_even(cli_run, run)
        print(f"  {name:<32} {run['whole']:9.1f} {run['whole'] / cli_run['whole']:7.1%} {run['after']:15.1f} "
              f"{run['fixed']:9.1f} s {'never' if images is None else f'{images:,.0f}':>9}")
    print("  (70% from: the image count from which the whole-run rate reaches 70% of gradcam explain's)")


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
    print(f"  {run['after']:.1f} images/s after a start-up of {run['fixed']:.1f} s; "
          f"{run['whole']:.1f} images/s whole run")


EVALUATE_METHODS = ("gradcam", "gradcam++")
EVALUATE_METRICS = ("deletion", "insertion")


def evaluate(folder: str, args) -> None:
    """Section 4: the in-process evaluation against evaluate_images, whole runs."""
    from gradcam.image import image_from_path
    from gradcam.io.inputs import find_inputs
    from gradcam.models.registry import builtin_model, load_model, preprocess_function
    from gradcam.reporting.study import run_study

    paths = [item.path for item in find_inputs([folder])][: args.evaluate]
    options = dict(methods=EVALUATE_METHODS, metrics=EVALUATE_METRICS, controls=(), steps=args.evaluate_steps,
                   batch_size=args.batch_size)
    model, builtin = load_model("efficientnet_lite0")
    docs = np.concatenate([image_from_path(path, (builtin.size, builtin.size)) for path in paths])
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    times: dict[str, list[float]] = {}
    try:
        for round_ in range(1, args.repeats + 1):
            start = time.perf_counter()
            measured = run_study(model, docs, preprocess=preprocess_function("auto", builtin_model("efficientnet_lite0")),
                                 resamples=200, **options)
            times.setdefault("in this process (run_study)", []).append(time.perf_counter() - start)
            expected = {(paths[n], row, metric): values[n] for row, by_metric in measured["values"].items()
                        for metric, values in by_metric.items() for n in range(len(paths))}
            for concurrency in args.concurrency:
                start = time.perf_counter()
                rows = gradcam.ray.evaluate_images(paths, model="efficientnet_lite0", concurrency=concurrency,
                                                   **options).take_all()
                times.setdefault(f"evaluate_images, {concurrency} actor{'s' * (concurrency > 1)}", []).append(
                    time.perf_counter() - start)
                worst = max(abs(row["value"] - expected[row["path"], row["method"], row["metric"]]) for row in rows)
                assert len(rows) == len(expected) and worst < 1e-3, (len(rows), worst)
            print(f"evaluation round {round_} (s, load {os.getloadavg()[0]:.1f}): "
                  + "; ".join(f"{name} {values[-1]:.1f}" for name, values in times.items()), flush=True)
    finally:
        ray.shutdown()
    base = statistics.median(times["in this process (run_study)"])
    print(f"\nevaluation, {len(paths)} images, {len(EVALUATE_METHODS)} methods x {len(EVALUATE_METRICS)} metrics, "
          f"{args.evaluate_steps} steps, {measured['forward_passes']['total']} forward passes, medians of "
          f"{args.repeats} rounds, {os.cpu_count()} CPU cores:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<32} {median:7.1f} s  {median / base:6.2f}x  {len(paths) / median:6.2f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="photos in the folder (default: 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="default: 32")
    parser.add_argument("--repeats", type=int, default=3, help="rounds on one machine (default: 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2],
                        help="explain_images actor counts on one machine (default: 1 2)")
    parser.add_argument("--no-phases", dest="phases", action="store_false",
                        help="skip the run that records the actor's phases")
    parser.add_argument("--no-cluster", action="store_true", help="skip the two-node cluster")
    parser.add_argument("--no-explain", dest="explain", action="store_false",
                        help="skip the explain runs on one machine (sections 1 and 2)")
    parser.add_argument("--evaluate", type=int, default=0, metavar="N",
                        help="also time an evaluation of N images (section 4; default: 0, none)")
    parser.add_argument("--evaluate-steps", type=int, default=10, help="deletion and insertion steps (default: 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradcam-bench-") as workdir:
        folder = os.path.join(workdir, "photos")
        source = make_folder(folder, args.images)
        print(f"{args.images} images: {source}; EfficientNet-Lite0, Ray {ray.__version__}")
        if args.explain:
            one_machine(folder, args)
        if args.evaluate:
            evaluate(folder, args)
        if not args.no_cluster:
            two_nodes(folder, args)


if __name__ == "__main__":
    main()
