"""Every method gradcam shares with pytorch-grad-cam 1.5.7, map by map, on shared weights.

Run with the Keras backend to check (TensorFlow by default)::

    python benchmarks/compare_pytorch_grad_cam.py
    KERAS_BACKEND=jax python benchmarks/compare_pytorch_grad_cam.py

One small convolutional network is built twice with the same weights: in Keras (run on
the backend in use) and in PyTorch (``torch.nn``, for pytorch-grad-cam). Three blocks of
3x3 convolution (with bias), batch normalisation (epsilon 1e-3 in both) and an
activation (ReLU, ReLU, then SiLU, so that the score is not piecewise linear in the
explained layer and Shapley-CAM's Hessian term is not zero), global average pooling and
a dense layer of 5 classes with no softmax. Every convolution keeps the input's 10x10
resolution ("same" padding, stride 1), so pytorch-grad-cam's resize of its maps to the
input is the identity and the maps compare at the layer's resolution. The explained
layer is the second block's ReLU.

For each method, for 3 random images and each of the 5 classes as the target,
pytorch-grad-cam's map is compared with gradcam's after the same final scaling
(pytorch-grad-cam's ``scale_cam_image`` subtracts the map's minimum before dividing by
its maximum; gradcam divides by the maximum): the largest absolute difference over all
maps is printed, with how many of the 15 maps are all zero (a row whose maps are all
empty would agree vacuously). Where the maths is deterministic it should be below 1e-4.

* The SVD's sign (``eigencam``, ``eigengradcam``) is arbitrary in pytorch-grad-cam (it
  is whatever LAPACK returns); gradcam fixes it by a rule. pytorch-grad-cam's map is
  computed with both signs (the singular vectors negated once) and the closer one is
  used; the "note" column says which.
* ``eigen_smooth`` rows: the same sign rule as Eigen-CAM's; ``aug_smooth`` rows: the
  six maps are scaled before they are averaged, by their maximum in gradcam and by their
  minimum and maximum in pytorch-grad-cam, which agree where every map's minimum is 0.
* ``guidedgradcam`` is compared as pytorch-grad-cam's ``cam.py`` makes it: its
  ``GuidedBackpropReLUModel`` (one image and class at a time) times its Grad-CAM map,
  channel by channel; both per-pixel maps are divided by their largest absolute value
  (gradcam's :attr:`~gradcam.TargetExplanation.pixels`; pytorch-grad-cam leaves the
  product in gradient units), and the "note" column gives the largest difference of the
  heatmaps, the channel-summed magnitudes (``sum_c |P_c| / max``).
* ``fullgrad`` reads the input and every convolution and batch normalisation, at the
  input's resolution (no layer is explained; the maps are compared at the images' size);
  the ``strided`` rows run it on the network with a strided first convolution
  (:func:`strided_networks`), where the layers' terms are resized to the input. At 10 x 10
  pixels its ``eigen_smooth`` works on an eighth of the input, 1 x 1, and is all zero in
  both, so that row runs on the strided network alone.
* ``randomcam`` draws its weights with numpy's global generator in pytorch-grad-cam;
  gradcam's ``seed=`` draws them from ``numpy.random.RandomState(seed)``, the same
  stream, so each image is compared alone after ``numpy.random.seed(seed)``.

pytorch-grad-cam is not a dependency of any extra: its own requirements (torchvision,
opencv) would bring another build of torch. Install it beside the CPU torch without
them: ``pip install --no-deps grad-cam==1.5.7 ttach==0.0.3 opencv-python-headless
scikit-learn threadpoolctl``.

pytorch-grad-cam imports torchvision (for image helpers this comparison does not use).
Where no torchvision build matches the installed torch (the registries' torchvision
0.28.0 for torch 2.13.0 is a CUDA build that does not load on the CPU build of torch),
stand-in modules that raise when used take its place, and the note says so.

Install with ``pip install -e .[bench]`` (grad-cam==1.5.7 and what it imports; see
pyproject.toml).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import types
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's progress bars

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradcam.methods import METHODS  # noqa: E402
from gradcam.methods.base import EmptyMapWarning  # noqa: E402

SIZE = 10
CHANNELS = (3, 8, 16, 12)
CLASSES = 5
IMAGES = 3
LAYER = "relu2"
TOLERANCE = 1e-4
SEED = 7


def _stand_in_torchvision() -> str:
    """Import torchvision, or put modules in its place that raise when used."""
    try:
        import torchvision  # noqa: F401

        return ""
    except (ImportError, RuntimeError) as error:
        reason = str(error).splitlines()[0]
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not available; this comparison does not use it.")

    modules = {name: types.ModuleType(name) for name in
               ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops")}
    for module in modules.values():
        module.__getattr__ = lambda attribute: unavailable
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision"].ops = modules["torchvision.ops"]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    sys.modules.update(modules)
    return f"torchvision stood in for ({reason})"


# -- the shared network --------------------------------------------------------------------
def make_weights(seed: int = SEED) -> list[dict]:
    """Random weights for the three blocks and the dense layer, in Keras' layouts."""
    rng = np.random.default_rng(seed)
    blocks = []
    for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:]):
        blocks.append({
            "kernel": rng.normal(0, (2 / (9 * cin)) ** 0.5, (3, 3, cin, cout)).astype(np.float32),
            "bias": rng.normal(0, 0.1, cout).astype(np.float32),
            "gamma": rng.uniform(0.5, 1.5, cout).astype(np.float32),
            "beta": rng.normal(0, 0.2, cout).astype(np.float32),
            "mean": rng.normal(0, 0.2, cout).astype(np.float32),
            "variance": rng.uniform(0.5, 1.5, cout).astype(np.float32),
        })
    dense = {
        "kernel": rng.normal(0, 0.5, (CHANNELS[-1], CLASSES)).astype(np.float32),
        "bias": rng.normal(0, 0.1, CLASSES).astype(np.float32),
    }
    return blocks + [dense]


def keras_model(weights, size=SIZE, first_stride=1):
    """The network in Keras; ``first_stride=2``: the first convolution strided, with no
    padding (as PyTorch's ``padding=0``: "same" pads otherwise at stride 2)."""
    inputs = keras.Input((size, size, CHANNELS[0]))
    x = inputs
    for n, (block, activation) in enumerate(zip(weights[:-1], ("relu", "relu", "silu")), start=1):
        stride = first_stride if n == 1 else 1
        conv = keras.layers.Conv2D(block["kernel"].shape[-1], 3, strides=stride,
                                   padding="same" if stride == 1 else "valid", name=f"conv{n}")
        norm = keras.layers.BatchNormalization(epsilon=1e-3, name=f"bn{n}")
        x = keras.layers.Activation(activation, name=f"{activation}{n}")(norm(conv(x)))
        conv.set_weights([block["kernel"], block["bias"]])
        norm.set_weights([block["gamma"], block["beta"], block["mean"], block["variance"]])
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(CLASSES, name="logits")
    model = keras.Model(inputs, dense(x), name="shared")
    dense.set_weights([weights[-1]["kernel"], weights[-1]["bias"]])
    return model


def torch_model(weights, first_stride=1):
    layers = []
    for n, (block, activation) in enumerate(zip(weights[:-1], (torch.nn.ReLU, torch.nn.ReLU, torch.nn.SiLU))):
        cin, cout = block["kernel"].shape[2:]
        stride = first_stride if n == 0 else 1
        conv = torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1 if stride == 1 else 0)
        norm = torch.nn.BatchNorm2d(cout, eps=1e-3)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(block["kernel"].transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.from_numpy(block["bias"]))
            norm.weight.copy_(torch.from_numpy(block["gamma"]))
            norm.bias.copy_(torch.from_numpy(block["beta"]))
            norm.running_mean.copy_(torch.from_numpy(block["mean"]))
            norm.running_var.copy_(torch.from_numpy(block["variance"]))
        layers += [conv, norm, activation()]
    dense = torch.nn.Linear(CHANNELS[-1], CLASSES)
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(weights[-1]["kernel"].T))
        dense.bias.copy_(torch.from_numpy(weights[-1]["bias"]))
    model = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), dense)
    return model.eval(), layers[5]  # the second block's ReLU


# -- the methods -----------------------------------------------------------------------------
def peers():
    """Row label -> (pytorch-grad-cam class, its keyword arguments, gradcam's); the label
    is gradcam's method name, then any options of the call (``eigen_smooth``,
    ``aug_smooth``), which both take."""
    import pytorch_grad_cam as p

    return {
        "gradcam": (p.GradCAM, {}, {}),
        "gradcam++": (p.GradCAMPlusPlus, {}, {}),
        "xgradcam": (p.XGradCAM, {}, {}),
        "hirescam": (p.HiResCAM, {}, {}),
        "layercam": (p.LayerCAM, {}, {}),
        "eigencam": (p.EigenCAM, {}, {}),
        "scorecam": (p.ScoreCAM, {}, {}),
        "ablationcam": (p.AblationCAM, {}, {}),
        "eigengradcam": (p.EigenGradCAM, {}, {}),
        "gradcamelementwise": (p.GradCAMElementWise, {}, {}),
        "kpcacam": (p.KPCA_CAM, {}, {}),
        "kpcacam rbf": (p.KPCA_CAM, {"kernel": "rbf", "gamma": 0.05}, {"kernel": "rbf", "gamma": 0.05}),
        "fem": (p.FEM, {}, {}),
        "fem k=1": (p.FEM, {"k": 1}, {"k": 1}),
        "randomcam": (p.RandomCAM, {}, {"seed": SEED}),
        "shapleycam": (p.ShapleyCAM, {}, {}),
        "gradcam eigen_smooth": (p.GradCAM, {}, {}),
        "layercam eigen_smooth": (p.LayerCAM, {}, {}),
        "scorecam eigen_smooth": (p.ScoreCAM, {}, {}),
        "gradcam aug_smooth": (p.GradCAM, {}, {}),
        "hirescam aug_smooth": (p.HiResCAM, {}, {}),
        "fullgrad": (fullgrad, {}, {}),
        "fullgrad aug_smooth": (fullgrad, {}, {}),
        "fullgrad strided": (fullgrad, {}, {}),
        "fullgrad strided eigen_smooth": (fullgrad, {}, {}),
    }


def fullgrad(model, target_layers, **options):
    """pytorch-grad-cam's FullGrad, which reads every layer with a bias (given no target
    layer, so that it prints no warning)."""
    from pytorch_grad_cam import FullGrad

    return FullGrad(model, [], **options)


@contextlib.contextmanager
def negated_svd():
    """numpy's SVD with its singular vectors negated (the other, equally valid, sign)."""
    svd = np.linalg.svd

    def negated(*args, **kwargs):
        u, s, vh = svd(*args, **kwargs)
        return -u, s, -vh

    np.linalg.svd = negated
    try:
        yield
    finally:
        np.linalg.svd = svd


def call_options(label):
    """The options of the call that a row's label names, e.g. ``{"eigen_smooth": True}``."""
    return {option: True for option in label.split(" ")[1:] if option in ("eigen_smooth", "aug_smooth")}


def peer_maps(cam_class, peer_options, model, layer, x, seeded, options):
    """pytorch-grad-cam's maps ``(N, K, h, w)`` for each of the classes."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    maps = np.zeros((len(x), CLASSES) + x.shape[1:3], np.float32)
    with cam_class(model=model, target_layers=[layer], **peer_options) as cam:
        if hasattr(cam, "batch_size"):
            cam.batch_size = 16
        for k in range(CLASSES):
            if seeded:  # one image at a time, right after seeding numpy's generator
                for n in range(len(x)):
                    np.random.seed(SEED)
                    maps[n, k] = cam(input_tensor=tensor[n : n + 1], targets=[ClassifierOutputTarget(k)],
                                     **options)[0]
            else:
                maps[:, k] = cam(input_tensor=tensor, targets=[ClassifierOutputTarget(k)] * len(x), **options)
    return maps


def our_maps(name, options, model, x, seeded, call=None):
    cam = METHODS[name](model, layer=None if name == "fullgrad" else LAYER, **options)
    call = call or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        if seeded:
            return np.concatenate([cam.heatmaps(x[n : n + 1], targets=list(range(CLASSES)), **call)
                                   for n in range(len(x))])
        return cam.heatmaps(x, targets=list(range(CLASSES)), **call)


def peer_scaled(maps):
    """pytorch-grad-cam's final scaling (``scale_cam_image``) of gradcam's maps."""
    low = maps.min(axis=(2, 3), keepdims=True)
    shifted = maps - low
    return shifted / (1e-7 + shifted.max(axis=(2, 3), keepdims=True))


def guided_rows(weights, ours_model, theirs_model, x):
    """The ``guidedgradcam`` row: gradcam's per-pixel maps and heatmaps against
    pytorch-grad-cam's Guided Grad-CAM recipe (see the module's docstring)."""
    from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        ours = METHODS["guidedgradcam"](ours_model, layer=LAYER).compute(x, targets=list(range(CLASSES)))
    tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    theirs = np.zeros_like(ours.pixels)
    for n in range(len(x)):
        for k in range(CLASSES):
            with GradCAM(model=theirs_model, target_layers=[theirs_model[5]]) as cam:
                grayscale = cam(input_tensor=tensor[n : n + 1], targets=[ClassifierOutputTarget(k)])[0]
            # GuidedBackpropReLUModel puts one ReLU module back in place of all the ReLUs it
            # replaced (then Grad-CAM's hooks on the second block's would also see the first
            # block's): it runs on a copy of the network
            copy, _ = torch_model(weights)
            guided = GuidedBackpropReLUModel(model=copy, device="cpu")(tensor[n : n + 1], target_category=k)
            theirs[n, k] = grayscale[..., None] * guided
    peaks = np.abs(theirs).max(axis=(2, 3, 4), keepdims=True)
    theirs = theirs / np.where(peaks > 0, peaks, 1)
    heat = np.abs(theirs).sum(axis=-1)
    heat = heat / np.where(heat.max(axis=(2, 3), keepdims=True) > 0, heat.max(axis=(2, 3), keepdims=True), 1)
    empty = int((~ours.pixels.any(axis=(2, 3, 4))).sum())
    note = f"heatmaps differ by up to {np.abs(ours.heatmaps - heat).max():.1e}"
    return ("guidedgradcam", float(np.abs(ours.pixels - theirs).max()), empty, note)


def compare(rows=None):
    note = _stand_in_torchvision()
    weights = make_weights()
    ours_model = keras_model(weights)
    theirs_model, theirs_layer = torch_model(weights)
    x = np.random.default_rng(SEED).normal(0, 1, (IMAGES, SIZE, SIZE, CHANNELS[0])).astype(np.float32)
    logits = keras.ops.convert_to_numpy(ours_model(x))
    with torch.no_grad():
        theirs_logits = theirs_model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    results = [("logits", float(np.abs(logits - theirs_logits).max()), None, "")]
    networks = {False: (ours_model, theirs_model, theirs_layer, x)}
    for label, (cam_class, peer_options, options) in peers().items():
        name, strided = label.split(" ")[0], "strided" in label.split(" ")
        if rows and label not in rows and name not in rows:
            continue
        if name not in METHODS:
            results.append((label, None, None, "not in gradcam"))
            continue
        if strided and strided not in networks:
            networks[strided] = strided_networks(weights)
        net, peer_net, peer_layer, images = networks[strided]
        seeded, call = name == "randomcam", call_options(label)
        ours = our_maps(name, options, net, images, seeded, call)
        # aug_smooth averages maps already scaled: by their maximum here, by pytorch-grad-cam's
        # scale_cam_image there, which agree where each map's minimum is 0
        ours = ours if "aug_smooth" in call else peer_scaled(ours)
        empty = int((~ours.any(axis=(2, 3))).sum())
        theirs = peer_maps(cam_class, peer_options, peer_net, peer_layer, images, seeded, call)
        difference, sign = float(np.abs(ours - theirs).max()), ""
        if name in ("eigencam", "eigengradcam") or "eigen_smooth" in call:
            with negated_svd():
                flipped = peer_maps(cam_class, peer_options, peer_net, peer_layer, images, seeded, call)
            other = float(np.abs(ours - flipped).max())
            # per map, the closer of the two signs
            per_map = np.minimum(np.abs(ours - theirs).max(axis=(2, 3)), np.abs(ours - flipped).max(axis=(2, 3)))
            sign = f"closer sign per map (as LAPACK: {difference:.1e}, negated: {other:.1e})"
            difference = float(per_map.max())
        if name == "shapleycam":  # H A is not zero here: the maps are not Grad-CAM's
            gradcam_maps = peer_scaled(our_maps("gradcam", {}, net, images, False))
            sign = f"differs from gradcam by up to {np.abs(ours - gradcam_maps).max():.2f}"
        results.append((label, difference, empty, sign))
    if not rows or "guidedgradcam" in rows:
        results.append(guided_rows(weights, ours_model, theirs_model, x))
    return results, note


def strided_networks(weights):
    """The network with its first convolution strided (2, no padding) on 17 x 17 images:
    an 8 x 8 grid that FullGrad's terms are resized from (by a factor that is not an
    integer), and an input large enough for its ``eigen_smooth`` (an eighth: 2 x 2)."""
    size = 2 * 8 + 1
    theirs_model, theirs_layer = torch_model(weights, first_stride=2)
    x = np.random.default_rng(SEED + 1).normal(0, 1, (IMAGES, size, size, CHANNELS[0])).astype(np.float32)
    return keras_model(weights, size, first_stride=2), theirs_model, theirs_layer, x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", help="only these rows (method names or row labels)")
    args = parser.parse_args(argv)
    results, note = compare(args.methods)
    import pytorch_grad_cam  # noqa: F401  (imported by compare)
    from importlib.metadata import version

    print(f"keras {keras.__version__} on {keras.backend.backend()}; grad-cam {version('grad-cam')}, "
          f"torch {torch.__version__}; {IMAGES} images x {CLASSES} classes, layer {LAYER} "
          f"({SIZE}x{SIZE}x{CHANNELS[2]})" + (f"; {note}" if note else ""))
    print(f"{'method':<30} {'max |difference|':>16}  {'within 1e-4':<11} {'empty':>5}  note")
    failed = False
    for label, difference, empty, remark in results:
        empty = "-" if empty is None else f"{empty}/{IMAGES * CLASSES}"
        if difference is None:
            print(f"{label:<30} {'-':>16}  {'-':<11} {empty:>5}  {remark}")
            continue
        within = difference <= TOLERANCE
        failed |= not within and label != "logits"
        print(f"{label:<30} {difference:>16.2e}  {'yes' if within else 'NO':<11} {empty:>5}  {remark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
