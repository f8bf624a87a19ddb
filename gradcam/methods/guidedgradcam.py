"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

from __future__ import annotations

import math

import keras
from keras import ops

from gradcam.capture import capture, layer_calls
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

    From the same target scores ``y_c``:

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
    (pytorch-grad-cam augments the Grad-CAM map only).

    The cost is one forward and one backward pass when the model has one output and no
    guided ReLU runs after the layer (a classifier's usual head, pooling and dense layers,
    after its last ReLU): the gradient at the layer depends only on what follows it, so
    the guided pass gives Grad-CAM's gradients too, read by one zero probe that covers the
    layer's output and the input. Where a ReLU runs after the layer (a VGG's dense head),
    or the layer's size is not fixed, or the map is of a layer's input (``"input of
    <name>"``), the two gradients differ, and where the model has several outputs the
    explained one may not depend on the layer (an error the single probe cannot see): a
    second forward and backward pass computes the guided gradients.
    :attr:`backward_passes` says which.

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

        self._sizes = self._one_pass_sizes(model)

    @property
    def backward_passes(self) -> int:
        """How many forward and backward passes a batch costs: 1 when the model has one
        output and no guided ReLU runs after the layer, else 2 (see above)."""
        return 1 if self._sizes else 2

    def _one_pass_sizes(self, model):
        """``(input size, layer size)`` per image, for the one joint probe of the single
        pass, when the model has one output, no guided ReLU runs after the layer and both
        sizes are fixed; else ``None``. The ReLUs' calls are ordered by one symbolic
        trace: a ReLU called after the layer may not depend on it (a parallel branch), but
        none called after it is sure not to. With several outputs, the explained one may
        not depend on the layer, which the joint probe cannot tell (its input part always
        has a gradient): the two passes say so (:class:`ArgumentError`)."""
        layer = self._layer_ref()
        relus = [relu for relu, _ in find_relus(model)]
        calls = layer_calls(model, [layer] + relus)
        at = [i for i, (called, _) in enumerate(calls) if called is layer]
        if (self._of_input or len(keras.tree.flatten(model.outputs)) != 1 or len(at) != 1
                or any(called is not layer for called, _ in calls[at[0] + 1:])):
            return None
        sizes = (self._input_shape, calls[at[0]][1][1:])
        if any(not isinstance(size, int) for shape in sizes for size in shape):
            return None
        return tuple(math.prod(shape) for shape in sizes)

    def _one_pass(self, call, x, score, many, eigen_smooth, differentiable):
        """Grad-CAM's result, with the guided gradients ``(K, N, H, W, C)``, from one
        guided pass: one zero probe ``(N, 1, 1, input + layer)``, split between the input
        and the layer's output; the guided ReLUs are installed first, so the layer's own
        ReLU, if it is one, is guided below the probe."""
        model, _, _ = self._alive()
        relus = find_relus(model)

        def forward(probe):
            joint = probe(ops.zeros((ops.shape(x)[0], 1, 1, sum(self._sizes)), "float32"))
            of_input, of_layer = ops.split(joint, [self._sizes[0]], axis=-1)

            def layer_probe(tensor):
                return ops.cast(ops.reshape(of_layer, ops.shape(tensor)), tensor.dtype)

            with capture(None, None, guided_relus=relus):
                return self._run_model(call, x + ops.cast(ops.reshape(of_input, ops.shape(x)), x.dtype), score,
                                       layer_probe)

        gradients, aux = self._backend.probe_gradients(forward, many, differentiable=differentiable)
        if gradients is None:  # the scores do not depend on the probe: _forward_from raises
            return self._forward_from(x, None, None, aux, eigen_smooth), None
        of_input, of_layer = gradients[..., : self._sizes[0]], gradients[..., self._sizes[0]:]
        targets = ops.shape(gradients)[0]
        of_layer = ops.reshape(of_layer, (targets,) + tuple(ops.shape(aux[-1])))
        guided = ops.reshape(of_input, (targets,) + tuple(ops.shape(x)))
        return self._forward_from(x, of_layer, None, aux, eigen_smooth), ops.cast(guided, "float32")

    def _guided_gradients(self, call, x, score, many, differentiable):
        """``d y / d x`` ``(K, N, H, W, C)`` through the model with guided ReLUs."""
        model, _, softmax = self._alive()
        relus = find_relus(model)

        def forward(probe):
            with capture(None, softmax, guided_relus=relus) as recording:
                outputs = call(x + probe(x))
            y, _ = score(*self._scores(recording, outputs))
            return ops.sum(y, axis=0), ()

        gradients, _ = self._backend.probe_gradients(forward, many, differentiable=differentiable)
        return ops.cast(gradients, "float32")

    def _forward(self, call, x, score, many, eigen_smooth=False, differentiable=False):
        if self.backward_passes == 1:
            (maps, *rest), guided = self._one_pass(call, x, score, many, eigen_smooth, differentiable)
        else:
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
