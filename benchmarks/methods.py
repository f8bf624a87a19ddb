"""Each class-activation method against the floor that bounds it.

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/methods.py
    KERAS_BACKEND=jax python benchmarks/methods.py --models mobilenet_v2 --batches 1

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded) and its automatic layer, in one process:

* at each batch size of ``--batches`` (1 and 32): every method that needs no
  perturbation against the floor of ``benchmarks/backends.py`` (the model split at the
  layer, forward, then backward to the layer for one class score, compiled where the
  backend compiles). Targets: at most 1.3x for the gradient methods, 2.5x for
  Shapley-CAM (one more backward pass, through the first), 6.5x for ``aug_smooth``
  (six augmented copies of each image in one call). The methods that need no gradients
  (Eigen-CAM, KPCA-CAM, FEM, Random-CAM) run no backward pass; their ratios are shown
  beside them;
* at batch 1, Score-CAM against its own floor: ``M`` masked inputs, made beforehand,
  through the model in batches of ``perturbation_batch`` (compiled; one class score
  kept). Target: at most 1.2x. ``M`` is ``--max-channels``, so that the run stays
  short: every channel would be 2048 (ResNet50) or 1280 (MobileNetV2) full forward
  passes, for the same ratio;
* at batch 1, Ablation-CAM with ``max_channels=M`` against its own floor: one
  compiled pass of the model up to the layer, then ``M`` ablated copies of the layer's
  output, made beforehand, through the rest of the model in batches of
  ``perturbation_batch`` (compiled). Target: at most 1.2x. Where the rest of the model
  is as cheap as a pooling and a dense layer (both models here), the pass to the layer
  is most of it.

Every call is warm (two warm-up calls first); the calls are interleaved, each round
calling every row once in a rotated order, and a row's ratio is the median over rounds of
(its time / its floor's time in the same round), so that load from other processes hits
both sides of a ratio alike. The first call of each method (its compilation included, on
the model already built) is timed once. The load average is printed: on a shared machine
the ratios are the numbers to read, not the times.

PyTorch's CPU threads spin while they wait: on a machine whose cores are shared with
other work, run it with ``OMP_NUM_THREADS`` at most the number of free cores (JAX's
linear algebra too: Eigen-CAM's SVD).
"""

from __future__ import annotations

import argparse
import inspect
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
from backends import BACKEND, MODELS, TARGET, Row, block, first_call, make_floor, ms, split, time_rows  # noqa: E402

from gradcam.layers import find_layer  # noqa: E402
from gradcam.methods import METHODS, AblationCAM, ScoreCAM, build_engine  # noqa: E402
from gradcam.methods.base import EmptyMapWarning  # noqa: E402

#: (label, method, options of the call, target ratio or None) of the rows timed against the
#: gradient floor.
FLOOR_ROWS = (
    ("gradcam", "gradcam", {}, 1.3),
    ("gradcam++", "gradcam++", {}, 1.3),
    ("xgradcam", "xgradcam", {}, 1.3),
    ("hirescam", "hirescam", {}, 1.3),
    ("layercam", "layercam", {}, 1.3),
    ("eigengradcam", "eigengradcam", {}, 1.3),
    ("gradcamelementwise", "gradcamelementwise", {}, 1.3),
    ("shapleycam", "shapleycam", {}, 2.5),
    ("eigencam", "eigencam", {}, None),
    ("kpcacam", "kpcacam", {}, None),
    ("fem", "fem", {}, None),
    ("randomcam", "randomcam", {}, None),
    ("gradcam aug_smooth", "gradcam", {"aug_smooth": True}, 6.5),
    ("fullgrad", "fullgrad", {}, None),
)
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


def chunked(forward, batch):
    """A call that runs ``forward`` on ``batch`` in chunks of ``CHUNK``, made beforehand."""
    chunks = [keras.ops.convert_to_tensor(batch[i : i + CHUNK]) for i in range(0, len(batch), CHUNK)]

    def run():
        for chunk in chunks:
            block(forward(chunk))

    return run


def supported(method, options):
    """Whether this checkout has ``method`` and its ``heatmaps`` takes ``options`` (rows of
    later versions are skipped)."""
    return method in METHODS and all(name in inspect.signature(METHODS[method].heatmaps).parameters
                                     for name in options)


# -- the rows ------------------------------------------------------------------------------
def floor_rows(model, layer, batch, repeats):
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)
    tx = keras.ops.convert_to_tensor(x)
    floor = make_floor(model, layer)
    first = {"floor": first_call(lambda: floor(tx))}
    floor_row = Row("floor", lambda: floor(tx))
    rows, targets = [floor_row], {}
    for label, method, options, target in FLOOR_ROWS:
        if not supported(method, options):
            continue
        cam = build_engine(model, method)
        call = lambda cam=cam, options=options: cam.heatmaps(x, targets=TARGET, batch_size=batch, **options)  # noqa: E731
        first[label] = first_call(call)
        rows.append(Row(label, call, floor_row))
        targets[label] = target
    time_rows(rows, repeats)
    return [(row.label, batch, ms(row), ms(floor_row), statistics.median(row.ratios), targets[row.label],
             first[row.label]) for row in rows[1:]]


def perturbation_rows(model, layer, repeats, max_channels):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    channels = layer.output.shape[-1]
    count = min(max_channels or channels, channels)
    rng = np.random.default_rng(1)

    # Score-CAM: M masked inputs through the compiled model. The masks' values do not
    # change the time of a dense forward pass: random ones.
    score_floor = chunked(make_forward(model), x * rng.uniform(0, 1, (count, 224, 224, 1)).astype(np.float32))
    score = ScoreCAM(model, perturbation_batch=CHUNK, max_channels=max_channels)
    # Ablation-CAM: M ablated copies of the layer's output through the rest of the model.
    body, head = split(model, layer)
    activations = keras.ops.convert_to_numpy(body(x, training=False))
    ablated = np.repeat(activations, count, axis=0)
    ablated[np.arange(count), ..., rng.permutation(channels)[:count]] = 0
    ablation_chunks, body_forward, tx = chunked(make_forward(head), ablated), make_forward(body), keras.ops.convert_to_tensor(x)

    def ablation_floor():  # the one pass to the layer, then the ablated passes from it
        block(body_forward(tx))
        ablation_chunks()

    ablation = AblationCAM(model, perturbation_batch=CHUNK, max_channels=max_channels)

    calls = {
        "scorecam floor": score_floor,
        "scorecam": lambda: score.heatmaps(x, targets=TARGET),
        "ablationcam floor": ablation_floor,
        "ablationcam": lambda: ablation.heatmaps(x, targets=TARGET),
    }
    first = {label: first_call(call) for label, call in calls.items()}
    floors = {"scorecam": Row("scorecam floor", score_floor), "ablationcam": Row("ablationcam floor", ablation_floor)}
    rows = [floors["scorecam"], Row("scorecam", calls["scorecam"], floors["scorecam"]),
            floors["ablationcam"], Row("ablationcam", calls["ablationcam"], floors["ablationcam"])]
    time_rows(rows, repeats)
    return [(f"{row.label} M={count}", 1, ms(row), ms(row.floor), statistics.median(row.ratios), 1.2,
             first[row.label]) for row in rows if row.floor is not None], count, channels, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes. Default: 1 32")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds, floor rows. Default: 7")
    parser.add_argument(
        "--perturbation-repeats", type=int, default=3, help="timed rounds, Score-CAM and Ablation-CAM. Default: 3"
    )
    parser.add_argument(
        "--max-channels", type=int, default=64,
        help="Score-CAM's and Ablation-CAM's max_channels; 0 for every channel (long). Default: 64",
    )
    parser.add_argument("--skip-perturbations", action="store_true", help="only the floor rows")
    args = parser.parse_args(argv)
    # Random weights leave some maps empty; that is no concern of a timing.
    warnings.filterwarnings("ignore", category=EmptyMapWarning)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    print(
        f"backend {BACKEND} (keras {keras.__version__}, {module} {__import__(module).__version__}); "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load average "
        f"{os.getloadavg()[0]:.1f}; median of {args.repeats} warm calls ({args.perturbation_repeats} for "
        "Score-CAM and Ablation-CAM)"
    )
    print(f"{'model':<12} {'method':<26} {'batch':>5} {'ours':>10} {'floor':>11} {'ratio':>7} {'target':>6}"
          "   first call")
    for key in args.models:
        title, builder, expected = MODELS[key]
        model = builder(weights=None)
        layer = find_layer(model).layer
        if layer.name != expected:
            raise RuntimeError(f"{title}: automatic layer is {layer.name!r}, expected {expected!r}")
        results = []
        for batch in args.batches:
            results += floor_rows(model, layer, batch, args.repeats)
        if not args.skip_perturbations:
            rows, count, channels, first = perturbation_rows(
                model, layer, args.perturbation_repeats, args.max_channels or None)
            results += rows
        for label, batch, ours, floor, ratio, target, first_s in results:
            goal = "-" if target is None else f"{target}x"
            print(f"{title:<12} {label:<26} {batch:>5} {ours:>8.1f}ms {floor:>9.1f}ms {ratio:>6.3f}x {goal:>6}"
                  f"   {first_s:.2f} s", flush=True)
        if not args.skip_perturbations:
            print(f"{'':<12} Score-CAM: {count} of {channels} channels, {math.ceil(count / CHUNK)} batches of "
                  f"{CHUNK} masked inputs ({first['scorecam floor']:.2f} s first); Ablation-CAM: {count} of "
                  f"{channels} channels, one pass to the layer and {math.ceil(count / CHUNK)} batches of {CHUNK} "
                  f"ablated outputs through the rest of the model ({first['ablationcam floor']:.2f} s first)", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
