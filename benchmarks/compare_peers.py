"""Time gradcam against the model's own compiled pass ("the floor") and against peers.

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded) and its automatic Grad-CAM layer (``conv5_block3_out`` /
``out_relu``), in one process on CPU:

* the floor: ``keras.Model(model.inputs, [layer.output, model.output])`` inside one
  ``tf.function`` that returns the gradient of one class score with respect to the layer's
  output (a forward pass and a backward pass to the layer; nothing else), at batch 1 and
  at batch 32;
* ours: ``gradcam.explain_prediction(model, doc)`` at batch 1 (vs the batch-1 floor),
  ``GradCAM(model).heatmaps(x32)`` (vs the batch-32 floor) and
  ``GradCAM(model).heatmaps(doc, targets=[5 classes])`` (vs the batch-1 floor);
* peers at batch 1: the keras.io Grad-CAM recipe (written here from its description,
  eager), tf-keras-vis 0.8.7 ``Gradcam`` and eli5 0.16.0 ``explain_prediction``.

Every call is warm (two warm-up calls first). The calls are interleaved: each round calls
every method once, in a rotated order, and a method's time is the median over rounds.
Its ratio is the median over rounds of (its time / the floor's time in the same round),
so that load from other processes hits both sides of a ratio alike.

Then, unless skipped: resident memory (RSS) before and after 500 warm
``explain_prediction`` calls on MobileNetV2, and the cold first call (compile included)
of ``explain_prediction`` and of the floor, each in a fresh Python process.

Install the peers with ``pip install -e .[bench]`` (eli5==0.16.0, tf-keras-vis==0.8.7,
psutil), or run ``make bench``. Then::

    python benchmarks/compare_peers.py                       # everything, text table
    python benchmarks/compare_peers.py --rst                 # the table as rst
    python benchmarks/compare_peers.py --quick --skip-peers  # a quick look at ours
    python benchmarks/compare_peers.py --xla                 # adds jit_compile=True rows
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"  # the peers (tf-keras-vis, eli5) run on TensorFlow only

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradcam  # noqa: E402
from gradcam.api import ENGINES  # noqa: E402
from gradcam.layers import find_layer  # noqa: E402

# The keras.io recipe and eli5 call a model built on a list of inputs with one tensor,
# which Keras accepts with this warning on every call.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
# Random weights: some maps are all zero, which is no concern for timing.
warnings.filterwarnings("ignore", category=gradcam.EmptyMapWarning)

MODELS = {
    "resnet50": ("ResNet50", keras.applications.ResNet50, "conv5_block3_out"),
    "mobilenet_v2": ("MobileNetV2", keras.applications.MobileNetV2, "out_relu"),
}
BATCH = 32
TARGETS = [1, 7, 42, 281, 999]
WARMUP = 2


# -- the measured functions --------------------------------------------------------------
def make_floor(model, layer, jit_compile=False):
    """The model's own compiled forward + backward pass to ``layer``: the floor."""
    sub = keras.Model(model.inputs, [layer.output, model.output])

    @tf.function(jit_compile=jit_compile)
    def floor(x, target):
        with tf.GradientTape() as tape:
            activations, predictions = sub(x, training=False)
            score = tf.reduce_sum(predictions[:, target])
        return tape.gradient(score, activations)

    return floor


def keras_io_recipe(model, img_array, last_conv_layer_name, pred_index=None):
    """The keras.io Grad-CAM example's ``make_gradcam_heatmap``, eager, as published."""
    grad_model = keras.models.Model(
        model.inputs, [model.get_layer(last_conv_layer_name).output, model.output]
    )
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    last_conv_layer_output = last_conv_layer_output[0]
    heatmap = last_conv_layer_output @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


def tf_keras_vis_gradcam(model, layer_name):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    cam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    score = CategoricalScore([TARGETS[0]])
    # Maps at the layer's resolution, as ours (expand_cam=True would add a resize).
    return lambda x: cam(score, x, penultimate_layer=layer_name, expand_cam=False)


def eli5_gradcam(model, layer_name):
    import eli5

    return lambda x: eli5.explain_prediction(model, x, layer=layer_name)


def xla_engine(model):
    """A GradCAM engine whose compiled computations use XLA (an experiment, not an option):
    each ``tf.function`` the TensorFlow adapter makes is made again with ``jit_compile=True``."""
    from gradcam.backend import tensorflow as adapter

    def compile_with_xla(model, fn, signature):
        compiled = adapter.compile(model, fn, signature)
        return tf.function(compiled.python_function, input_signature=compiled.input_signature,
                           autograph=False, jit_compile=True)

    cam = gradcam.GradCAM(model)
    cam._backend = types.SimpleNamespace(compile=compile_with_xla, probe_gradients=adapter.probe_gradients,
                                         to_numpy=adapter.to_numpy)
    return cam


# -- timing ------------------------------------------------------------------------------
class Row:
    """One measured method: a label, a call, the floor it is compared with."""

    def __init__(self, label, call, floor=None):
        self.label, self.call, self.floor = label, call, floor
        self.times, self.ratios, self.error = [], [], None

    def run(self):
        start = time.perf_counter()
        self.call()
        return time.perf_counter() - start


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ").replace("|", "/")
    return "error: " + (text if len(text) <= 70 else text[:67] + "...")


def time_rows(rows, repeats):
    for row in rows:
        try:
            for _ in range(WARMUP):
                row.run()
        except Exception as error:  # a peer that fails is shown, not hidden
            row.error = _error_text(error)
    live = [row for row in rows if row.error is None]
    for round_ in range(repeats):
        shift = round_ % len(live)
        times = {}
        for row in live[shift:] + live[:shift]:
            if row.error is None:
                try:
                    times[row] = row.run()
                except Exception as error:
                    row.error = _error_text(error)
        for row, seconds in times.items():
            row.times.append(seconds)
            if row.floor is not None and row.floor in times:
                row.ratios.append(seconds / times[row.floor])


def cell(row) -> str:
    if row.error is not None:
        return row.error
    ms = 1000 * statistics.median(row.times)
    ratio = statistics.median(row.ratios) if row.floor is not None else 1.0
    return f"{ms:.1f} ms ({ratio:.2f}x)"


def bench_model(key, repeats, skip_peers, xla):
    title, builder, expected = MODELS[key]
    keras.utils.set_random_seed(0)
    model = builder(weights=None)
    layer = find_layer(model).layer
    if layer.name != expected:
        raise RuntimeError(f"{title}: automatic layer is {layer.name!r}, expected {expected!r}")
    rng = np.random.default_rng(0)
    x1 = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    x32 = rng.uniform(-1, 1, (BATCH, 224, 224, 3)).astype(np.float32)
    t1, t32 = tf.constant(x1), tf.constant(x32)
    target = tf.constant(TARGETS[0])
    floor = make_floor(model, layer)
    cam = ENGINES.get(model)  # the engine explain_prediction uses

    floor1 = Row("floor: compiled forward + backward, batch 1", lambda: floor(t1, target))
    floor32 = Row(f"floor: compiled forward + backward, batch {BATCH}", lambda: floor(t32, target))
    rows = [
        floor1,
        Row("gradcam.explain_prediction, batch 1", lambda: gradcam.explain_prediction(model, x1), floor1),
        floor32,
        Row(f"GradCAM.heatmaps, batch {BATCH}", lambda: cam.heatmaps(x32), floor32),
        Row(f"GradCAM.heatmaps, {len(TARGETS)} targets, batch 1",
            lambda: cam.heatmaps(x1, targets=TARGETS), floor1),
    ]
    if xla:
        floor_xla = make_floor(model, layer, jit_compile=True)
        cam_xla = xla_engine(model)
        xla1 = Row("XLA floor (jit_compile=True), batch 1", lambda: floor_xla(t1, target), floor1)
        xla32 = Row(f"XLA floor (jit_compile=True), batch {BATCH}", lambda: floor_xla(t32, target), floor32)
        rows += [
            xla1,
            Row("XLA GradCAM.heatmaps, batch 1 (vs non-XLA floor)", lambda: cam_xla.heatmaps(x1), floor1),
            Row("XLA GradCAM.heatmaps, batch 1 (vs XLA floor)", lambda: cam_xla.heatmaps(x1), xla1),
            xla32,
            Row(f"XLA GradCAM.heatmaps, batch {BATCH} (vs XLA floor)", lambda: cam_xla.heatmaps(x32), xla32),
        ]
    if not skip_peers:
        rows.append(Row("keras.io recipe (eager), batch 1",
                        lambda: keras_io_recipe(model, x1, expected), floor1))
        for label, factory in (("tf-keras-vis 0.8.7 Gradcam, batch 1", tf_keras_vis_gradcam),
                               ("eli5 0.16.0 explain_prediction, batch 1", eli5_gradcam)):
            try:
                call = factory(model, expected)
            except Exception as error:
                row = Row(label, None, floor1)
                row.error = _error_text(error)
                rows.append(row)
                continue
            rows.append(Row(label, (lambda call=call: call(x1)), floor1))
    time_rows(rows, repeats)
    traces = sum(f.experimental_get_tracing_count() for f in cam._compiled.values())
    print(f"{title}: gradcam's engine traced its graphs {traces} time(s) in all these calls")
    return title, rows


# -- printing ----------------------------------------------------------------------------
def format_table(titles, labels, cells, style):
    header = ["method"] + titles
    body = [[label] + [cells[(label, t)] for t in titles] for label in labels]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(row, sep=" | "):
        return sep.join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    if style == "markdown":
        out = ["| " + line(header) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        return "\n".join(out + ["| " + line(r) + " |" for r in body])
    if style == "rst":
        rule = "  ".join("=" * w for w in widths)
        return "\n".join([rule, line(header, "  "), rule] + [line(r, "  ") for r in body] + [rule])
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in body])


def describe_machine() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, numpy {np.__version__}; load average {load}"
    )


# -- memory and cold start ---------------------------------------------------------------
def memory_child(calls):
    """Run in a fresh process: RSS before and after ``calls`` warm explain_prediction calls."""
    import psutil

    process = psutil.Process()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    doc = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    for _ in range(5):
        gradcam.explain_prediction(model, doc)
    gc.collect()
    before = process.memory_info().rss
    steps = []
    for i in range(1, calls + 1):
        gradcam.explain_prediction(model, doc)
        if i % max(1, calls // 5) == 0:
            steps.append((i, process.memory_info().rss - before))
    gc.collect()
    print(json.dumps({"before": before, "after": process.memory_info().rss, "steps": steps}))


def _child(*args):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *map(str, args)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(calls):
    result = _child("--memory-child", calls)
    mb = 2**20
    print(f"\nResident memory, MobileNetV2, {calls} warm explain_prediction calls (fresh process):")
    print(f"  before {result['before'] / mb:.1f} MB, after {result['after'] / mb:.1f} MB, "
          f"growth {(result['after'] - result['before']) / mb:+.1f} MB")
    print("  growth along the way: " + ", ".join(f"{i}: {b / mb:+.1f} MB" for i, b in result["steps"]))


def cold_child(which):
    """Run in a fresh process: build MobileNetV2 and time the first (compiling) call."""
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    built = time.perf_counter()
    doc = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    if which == "ours":
        call = lambda: gradcam.explain_prediction(model, doc)  # noqa: E731
    else:
        floor = make_floor(model, find_layer(model).layer)
        target, x = tf.constant(TARGETS[0]), tf.constant(doc)
        call = lambda: floor(x, target)  # noqa: E731
    times = []
    for _ in range(3):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    print(json.dumps({"build": built - start, "first": times[0], "second": times[1], "third": times[2]}))


def measure_cold(runs):
    print("\nCold start, MobileNetV2, each run in a fresh process (seconds):")
    for which, label in (("ours", "explain_prediction"), ("floor", "floor")):
        lines = []
        for _ in range(runs):
            result = _child("--cold-child", which)
            lines.append(f"first {result['first']:.2f}, second {result['second']:.3f} "
                         f"(model build {result['build']:.2f})")
        print(f"  {label:<20} " + "; ".join(lines))


# -- main --------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None,
                        help="models to time (default: resnet50 mobilenet_v2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7; 3 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds, MobileNetV2 only, 100 memory calls, one cold run each")
    style = parser.add_mutually_exclusive_group()
    style.add_argument("--markdown", dest="style", action="store_const", const="markdown")
    style.add_argument("--rst", dest="style", action="store_const", const="rst")
    parser.add_argument("--skip-peers", action="store_true", help="time the floor and ours only")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--memory-calls", type=int, default=None, help="default 500 (100 with --quick)")
    parser.add_argument("--cold-runs", type=int, default=None, help="fresh processes per method (default 2)")
    parser.add_argument("--xla", action="store_true", help="add jit_compile=True rows (an experiment)")
    parser.add_argument("--cold-child", choices=["ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        return cold_child(args.cold_child)
    if args.memory_child:
        return memory_child(args.memory_child)

    models = args.models or (["mobilenet_v2"] if args.quick else ["resnet50", "mobilenet_v2"])
    repeats = args.repeats or (3 if args.quick else 7)
    print(describe_machine())
    if not args.skip_table:
        print(f"Warm calls, median of {repeats} interleaved rounds; ratio = median of (time / floor time) per round.\n")
        titles, labels, cells = [], [], {}
        for key in models:
            title, rows = bench_model(key, repeats, args.skip_peers, args.xla)
            titles.append(title)
            for row in rows:
                if row.label not in labels:
                    labels.append(row.label)
                cells[(row.label, title)] = cell(row)
            gc.collect()
        for label in labels:
            for title in titles:
                cells.setdefault((label, title), "")
        print(format_table(titles, labels, cells, args.style or "text"))
    if not args.skip_memory:
        measure_memory(args.memory_calls or (100 if args.quick else 500))
    if not args.skip_cold:
        measure_cold(args.cold_runs or (1 if args.quick else 2))
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
