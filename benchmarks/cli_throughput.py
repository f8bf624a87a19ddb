"""How close does ``gradcam explain`` run to the engine's own speed, and how much memory?

Side by side, in one process, on a folder of photos (copies of ``samples/*.jpg``):

1. **engine alone**: ``GradCAM.compute`` at the chosen batch size on images already
   decoded, resized and preprocessed (warm: the function is compiled beforehand);
2. **end to end**: the command line's ``main`` called in-process
   (``gradcam explain FOLDER --out TMP --quiet``): finding the files, decoding, resizing,
   the engine, drawing the overlays, writing the PNGs, ``heatmaps.npz`` and the summaries.
   Its rate is taken over the run itself, as reported in ``summary.json``: loading the
   model and compiling the Grad-CAM function (``setup``, printed separately) are excluded.

The two alternate ``--repeats`` times; the medians and their ratio are printed, with the
time each pipeline stage took (threads overlap, so the stages add up to more than the run).
The stages are timed by this script: it passes a timer to the pipeline's ``timer`` hook
(:func:`gradcam.batch.explain_files`), which times nothing by default.

Then the command runs in a child process (``python -m gradcam explain ...``) on
``--images`` and on ``--large`` photos, to measure its peak resident memory
(``VmHWM``) and its wall-clock time including start-up.

Usage::

    .venv/bin/python benchmarks/cli_throughput.py                 # 256 images, 3 repeats
    .venv/bin/python benchmarks/cli_throughput.py --images 64 --large 256 --repeats 1
    .venv/bin/python benchmarks/cli_throughput.py --no-overlays   # heatmaps and summaries only
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gradcam  # noqa: E402  (after the path set-up, so the checkout is benchmarked)
from gradcam import batch, cli  # noqa: E402
from gradcam.cli import explain as explain_command  # noqa: E402
from gradcam.models import efficientnet_lite  # noqa: E402

STAGES = (
    ("decode", "workers: reading and decoding the files (load_image)"),
    ("resize", "workers: resizing for the model and for the overlay"),
    ("overlay", "workers: drawing the overlays (overlay_heatmap)"),
    ("encode", "workers: encoding and writing the overlays (JPEG)"),
    ("wait_decode", "engine thread: waiting for decoded images"),
    ("preprocess", "engine thread: stacking and preprocess_input"),
    ("engine", "engine thread: GradCAM.compute (its Python side; TensorFlow's threads below)"),
    ("wait_writer", "engine thread: waiting for the recorder (back-pressure, and the end)"),
    ("wait_engine", "recorder thread: waiting for the engine"),
    ("wait_draw", "recorder thread: waiting for the overlays"),
    ("summary", "recorder thread: summary rows, heatmaps"),
    ("finish", "engine thread: packing heatmaps.npz, moving the run's files into place"),
)


class StageTimers:
    """Stage timers for the pipeline's ``timer`` hook: ``with timers("engine"): ...`` adds
    the block's wall-clock seconds and its thread's CPU seconds to that stage."""

    def __init__(self):
        self._local = threading.local()
        self._tables: list[tuple[dict, dict]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, name: str):
        tables = getattr(self._local, "tables", None)
        if tables is None:
            tables = self._local.tables = ({}, {})
            with self._lock:
                self._tables.append(tables)
        wall, cpu = tables
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall[name] = wall.get(name, 0.0) + time.perf_counter() - start
            cpu[name] = cpu.get(name, 0.0) + time.thread_time() - start_cpu

    def totals(self) -> tuple[dict, dict]:
        """Wall-clock and CPU seconds per stage, summed over the threads."""
        merged: tuple[dict, dict] = ({}, {})
        with self._lock:
            for tables in self._tables:
                for total, table in zip(merged, tables):
                    for name, seconds in table.items():
                        total[name] = total.get(name, 0.0) + seconds
        return merged


def make_folder(folder: str, count: int) -> str:
    """Fill ``folder`` with ``count`` photos: copies of samples/*.jpg, or synthetic JPEGs."""
    samples = sorted(glob.glob(os.path.join(ROOT, "gradcam", "samples", "*.jpg")))
    os.makedirs(folder, exist_ok=True)
    if samples:
        for i in range(count):
            source = samples[i % len(samples)]
            shutil.copyfile(source, os.path.join(folder, f"{i:05d}_{os.path.basename(source)}"))
        return f"copies of {len(samples)} photos in samples/ ({', '.join(map(os.path.basename, samples))})"
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return "synthetic 640x480 JPEGs (samples/ has no photos)"


def engine_alone(engine, docs: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Images per second of the warm engine on preprocessed arrays, and its CPU seconds."""
    start, cpu = time.perf_counter(), _process_cpu()
    engine.compute(docs, batch_size=batch_size)
    return len(docs) / (time.perf_counter() - start), _process_cpu() - cpu


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def end_to_end(folder: str, batch_size: int, options=()) -> dict:
    """Run ``gradcam explain`` in-process, its pipeline timed; return its summary.json with
    ``timings`` and ``cpu_timings`` (per stage) and ``cpu_seconds`` (the whole process
    during the run) added."""
    out = tempfile.mkdtemp(prefix="gradcam-bench-out-")
    timers, measured = StageTimers(), {}

    def timed_run(*args, **kwargs):
        cpu = _process_cpu()
        try:
            return batch.explain_files(*args, timer=timers, **kwargs)
        finally:
            measured["cpu_seconds"] = _process_cpu() - cpu

    try:
        with mock.patch.object(explain_command, "explain_files", functools.wraps(batch.explain_files)(timed_run)):
            status = cli.main(["explain", folder, "--out", out, "--batch-size", str(batch_size), "--quiet",
                               *options])
        if status != 0:
            raise SystemExit(f"gradcam explain exited with status {status}")
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as file:
            summary = json.load(file)
        summary["timings"], summary["cpu_timings"] = timers.totals()
        summary["cpu_seconds"] = measured["cpu_seconds"]
        return summary
    finally:
        shutil.rmtree(out, ignore_errors=True)


def child_run(folder: str, batch_size: int, options=()) -> dict:
    """Run the command in a child process; return its peak RSS, wall time and rate."""
    out = tempfile.mkdtemp(prefix="gradcam-bench-out-")
    # VmHWM: the peak resident set of this process image (ru_maxrss would include the
    # parent's, which Linux carries across fork and exec).
    code = ("import sys; from gradcam.cli import main; status = main(sys.argv[1:]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
            "print('maxrss_kib', hwm.split()[1]); sys.exit(status)")
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, "explain", folder, "--out", out, "--batch-size",
             str(batch_size), "--quiet", *options],
            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"child run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        rss_kib = int(done.stdout.split("maxrss_kib")[1].split()[0])
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as file:
            summary = json.load(file)
        return {"rss_mib": rss_kib / 1024, "wall": wall, "rate": summary["images_per_second"],
                "setup": summary["setup_seconds"]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="photos in the folder (default: 256)")
    parser.add_argument("--large", type=int, default=1024,
                        help="photos for the second memory measurement; 0 to skip (default: 1024)")
    parser.add_argument("--batch-size", type=int, default=32, help="default: 32")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of engine / end to end (default: 3)")
    parser.add_argument("--no-overlays", action="store_true",
                        help="run the command with --no-overlays (heatmaps and summaries only)")
    args = parser.parse_args()
    options = ["--no-overlays"] if args.no_overlays else []

    workdir = tempfile.mkdtemp(prefix="gradcam-bench-")
    try:
        folder = os.path.join(workdir, "photos")
        source = make_folder(folder, args.images)
        print(f"{args.images} images: {source}; EfficientNet-Lite0, batch {args.batch_size}, "
              f"{os.cpu_count()} CPU cores{', --no-overlays' if args.no_overlays else ''}")

        model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
        engine = gradcam.GradCAM(model)
        paths = sorted(glob.glob(os.path.join(folder, "*")))
        docs = efficientnet_lite.preprocess_input(
            np.concatenate([gradcam.image_from_path(p, (224, 224)) for p in paths]))
        engine.compute(docs[: args.batch_size])  # compile, and set up the batch shape
        engine.compute(docs[: len(docs) % args.batch_size or args.batch_size])

        engine_rates, engine_cpus, e2e_rates, summaries = [], [], [], []
        for round_ in range(1, args.repeats + 1):
            rate, cpu = engine_alone(engine, docs, args.batch_size)
            engine_rates.append(rate)
            engine_cpus.append(cpu)
            summary = end_to_end(folder, args.batch_size, options)
            summaries.append(summary)
            e2e_rates.append(summary["images_per_second"])
            print(f"round {round_}: engine alone {engine_rates[-1]:6.1f} images/s | end to end "
                  f"{e2e_rates[-1]:6.1f} images/s | ratio {e2e_rates[-1] / engine_rates[-1]:5.1%} "
                  f"(setup {summary['setup_seconds']:.1f} s, not counted)", flush=True)
        del docs

        engine_rate, e2e_rate = statistics.median(engine_rates), statistics.median(e2e_rates)
        ratios = [e2e / alone for e2e, alone in zip(e2e_rates, engine_rates)]
        print(f"\nmedians: engine alone {engine_rate:.1f} images/s, end to end {e2e_rate:.1f} "
              f"images/s; ratio {e2e_rate / engine_rate:.1%} (median of the rounds' ratios "
              f"{statistics.median(ratios):.1%})")
        middle = summaries[e2e_rates.index(statistics.median_low(e2e_rates))]
        seconds, images = middle["seconds"], middle["counts"]["images"]
        wall, cpu = middle["timings"], middle["cpu_timings"]
        print(f"\nwhere the time goes in the median end-to-end run ({seconds:.2f} s, "
              f"{middle['cpu_seconds']:.2f} CPU s on {os.cpu_count()} cores):")
        print(f"  {'stage':<12} {'wall s':>7} {'CPU s':>7} {'CPU ms/image':>13}")
        for name, meaning in STAGES:
            print(f"  {name:<12} {wall.get(name, 0.0):7.2f} {cpu.get(name, 0.0):7.2f} "
                  f"{1000 * cpu.get(name, 0.0) / images:13.1f}  {meaning}")
        tensorflow = middle["cpu_seconds"] - sum(cpu.values())
        print(f"  {'(engine)':<12} {'':>7} {tensorflow:7.2f} {1000 * tensorflow / images:13.1f}  "
              "TensorFlow's own threads: the rest of the process's CPU time")
        engine_cpu = statistics.median(engine_cpus)
        print(f"  engine alone: {1000 * engine_cpu / len(paths):.1f} CPU ms/image. Threads overlap: the wall "
              "times add up to more than the run; the waits are idle time.")
        print(f"  setup before the run (not counted): {middle['setup_seconds']:.2f} s, loading the model and "
              "compiling")
        print("\npeak resident memory of `python -m gradcam explain` in a child process:")
        for count in [args.images] + ([args.large] if args.large else []):
            if count != args.images:
                make_folder(folder, count)
            result = child_run(folder, args.batch_size, options)
            print(f"  {count:5d} images: peak RSS {result['rss_mib']:7.1f} MiB | wall {result['wall']:6.1f} s "
                  f"including start-up and setup ({result['setup']:.1f} s) | run {result['rate']:.1f} images/s",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
