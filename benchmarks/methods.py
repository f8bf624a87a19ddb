"""Each class-activation method against the floor that bounds it.

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/methods.py                      # both models, batch 1 and 32
    python benchmarks/methods.py --quick              # the short run (see below)
    python benchmarks/methods.py --models mobilenet_v2 --batches 32 --methods hirescam layercam fem
    KERAS_BACKEND=jax python benchmarks/methods.py --models mobilenet_v2 --batches 1

For each model (``keras.applications`` ResNet50 / MobileNetV2 with ``weights=None``, so
nothing is downloaded) and its automatic layer (``conv5_block3_out`` / ``out_relu``), in
one process:

* at each batch size of ``--batches`` (1 and 32), every method that needs no perturbation
  against a floor (:mod:`backends`: the model split at a layer, forward, then backward to
  that layer for one class score; compiled where the backend compiles):

  - the gradient methods against the floor at the automatic layer. Targets: at most 1.3x;
    2.5x for Shapley-CAM (one more backward pass, through the first); 6.5x for Grad-CAM
    with ``aug_smooth`` (six augmented copies of each image in one call);
  - Shapley-CAM where its Hessian term is not zero ("shapleycam output, earlier
    layer"): at the layer before the last block (``conv5_block2_out`` / ``block_16_project_BN``),
    explaining the softmax output (``score="output"``), so that the score is not linear
    in the layer's output (convolutions, ReLUs and a softmax after it; at the automatic
    layer, the logit after a pooling and a dense layer is linear in it and ``H A = 0``),
    against the floor at that layer (which differentiates the same softmax output). The
    run prints how far its maps are from Grad-CAM's there: not zero;
  - FullGrad and Guided Grad-CAM (where this checkout has them), whose backward pass
    reaches the input, against the floor to the input (forward, then backward to the
    image). Target: 1.3x for both: FullGrad makes one forward and backward pass, and so
    does Guided Grad-CAM where no ReLU follows the layer (both models here; its guided
    pass gives Grad-CAM's gradients too). FullGrad's backward pass costs what the
    floor's does (its gradients are read where the pass computes them); its extra is
    two reads of every convolution's and normalisation's output gradient after it (each
    channel's least and greatest ``|g|``, then the weighted channel sum as a matrix
    product), 6.7 million values per image on MobileNetV2, whose backward pass is itself
    mostly passes over activations of that size. On TensorFlow on the CPU each layer's
    reads are one XLA computation, one image at a time so that the second read finds the
    image in the cache: MobileNetV2 at batch 32 about 1.24x the floor (1.44x with the
    whole batch at once, whose second read came from memory);
  - the methods that need no gradients (Eigen-CAM, KPCA-CAM, FEM, Random-CAM) run no
    backward pass; their ratios to the floor at the automatic layer are shown beside them;
* at batch 1, Score-CAM against its own floor: ``M`` masked inputs, made beforehand,
  through the model in batches of ``perturbation_batch`` (compiled; one class score
  kept). Target: at most 1.2x. ``M`` is ``--max-channels``, so that the run stays
  short: every channel would be 2048 (ResNet50) or 1280 (MobileNetV2) full forward
  passes, for the same ratio;
* at batch 1, Ablation-CAM with ``max_channels=M`` against its own floor: one
  compiled pass of the model up to the layer, then ``M`` ablated copies of the layer's
  output, made beforehand, through the rest of the model in batches of
  ``perturbation_batch`` (compiled). Target: at most 1.2x.

Random weights: a random MobileNetV2's features at its last layers are of the order of
1e-12, so its softmax is flat (every probability 0.001) and Shapley-CAM's Hessian term
vanishes in float32. Before anything is timed, each model's final dense kernel is scaled
so that the logits of the benchmark's images have a standard deviation of 4 (a change of
values, not of the computation: no timing moves).

Every call is warm (the first call, its compilation included, is timed once, then
``--warmup`` more calls); the calls are interleaved, each round calling every row once in
a rotated order, and a row's ratio is the median over rounds of (its time / its floor's
time in the same round), so that load from other processes hits both sides of a ratio
alike. Two ratios are printed: of the wall-clock times, and of the CPU times (the
process's CPU seconds during the call, all threads): on cores shared with other
processes, the CPU time is the work done and moves far less with load; on a quiet
machine the two agree. The load average is printed at the start and the end.

The short run, ``--quick``: 3 rounds, 1 warm-up call, 2 rounds for Score-CAM and
Ablation-CAM. On 2 cores with nothing else running it takes about 4 minutes for both
models at batch 1 and 32 (ResNet50 at batch 32 is most of it); ``--models``,
``--batches`` and ``--methods`` cut it further.

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
import time
import warnings
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from backends import BACKEND, MODELS, TARGET, WARMUP, Row, block, first_call, make_floor, ms, split, time_rows  # noqa: E402

from gradcam.layers import find_layer  # noqa: E402
from gradcam.methods import METHODS, AblationCAM, ScoreCAM, build_engine  # noqa: E402
from gradcam.methods.base import EmptyMapWarning  # noqa: E402


class Spec(NamedTuple):
    """A row timed against a floor: ``engine`` options of :func:`build_engine`, ``call``
    options of ``heatmaps``; ``floor``: ``"layer"`` (the automatic layer), ``"hessian"``
    (:data:`HESSIAN_LAYERS`) or ``"input"``; ``target``: the ratio to reach, or ``None``."""

    label: str
    method: str
    engine: dict = {}
    call: dict = {}
    floor: str = "layer"
    target: float | None = 1.3


ROWS = (
    Spec("gradcam", "gradcam"),
    Spec("gradcam++", "gradcam++"),
    Spec("xgradcam", "xgradcam"),
    Spec("hirescam", "hirescam"),
    Spec("layercam", "layercam"),
    Spec("eigengradcam", "eigengradcam"),
    Spec("gradcamelementwise", "gradcamelementwise"),
    Spec("shapleycam", "shapleycam", target=2.5),
    Spec("shapleycam output, earlier layer", "shapleycam", {"score": "output"}, floor="hessian", target=2.5),
    Spec("fullgrad", "fullgrad", floor="input"),
    Spec("guidedgradcam", "guidedgradcam", floor="input"),
    Spec("eigencam", "eigencam", target=None),
    Spec("kpcacam", "kpcacam", target=None),
    Spec("fem", "fem", target=None),
    Spec("randomcam", "randomcam", target=None),
    Spec("gradcam aug_smooth", "gradcam", call={"aug_smooth": True}, target=6.5),
)
#: The layer of the row whose Shapley-CAM Hessian term is not zero: the input of each
#: model's last block, with convolutions, ReLUs and the softmax after it.
HESSIAN_LAYERS = {"resnet50": "conv5_block2_out", "mobilenet_v2": "block_16_project_BN"}
CHUNK = 32  # Score-CAM's and Ablation-CAM's perturbation_batch, and the floors' batch
#: The standard deviation that the benchmark images' logits are scaled to.
LOGIT_SPREAD = 4.0


# -- compiled passes, per backend ----------------------------------------------------------
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


def tensorflow_input_floor(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), "float32")

    @tf.function(input_signature=[spec], autograph=False)
    def floor(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(model(x, training=False)[:, TARGET])
        return tape.gradient(score, x)

    return floor


def jax_input_floor(model):
    import jax

    def pure(trainable, non_trainable, x):
        def score(images):
            outputs, _ = model.stateless_call(trainable, non_trainable, images, training=False)
            return outputs[:, TARGET].sum()

        return jax.grad(score)(x)

    jitted = jax.jit(pure)
    return lambda x: jitted(
        [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x
    )


def torch_input_floor(model):
    import torch

    def floor(x):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            score = model(x, training=False)[:, TARGET].sum()
            (gradient,) = torch.autograd.grad(score, x)
        return gradient

    return floor


def make_input_floor(model):
    """The model forward, then backward to its input, for one class score (compiled)."""
    return {"tensorflow": tensorflow_input_floor, "jax": jax_input_floor, "torch": torch_input_floor}[BACKEND](model)


def chunked(forward, batch):
    """A call that runs ``forward`` on ``batch`` in chunks of ``CHUNK``, made beforehand."""
    chunks = [keras.ops.convert_to_tensor(batch[i : i + CHUNK]) for i in range(0, len(batch), CHUNK)]

    def run():
        for chunk in chunks:
            block(forward(chunk))

    return run


def supported(spec):
    """Whether this checkout has the row's method and its ``heatmaps`` takes the row's
    options (rows of later versions are skipped)."""
    return spec.method in METHODS and all(
        name in inspect.signature(METHODS[spec.method].heatmaps).parameters for name in spec.call)


def images(count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 224, 224, 3)).astype(np.float32)


def spread_logits(model, x):
    """Scale the final dense layer's kernel so that the logits of ``x`` have a standard
    deviation of :data:`LOGIT_SPREAD` (random weights leave MobileNetV2's at ~1e-12)."""
    dense = model.layers[-1]
    features = keras.ops.convert_to_numpy(keras.Model(model.inputs[0], dense.input)(x, training=False))
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    spread = float(np.std(features.astype(np.float64) @ kernel))
    if spread > 0:
        dense.kernel.assign(kernel * np.float32(LOGIT_SPREAD / spread))


def hessian_term(model, layer):
    """The largest difference between Shapley-CAM's and Grad-CAM's maps at ``layer`` with
    ``score="output"`` (two images, their top class, whose maps are not empty): zero where
    the Hessian term is."""
    x = images(2, seed=7)
    maps = [build_engine(model, name, layer=layer, score="output").compute(x) for name in ("shapleycam", "gradcam")]
    empty = int(maps[0].empty.sum() + maps[1].empty.sum())
    return float(np.abs(maps[0].heatmaps - maps[1].heatmaps).max()), empty


# -- the rows ------------------------------------------------------------------------------
def floor_rows(model, key, batch, rounds, warmup, specs):
    x = images(batch, seed=batch)
    tx = keras.ops.convert_to_tensor(x)
    hessian_layer = HESSIAN_LAYERS[key]
    makers = {
        "layer": ("floor", lambda: make_floor(model, find_layer(model).layer)),
        "hessian": (f"floor at {hessian_layer}", lambda: make_floor(model, model.get_layer(hessian_layer))),
        "input": ("floor to input", lambda: make_input_floor(model)),
    }
    floors, first = {}, {}
    for kind in dict.fromkeys(["layer"] + [spec.floor for spec in specs]):
        label, make = makers[kind]
        function = make()
        first[label] = first_call(lambda function=function: function(tx))
        floors[kind] = Row(label, lambda function=function: function(tx))
    rows, targets = list(floors.values()), {}
    for spec in specs:
        layer = hessian_layer if spec.floor == "hessian" else None
        cam = build_engine(model, spec.method, layer=layer, **spec.engine)
        call = lambda cam=cam, spec=spec: cam.heatmaps(x, targets=TARGET, batch_size=batch, **spec.call)  # noqa: E731
        first[spec.label] = first_call(call)
        rows.append(Row(spec.label, call, floors[spec.floor]))
        targets[spec.label] = spec.target
    time_rows(rows, rounds, warmup)
    return [(row.label, batch, row, targets[row.label], first[row.label]) for row in rows if row.floor is not None]


def perturbation_rows(model, layer, rounds, warmup, max_channels):
    x = images(1)
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
    floors = {"scorecam": Row(f"{count} masked inputs", score_floor),
              "ablationcam": Row(f"{count} ablated passes", ablation_floor)}
    rows = [floors["scorecam"], Row("scorecam", calls["scorecam"], floors["scorecam"]),
            floors["ablationcam"], Row("ablationcam", calls["ablationcam"], floors["ablationcam"])]
    time_rows(rows, rounds, warmup)
    return [(f"{row.label} M={count}", 1, row, 1.2, first[row.label]) for row in rows if row.floor is not None], \
        count, channels, first


def selected(names):
    """The rows of :data:`ROWS` that ``--methods`` names (by label or method), that this
    checkout supports."""
    wanted = set(names or ())
    return [spec for spec in ROWS
            if (not wanted or spec.label in wanted or spec.method in wanted) and supported(spec)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes. Default: 1 32")
    parser.add_argument("--methods", nargs="+", metavar="NAME",
                        help="only these rows (method names or row labels), and Score-CAM and Ablation-CAM "
                             "only when named. Default: every row")
    parser.add_argument("--rounds", "--repeats", type=int, default=7, help="timed rounds, floor rows. Default: 7")
    parser.add_argument("--warmup", type=int, default=WARMUP,
                        help=f"warm calls after the first, before timing. Default: {WARMUP}")
    parser.add_argument(
        "--perturbation-repeats", type=int, default=3, help="timed rounds, Score-CAM and Ablation-CAM. Default: 3"
    )
    parser.add_argument(
        "--max-channels", type=int, default=64,
        help="Score-CAM's and Ablation-CAM's max_channels; 0 for every channel (long). Default: 64",
    )
    parser.add_argument("--skip-perturbations", action="store_true", help="no Score-CAM or Ablation-CAM rows")
    parser.add_argument("--quick", action="store_true",
                        help="the short run: 3 rounds, 1 warm-up call, 2 rounds for Score-CAM and Ablation-CAM")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.perturbation_repeats = 3, 1, 2
    specs = selected(args.methods)
    perturbations = not args.skip_perturbations and (
        not args.methods or {"scorecam", "ablationcam"} & set(args.methods))
    # Random weights leave some maps empty; that is no concern of a timing.
    warnings.filterwarnings("ignore", category=EmptyMapWarning)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    print(
        f"backend {BACKEND} (keras {keras.__version__}, {module} {__import__(module).__version__}); "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; median of {args.rounds} rounds after "
        f"{args.warmup} warm-up calls ({args.perturbation_repeats} rounds for Score-CAM and Ablation-CAM)"
    )
    print(f"{'model':<12} {'method':<34} {'batch':>5} {'ours':>10}  {'floor':<30} {'':>10} {'ratio':>7} "
          f"{'cpu ratio':>9} {'target':>6}   first call")
    start = time.perf_counter()
    for key in args.models:
        title, builder, expected = MODELS[key]
        model = builder(weights=None)
        layer = find_layer(model).layer
        if layer.name != expected:
            raise RuntimeError(f"{title}: automatic layer is {layer.name!r}, expected {expected!r}")
        spread_logits(model, images(4, seed=3))
        results = []
        for batch in args.batches if specs else ():
            results += floor_rows(model, key, batch, args.rounds, args.warmup, specs)
        if perturbations:
            rows, count, channels, first = perturbation_rows(
                model, layer, args.perturbation_repeats, args.warmup, args.max_channels or None)
            results += rows
        for label, batch, row, target, first_s in results:
            goal = "-" if target is None else f"{target}x"
            print(f"{title:<12} {label:<34} {batch:>5} {ms(row):>8.1f}ms  {row.floor.label:<30} "
                  f"{ms(row.floor):>8.1f}ms {statistics.median(row.ratios):>6.3f}x "
                  f"{statistics.median(row.cpu_ratios):>8.3f}x {goal:>6}   {first_s:.2f} s", flush=True)
        if any(spec.floor == "hessian" for spec in specs):
            difference, empty = hessian_term(model, HESSIAN_LAYERS[key])
            print(f"{'':<12} Shapley-CAM, score='output', layer {HESSIAN_LAYERS[key]!r}, top class of 2 images: "
                  f"its maps differ from Grad-CAM's by up to {difference:.3g} (the Hessian term; {empty} of 4 "
                  "maps empty)", flush=True)
        if perturbations:
            print(f"{'':<12} Score-CAM: {count} of {channels} channels, {math.ceil(count / CHUNK)} batches of "
                  f"{CHUNK} masked inputs ({first['scorecam floor']:.2f} s first); Ablation-CAM: {count} of "
                  f"{channels} channels, one pass to the layer and {math.ceil(count / CHUNK)} batches of {CHUNK} "
                  f"ablated outputs through the rest of the model ({first['ablationcam floor']:.2f} s first)",
                  flush=True)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
