"""FullGrad against its floor: the model's compiled forward and backward pass to the input.

Run once per backend::

    python benchmarks/fullgrad.py
    KERAS_BACKEND=jax python benchmarks/fullgrad.py --models mobilenet_v2 --batches 1

FullGrad needs the gradient of the score with respect to the input and to the output of
every convolution and batch normalisation with a bias: one forward and one backward pass
through the whole model (Grad-CAM's backward pass stops at its layer, near the output).
So its floor is the model's forward pass and the backward pass of one class score to the
input, compiled where the backend compiles (a ``tf.function``; a ``jax.jit`` of the
gradient of ``stateless_call``; PyTorch eagerly). For each model (``keras.applications``
ResNet50 / MobileNetV2 with ``weights=None``, nothing downloaded) and batch size, the
rows are ``FullGrad.heatmaps`` and, for comparison, ``GradCAM.heatmaps`` (its own floor is
in ``benchmarks/methods.py``), on the same images; calls interleaved as in
``benchmarks/backends.py``, each ratio the median over rounds of the row's time over the
floor's in the same round.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from backends import BACKEND, MODELS, TARGET, Row, first_call, ms, time_rows  # noqa: E402

from gradcam.methods import FullGrad, GradCAM  # noqa: E402


def tensorflow_floor(model):
    import tensorflow as tf

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(model(x, training=False)[:, TARGET])
        return tape.gradient(score, x)

    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), "float32")
    return tf.function(run, input_signature=[spec], autograph=False)


def jax_floor(model):
    import jax

    def score(x, trainable, non_trainable):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return outputs[:, TARGET].sum()

    gradient = jax.jit(jax.grad(score))
    return lambda x: gradient(x, [v.value for v in model.trainable_variables],
                              [v.value for v in model.non_trainable_variables])


def torch_floor(model):
    import torch

    def run(x):
        x = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(model(x, training=False)[:, TARGET].sum(), x)
        return gradient

    return run


def bench(key, batch, repeats):
    title, builder, _ = MODELS[key]
    model = builder(weights=None)
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)
    tensor = keras.ops.convert_to_tensor(x)
    floor = {"tensorflow": tensorflow_floor, "jax": jax_floor, "torch": torch_floor}[BACKEND](model)
    fullgrad, gradcam = FullGrad(model), GradCAM(model)
    first = first_call(lambda: fullgrad.heatmaps(x, [TARGET], batch_size=batch))
    floor_row = Row("floor: forward + backward to the input", lambda: floor(tensor))
    rows = [floor_row,
            Row("FullGrad.heatmaps", lambda: fullgrad.heatmaps(x, [TARGET], batch_size=batch), floor_row),
            Row("GradCAM.heatmaps", lambda: gradcam.heatmaps(x, [TARGET], batch_size=batch), floor_row)]
    time_rows(rows, repeats)
    return title, fullgrad.layer, first, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"keras {keras.__version__} on {BACKEND}; load average {os.getloadavg()[0]:.1f}")
    for key in args.models:
        for batch in args.batches:
            title, layers, first, rows = bench(key, batch, args.repeats)
            print(f"{title}, batch {batch} ({layers}); FullGrad's first call {first:.1f} s")
            for row in rows:
                ratio = f"{np.median(row.ratios):.2f}x" if row.ratios else ""
                print(f"  {row.label:<40} {ms(row):9.1f} ms  {ratio}")


if __name__ == "__main__":
    main()
