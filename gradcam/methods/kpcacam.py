"""KPCA-CAM: the activations' first kernel principal component, with no gradients."""

from __future__ import annotations

from keras import ops

from gradcam.checks import ArgumentError
from gradcam.methods.base import Method
from gradcam.methods.registry import KERNELS


def _kernel_matrix(x, kernel: str, gamma: float):
    """The ``(M, P, P)`` kernel matrices of ``M`` sets of ``P`` points ``(M, P, C)``."""
    dots = ops.einsum("npc,nqc->npq", x, x)
    if kernel == "linear":
        return dots
    if kernel == "sigmoid":
        return ops.tanh(gamma * dots + 1)
    if kernel == "poly":
        return (gamma * dots + 1) ** 3
    squares = ops.sum(x * x, axis=-1)  # (M, P)
    if kernel == "rbf":
        distances = squares[:, :, None] + squares[:, None, :] - 2 * dots
        return ops.exp(-gamma * ops.maximum(distances, 0))
    norms = ops.sqrt(squares)
    norms = ops.where(norms > 0, norms, ops.ones_like(norms))  # zero rows stay zero
    return dots / (norms[:, :, None] * norms[:, None, :])


class KPCACAM(Method):
    """KPCA-CAM (Karmani et al., "KPCA-CAM: Visual Explainability of Deep Computer Vision
    Models using Kernel PCA", arXiv 2410.00267).

    No gradients, and the same map for every target. The activations of one image, ``h
    w`` points of ``C`` values, are centred (each channel's mean over the map
    subtracted); their ``(h w, h w)`` kernel matrix ``K`` is centred in feature space
    (``K - 1K/P - K1/P + 1K1/P^2``), and ``L`` is the points' coordinate on the first
    kernel principal component, ``u sqrt(lambda)`` for the top eigenpair of the centred
    ``K``; then ``L = ReLU(L)`` and ``L / max(L)``. As pytorch-grad-cam, which calls
    scikit-learn's ``KernelPCA(n_components=1, kernel=kernel, gamma=gamma)``; the kernels
    are scikit-learn's (:data:`~gradcam.methods.registry.KERNELS`), ``gamma=None`` meaning ``1 / C``.

    The eigenvector's sign is scikit-learn's rule: its entry of largest magnitude is
    positive. Cost: an eigendecomposition of an ``(h w, h w)`` matrix per image (196
    points at a 14x14 layer).

    Args:
        model: as for :class:`~gradcam.methods.base.Method`, as are ``layer``,
            ``score``, ``class_names``, ``preprocess``, ``reshape`` and ``weak_model``
            (keyword-only).
        kernel: one of :data:`~gradcam.methods.registry.KERNELS`. Defaults to ``"sigmoid"``.
        gamma: the kernel's coefficient for ``"sigmoid"``, ``"rbf"`` and ``"poly"``, a
            positive number; ``None`` for ``1 / C``. Defaults to ``None``.

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: an unknown ``kernel``; ``gamma`` is not a positive number or
            ``None``; the model, layer or score cannot be explained (see
            :class:`~gradcam.methods.base.Method`).
    """

    name = "kpcacam"
    uses_gradients = False
    principal_component = True

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, kernel: str = "sigmoid", gamma: float | None = None, *, weak_model: bool = False):
        if kernel not in KERNELS:
            raise ArgumentError("kernel", f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {kernel!r}.")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0
                                  or gamma == float("inf")):
            raise ArgumentError("gamma", f"gamma must be a positive number or None (1 / channels); got {gamma!r}.")
        super().__init__(model, layer, score, class_names, preprocess, reshape, weak_model=weak_model)
        self.kernel = kernel
        self.gamma = None if gamma is None else float(gamma)

    def element_map(self, capture):
        activations = capture.activations  # (N, h, w, C)
        _, h, w, c = activations.shape
        flat = ops.reshape(activations, (-1, h * w, c))
        centred = flat - ops.mean(flat, axis=1, keepdims=True)
        kernel = _kernel_matrix(centred, self.kernel, 1 / c if self.gamma is None else self.gamma)
        kernel = (kernel - ops.mean(kernel, axis=1, keepdims=True) - ops.mean(kernel, axis=2, keepdims=True)
                  + ops.mean(kernel, axis=(1, 2), keepdims=True))
        values, vectors = ops.eigh(kernel)  # eigenvalues in ascending order
        top = vectors[:, :, -1]  # (N, P)
        # scikit-learn's sign rule: the entry of largest magnitude is positive.
        largest = ops.take_along_axis(top, ops.argmax(ops.abs(top), axis=1)[:, None], axis=1)
        top = ops.where(largest < 0, -top, top)
        projection = top * ops.sqrt(ops.maximum(values[:, -1:], 0))
        # One map per image, the same for each of the K targets.
        repeat = ops.zeros_like(ops.transpose(capture.scores))[:, :, None, None]  # (K, N, 1, 1)
        return ops.reshape(projection, (-1, h, w))[None] + repeat
