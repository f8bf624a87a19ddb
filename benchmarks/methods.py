"""Each class-activation method against the floor that bounds it.

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/methods.py
    KERAS_BACKEND=jax python benchmarks/methods.py

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded) and its automatic layer, at batch 1, in one process on CPU:

* gradient methods (Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM) and Eigen-CAM
  against the floor of ``benchmarks/backends.py`` (the model split at the layer, forward,
  then backward to the layer for one class score, compiled where the backend compiles).
  Target: at most 1.3x. Eigen-CAM needs no backward pass; its ratio is shown beside them;
* Score-CAM against its own floor: ``M`` masked inputs, made beforehand, through the
  model in batches of ``perturbation_batch`` (compiled; one class score kept). Target: at
  most 1.2x. ``M`` is ``--scorecam-channels`` (Score-CAM's ``max_channels``), so that
  the run stays short: every channel would be 2048 (ResNet50) or 1280 (MobileNetV2)
  full forward passes, for the same ratio;
* Ablation-CAM against ``C`` full forward passes of the model (``C`` the layer's
  channels), timed as ``C / 32`` batches of 32 from one batch's median: its passes start
  at the layer, so it costs a fraction of that.

Every call is warm (two warm-up calls first); the calls are interleaved, each round
calling every row once in a rotated order, and a row's ratio is the median over rounds of
(its time / its floor's time in the same round). The first call of each method (its
compilation included, on the model already built) is timed once.

PyTorch's CPU threads spin while they wait: on a machine whose cores are shared with
other work, run it with ``OMP_NUM_THREADS`` at most the number of free cores (JAX's
linear algebra too: Eigen-CAM's SVD).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from backends import BACKEND, MODELS, TARGET, Row, block, first_call, make_floor, ms, time_rows  # noqa: E402

from gradcam.layers import find_layer  # noqa: E402
from gradcam.methods import AblationCAM, ScoreCAM, build_engine  # noqa: E402
from gradcam.methods.base import EmptyMapWarning  # noqa: E402

GRADIENT_ROWS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam")
CHUNK = 32  # Score-CAM's and Ablation-CAM's perturbation_batch, and the floors' batch


# -- a compiled forward pass, per backend ------------------------------------------------
def tensorflow_forward(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), "float32")
    return tf.function(lambda x: model(x, training=False)[:, TARGET], input_signature=[spec], autograph=False)


def jax_forward(model):
    import jax

    def pure(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return outputs[:, TARGET]

    jitted = jax.jit(pure)
    return lambda x: jitted(
        [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x
    )


def torch_forward(model):
    import torch

    def forward(x):
        with torch.no_grad():
            return model(x, training=False)[:, TARGET]

    return forward


def make_forward(model):
    return {"tensorflow": tensorflow_forward, "jax": jax_forward, "torch": torch_forward}[BACKEND](model)


# -- the rows ------------------------------------------------------------------------------
def bench_model(key, repeats, perturbation_repeats, scorecam_channels):
    title, builder, expected = MODELS[key]
    model = builder(weights=None)
    layer = find_layer(model).layer
    if layer.name != expected:
        raise RuntimeError(f"{title}: automatic layer is {layer.name!r}, expected {expected!r}")
    channels = layer.output.shape[-1]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    tx = keras.ops.convert_to_tensor(x)
    first, rows = {}, []

    # Gradient methods and Eigen-CAM against the gradient floor.
    floor = make_floor(model, layer)
    first["floor"] = first_call(lambda: floor(tx))
    floor_row = Row("floor", lambda: floor(tx))
    rows.append(floor_row)
    for name in GRADIENT_ROWS:
        cam = build_engine(model, name)
        first[name] = first_call(lambda cam=cam: cam.heatmaps(x, targets=TARGET))
        rows.append(Row(name, lambda cam=cam: cam.heatmaps(x, targets=TARGET), floor_row))
    time_rows(rows, repeats)

    # Score-CAM against its masked inputs through the compiled model, in batches.
    forward = make_forward(model)
    count = min(scorecam_channels or channels, channels)
    # The masks' values do not change the time of a dense forward pass: random ones.
    masked = x * np.random.default_rng(1).uniform(0, 1, (count, 224, 224, 1)).astype(np.float32)
    chunks = [keras.ops.convert_to_tensor(masked[i : i + CHUNK]) for i in range(0, count, CHUNK)]

    def score_floor():
        for chunk in chunks:
            block(forward(chunk))

    score = ScoreCAM(model, perturbation_batch=CHUNK, max_channels=scorecam_channels)
    first["scorecam floor"] = first_call(score_floor)
    first["scorecam"] = first_call(lambda: score.heatmaps(x, targets=TARGET))
    score_floor_row = Row("scorecam floor", score_floor)
    score_row = Row("scorecam", lambda: score.heatmaps(x, targets=TARGET), score_floor_row)

    # Ablation-CAM against C full forward passes (one batch of CHUNK, timed, scaled).
    batch = keras.ops.convert_to_tensor(np.repeat(x, CHUNK, axis=0))
    ablation = AblationCAM(model, perturbation_batch=CHUNK)
    first["ablationcam"] = first_call(lambda: ablation.heatmaps(x, targets=TARGET))
    full_row = Row("forward", lambda: forward(batch))
    ablation_row = Row("ablationcam", lambda: ablation.heatmaps(x, targets=TARGET))
    time_rows([score_floor_row, score_row, full_row, ablation_row], perturbation_repeats)

    full_passes = statistics.median(full_row.times) * channels / CHUNK
    results = [(row.label, ms(row), ms(floor_row), statistics.median(row.ratios), "1.3x") for row in rows[1:]]
    results.append(("scorecam", ms(score_row), ms(score_floor_row), statistics.median(score_row.ratios), "1.2x"))
    ablation_ms = ms(ablation_row)
    results.append(("ablationcam", ablation_ms, 1000 * full_passes, ablation_ms / (1000 * full_passes), "-"))
    return title, channels, count, results, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds, gradient methods. Default: 7")
    parser.add_argument(
        "--perturbation-repeats", type=int, default=3, help="timed rounds, Score-CAM and Ablation-CAM. Default: 3"
    )
    parser.add_argument(
        "--scorecam-channels",
        type=int,
        default=64,
        help="Score-CAM's max_channels; 0 scores every channel (long). Default: 64",
    )
    args = parser.parse_args(argv)
    # Random weights leave some maps empty; that is no concern of a timing.
    warnings.filterwarnings("ignore", category=EmptyMapWarning)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    print(
        f"backend {BACKEND} (keras {keras.__version__}, {module} {__import__(module).__version__}); "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; batch 1; "
        f"median of {args.repeats} warm calls ({args.perturbation_repeats} for Score-CAM and Ablation-CAM)"
    )
    print(f"{'model':<12} {'method':<12} {'ours':>10} {'floor':>11} {'ratio':>7} {'target':>6}   first call")
    for key in args.models:
        title, channels, count, results, first = bench_model(
            key, args.repeats, args.perturbation_repeats, args.scorecam_channels or None
        )
        for name, ours, floor, ratio, target in results:
            print(
                f"{title:<12} {name:<12} {ours:>8.1f}ms {floor:>9.1f}ms {ratio:>6.3f}x {target:>6}   "
                f"{first[name]:.2f} s",
                flush=True,
            )
        print(
            f"{'':<12} floors: gradient {first['floor']:.2f} s first call; Score-CAM: {count} of {channels} "
            f"channels, {math.ceil(count / CHUNK)} batches of {CHUNK} ({first['scorecam floor']:.2f} s first); "
            f"Ablation-CAM: {channels} full forward passes, from {CHUNK}-image batches",
            flush=True,
        )


if __name__ == "__main__":
    main()
