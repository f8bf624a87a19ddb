"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

from __future__ import annotations

import keras
from keras import ops

from gradcam.capture import capture
from gradcam.checks import ArgumentError
from gradcam.guided_relu import find_relus
from gradcam.methods.gradcam import GradCAM


def _by_peak(values, axis):
    """``values / max(|values|)`` over ``axis``; all-zero values stay zero."""
    peaks = ops.max(ops.abs(values), axis=axis, keepdims=True)
    return values / ops.where(peaks > 0, peaks, ops.ones_like(peaks))


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM (Selvaraju et al., arXiv 1610.02391, section 3.1), with guided
    backpropagation (Springenberg et al., arXiv 1412.6806).

    Two backward passes from the same target scores ``y_c``:

    1. Grad-CAM's map ``L`` at the layer (:class:`~gradcam.methods.gradcam.GradCAM`,
       ``ReLU`` and ``L / max(L)``; ``eigen_smooth`` applies here), resized to the
       input's ``(H, W)`` by bilinear interpolation (half-pixel centres, as OpenCV's
       ``cv2.resize`` that pytorch-grad-cam uses), less its minimum: ``U = resize(L) -
       min(resize(L))``, which is zero where the resized map is lowest, as
       pytorch-grad-cam's scaling of its map after resizing makes it;
    2. guided backpropagation: the gradient ``B = d y_c / d x`` of the score with respect
       to the input, through a second forward pass whose ReLUs pass back only positive
       gradients where their input was positive (:mod:`gradcam.guided_relu`: ReLU
       layers, ``Activation("relu")``, ReLUs fused into a layer's ``activation=``, and
       ReLU6; not leaky ReLUs). The model is not changed: the ReLUs are wrapped for the
       calling thread during the trace only (:func:`gradcam.capture.capture`).

    The per-pixel map is ``P = B * U`` (each channel of ``B`` times the resized map),
    divided by its largest absolute value, so that it lies in [-1, 1] (all zero stays
    zero): :attr:`Result.pixels <gradcam.methods.base.Result>` ``(N, K, H, W, C)`` and
    :attr:`TargetExplanation.pixels <gradcam.TargetExplanation>` ``(H, W, C)``. The heatmap
    is its magnitude summed over channels, ``M = sum_c |P_c|``, divided by ``max(M)``:
    ``(N, K, H, W)`` in [0, 1], at the input's resolution (not the layer's).
    :func:`gradcam.format_as_image` draws ``P`` as pytorch-grad-cam's ``deprocess_image``
    does (:func:`gradcam.render.pixels_to_image`).

    As pytorch-grad-cam's ``GuidedBackpropReLUModel`` times its Grad-CAM map (its
    ``cam.py``), up to the scale of ``P`` (pytorch-grad-cam leaves it in gradient units):
    resizing is linear, so subtracting the minimum of ``L`` before resizing, as
    pytorch-grad-cam also does, changes ``U`` by a constant that the subtraction after
    it removes. Its guided pass explains the model's output; here
    ``y_c`` is the pre-softmax logit when the model ends in a softmax, as for Grad-CAM.
    With ``aug_smooth``, ``P`` and ``M`` are each the average over the augmented copies
    (pytorch-grad-cam augments the Grad-CAM map only). The cost is about two forward and
    backward passes (the guided backward pass reaches the input).

    Args:
        model: a built Keras 3 image model with at least one ReLU (see above).
        layer, score, class_names, preprocess, reshape, weak_model: as for
            :class:`~gradcam.methods.base.Method` (``layer`` is that of the Grad-CAM map).

    Raises:
        TypeError: ``model`` is not a Keras model; ``preprocess`` is not callable.
        ValueError: the model has no ReLU to guide, or, on TensorFlow, takes images of
            any size (an :class:`~gradcam.checks.ArgumentError`, ``argument="model"``);
            the model, layer or score cannot be explained.

    Example:
        >>> cam = gradcam.GuidedGradCAM(model, preprocess=resnet50.preprocess_input)
        >>> result = cam.compute(photos, targets=["tiger cat"])
        >>> result.pixels.shape, result.heatmaps.shape
        ((8, 1, 224, 224, 3), (8, 1, 224, 224))
    """

    name = "guidedgradcam"
    makes_pixels = True

    def __init__(self, model, layer=None, score: str = "auto", class_names=None, preprocess=None,
                 reshape=None, *, weak_model: bool = False):
        super().__init__(model, layer, score, class_names, preprocess, reshape, weak_model=weak_model)
        if not find_relus(model):
            raise ArgumentError(
                "model",
                f"Model {model.name!r} has no ReLU to guide; guided Grad-CAM needs ReLUs: ReLU "
                "layers (ReLU6 too), Activation('relu') or layers with activation='relu' or "
                "'relu6' (leaky ReLUs, GELU, SiLU and ops.relu inside a layer's own call are not "
                "guided). Use method='gradcam' for this model.",
            )
        if keras.backend.backend() == "tensorflow" and None in self._input_shape[:2]:
            # keras.ops.image.resize takes a size of Python integers, which a traced
            # TensorFlow function does not know for an input of any size
            raise ArgumentError(
                "model",
                f"Model {model.name!r} takes images of any size {self._input_shape}; guided Grad-CAM "
                "on TensorFlow needs a model with a fixed input height and width (JAX and PyTorch "
                "take either).",
            )

    def _guided_gradients(self, call, x, score, many, differentiable):
        """``d y / d x`` ``(K, N, H, W, C)`` through the model with guided ReLUs."""
        model, _, softmax = self._alive()
        relus = find_relus(model)

        def forward(probe):
            with capture(None, softmax, guided_relus=relus) as recording:
                outputs = call(x + probe(x))
            y, _ = score(*self._scores(recording, outputs))
            return ops.sum(y, axis=0), ()

        gradients_of = self._backend.probe_gradients
        gradients, _ = gradients_of(forward, many, differentiable=True) if differentiable else gradients_of(forward, many)
        return ops.cast(gradients, "float32")

    def _forward(self, call, x, score, many, eigen_smooth=False, differentiable=False):
        maps, *rest = super()._forward(call, x, score, many, eigen_smooth, differentiable)
        guided = self._guided_gradients(call, x, score, many, differentiable)  # (K, N, H, W, C)
        size = tuple(guided.shape[2:4])
        cams = ops.image.resize(ops.transpose(maps, (0, 2, 3, 1)), size, interpolation="bilinear",
                                data_format="channels_last")  # (N, H, W, K)
        cams = cams - ops.min(cams, axis=(1, 2), keepdims=True)
        pixels = ops.transpose(guided, (1, 0, 2, 3, 4)) * ops.transpose(cams, (0, 3, 1, 2))[..., None]
        pixels = _by_peak(pixels, (2, 3, 4))
        heatmaps = _by_peak(ops.sum(ops.abs(pixels), axis=-1), (2, 3))
        return (heatmaps, *rest[:4], pixels, *rest[4:])
