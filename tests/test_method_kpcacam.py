"""KPCA-CAM against maps computed by hand and by a numpy reference. Run once per KERAS_BACKEND."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny import assert_map
from helpers.method_models import make_pointwise

from gradcam.methods import KPCACAM

# The pointwise model: activations = the input. Positions in the order (0, 0), (0, 1),
# (1, 0), (1, 1); centred points (A - mean A): (2, 3), (-4, -1), (2, -1), (0, -1).
A = np.stack([[[7, 1], [7, 5]], [[8, 4], [4, 4]]], axis=-1).astype(np.float32)[None]
W = np.array([[1, 0], [0, 1]], np.float32)


def reference(activations, kernel, gamma):
    """scikit-learn's KernelPCA(n_components=1) of one image's centred activations,
    written out with numpy: kernel, centring, top eigenpair, sign, ReLU, / max."""
    x = activations.reshape(-1, activations.shape[-1]).astype(np.float64)
    x = x - x.mean(axis=0)
    gamma = 1 / x.shape[1] if gamma is None else gamma
    dots = x @ x.T
    squares = (x * x).sum(axis=1)
    k = {
        "sigmoid": lambda: np.tanh(gamma * dots + 1),
        "rbf": lambda: np.exp(-gamma * (squares[:, None] + squares[None] - 2 * dots)),
        "poly": lambda: (gamma * dots + 1) ** 3,
        "cosine": lambda: dots / np.sqrt(squares[:, None] * squares[None]),
    }[kernel]()
    n = len(k)
    one = np.full((n, n), 1 / n)
    centred = k - one @ k - k @ one + one @ k @ one
    values, vectors = np.linalg.eigh(centred)
    top = vectors[:, -1] * np.sign(vectors[np.argmax(np.abs(vectors[:, -1])), -1])
    projection = np.maximum(top * np.sqrt(values[-1]), 0).reshape(activations.shape[:2])
    return (projection / projection.max()).astype(np.float32)


def test_kpcacam_linear_kernel_is_pca_with_scikit_learns_sign():
    # Linear kernel: the kernel matrix of centred points is already centred, its top
    # eigenvector is X v / s with v = [2, 1] / sqrt(5) (see test_method_eigencam.py), and
    # the coordinates are X v = [7, -9, 3, -1] / sqrt(5). Sign: the entry of largest
    # magnitude (-9) made positive: [-7, 9, -3, 1]. ReLU, / max: [[0, 1], [0, 1/9]]
    # (Eigen-CAM's sign rule gives the other sign here).
    maps = KPCACAM(make_pointwise(W), layer="conv", kernel="linear").heatmaps(A, targets=[0, 1])
    assert_map(maps[0, 0], np.array([[0, 1], [0, 1 / 9]], np.float32))
    assert_map(maps[0, 1], np.array([[0, 1], [0, 1 / 9]], np.float32))


@pytest.mark.parametrize("kernel, gamma", [("sigmoid", None), ("sigmoid", 0.1), ("rbf", 0.05), ("poly", 0.3), ("cosine", None)])
def test_kpcacam_against_a_numpy_reference(kernel, gamma):
    images = np.concatenate([A, A[:, ::-1] * 2 - 3, np.random.default_rng(0).normal(0, 2, (1, 2, 2, 2))])
    cam = KPCACAM(make_pointwise(W), layer="conv", kernel=kernel, gamma=gamma)
    maps = cam.heatmaps(images.astype(np.float32), batch_size=2)
    for n in range(3):
        assert_map(maps[n, 0], reference(images[n], kernel, gamma), atol=1e-4)


def test_kpcacam_default_is_the_sigmoid_kernel_with_gamma_one_over_channels(no_backward_pass):
    cam = KPCACAM(make_pointwise(W), layer="conv")
    assert (cam.kernel, cam.gamma) == ("sigmoid", None)
    assert_map(cam.heatmaps(A)[0, 0], reference(A[0], "sigmoid", 0.5), atol=1e-4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"kernel": "gaussian"}, r"kernel must be one of 'sigmoid', 'rbf', 'poly', 'linear', 'cosine'; got 'gaussian'"),
        ({"gamma": 0}, r"gamma must be a positive number or None \(1 / channels\); got 0"),
        ({"gamma": "1"}, r"gamma must be a positive number or None \(1 / channels\); got '1'"),
        ({"gamma": float("nan")}, r"gamma must be a positive number or None \(1 / channels\); got nan"),
    ],
)
def test_kpcacam_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        KPCACAM(make_pointwise(W), layer="conv", **options)
