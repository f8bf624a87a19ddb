"""The ``gradcam`` command's arguments: the parser, its help texts and value checks."""

from __future__ import annotations

import argparse
import contextlib
import math

from gradcam.checks import ArgumentError, one_line
from gradcam.io.images import OVERLAY_FORMATS
from gradcam.methods.registry import KERNELS, METHOD_NAMES, METHOD_OPTIONS, SCORES
from gradcam.models.registry import BUILTIN_MODELS, DEFAULT_MODEL, PREPROCESSING
from gradcam.reporting.catalogue import METRICS as REPORT_METRICS

#: The metrics of ``gradcam evaluate``: the perturbation metrics of :mod:`gradcam.metrics`
#: (ROAD in each order, averaged over its percentiles).
METRICS = ("deletion", "insertion", "average_drop", "increase_in_confidence", "road_morf", "road_lerf")
DEFAULT_METRICS = ("deletion", "insertion", "average_drop")
DEFAULT_OUT = "gradcam-out"
#: Forward passes of the model above which a run asks before it starts (``--yes``).
COST_WARNING_PASSES = 1_000_000


class UsageError(Exception):
    """A problem with the command line: reported as one line, exit status 2."""


#: The flag of each argument that the library's :class:`~gradcam.checks.ArgumentError`
#: names (the engines', :class:`~gradcam.batch.RunSettings`' and
#: :mod:`gradcam.models.registry`'s), where the flag's name differs from ``--argument``.
FLAGS = {
    "image_shape": "--image-size",
    "options": "--method",
    "overlays": "--no-overlays",
    "targets": "--target",
}


def flag_of(argument: str) -> str:
    """The flag that sets the library's ``argument``: ``"image_size"`` -> ``--image-size``."""
    return FLAGS.get(argument) or "--" + argument.replace("_", "-")


@contextlib.contextmanager
def flag_errors(fallback: str | None = None, unset=()):
    """Within the block, the library's :class:`~gradcam.checks.ArgumentError` becomes a
    :class:`UsageError` that names the argument's flag (:func:`flag_of`); other
    ``TypeError`` and ``ValueError`` become one of ``fallback`` (the flag at fault when the
    library names none), or pass unchanged without it.

    Args:
        fallback: the flag of errors that name no argument. Defaults to ``None``.
        unset: arguments the command line left to the library's default (no ``--layer``):
            their errors are the ``fallback``'s (the model has no layer to explain).
            Defaults to ``()``.

    Example:
        >>> with flag_errors():
        ...     raise ArgumentError("image_size", "the model takes images of 32x32")
        Traceback (most recent call last):
        gradcam.cli.arguments.UsageError: --image-size: the model takes images of 32x32
    """
    try:
        yield
    except ArgumentError as error:
        if fallback is not None and error.argument in unset:
            raise UsageError(f"{fallback}: {one_line(error)}") from None
        raise UsageError(f"{flag_of(error.argument)}: {one_line(error)}") from None
    except (TypeError, ValueError) as error:
        if fallback is None:
            raise
        raise UsageError(f"{fallback}: {one_line(error)}") from None


DESCRIPTION = """\
Grad-CAM from the command line: which regions of an image made a Keras image
classifier decide a class. The default model, EfficientNet-Lite0 with ImageNet
weights, works offline.

examples:
  gradcam explain photos/              every image under photos/, top class
  gradcam explain cat.jpg --target "tiger cat" --target 281 --out maps/
  gradcam explain photos/ --model my_model.keras --preprocess tf
  gradcam explain photos/ --method gradcam --method scorecam   two methods side by side
  gradcam evaluate photos/ --method gradcam --method layercam   faithfulness metrics
  gradcam report photos/ --method gradcam --method layercam     which to trust: one page
  gradcam layers                       the layers Grad-CAM can explain
"""

EXPLAIN_EPILOG = """\
outputs, in --out:
  NAME.CLASS-LABEL.METHOD.jpg
                         one overlay per image, target and method: sub/cat.jpg
                         gives sub/cat.282-tiger_cat.gradcam.jpg (.png, .webp
                         with --format; a target that is not a class is named
                         after it: cat.segmentation_of_1.gradcam.jpg). Folders
                         mirror the inputs' (relative
                         to the deepest folder holding them all). Drawn on the
                         image shrunk to --overlay-size pixels.
  heatmaps.npz           heatmaps (N, K, h, w) in [0, 1] (K = targets times
                         methods, each method's targets in turn), paths,
                         targets, scores, probas (softmax models), methods (of
                         the K maps), layer: the N images explained
  summary.csv            per image: path, status (ok, or failed and why), the
  summary.json           top-5 classes, the targets explained with their
                         method, score (the logit of softmax models),
                         probability (proba) and overlay file, and the layer

With --no-overlays only heatmaps.npz and the summaries are written.

Outputs of an earlier run are never replaced without --overwrite: the command
stops (status 2) and names one. --overwrite removes the earlier run's own files
(those its summary or journal lists) before writing. A run records each image in
its journal, --out/.gradcam-run.explain, as soon as its files are complete: after
an interruption (Ctrl-C, kill, even kill -9) the same command with --resume
explains only the images not yet done and writes one summary for the whole run.
Before the first image the command prints the forward passes the run makes; above
1,000,000 it asks (on a terminal) or stops unless --yes is given. Each file is written under a temporary name,
then renamed: an interrupted run leaves no half-written file, and the next run
removes what a killed one left. While a run writes in --out it holds the lock
--out/.gradcam.lock: a second run on the same --out stops (status 2). Folders
are searched recursively for image files (.jpg, .png, .webp, .tif, .bmp,
.gif...); hidden files and the output folder are skipped, and an input that is
the output folder, or inside it, is refused.

--preprocess: the built-in models use "lite", (x - 127) / 128. A model file
gets "none" (RGB values 0..255): a saved model should include its own
preprocessing (e.g. a Rescaling layer), or choose "tf" (x / 127.5 - 1),
"torch" (x / 255, then ImageNet mean and std) or "caffe" (BGR, minus the
ImageNet mean).

exit status: 0 all inputs explained; 1 some inputs failed (reported, and listed
in the summary; the others are done) or the summary could not be written;
2 usage error (bad option, input path, model file, layer or class name, outputs
in the way, an interrupted run in the way without --resume, --resume with other
settings, --out in use by another run, not enough memory, a cost above the
threshold without --yes); 130 interrupted (--resume goes on with the run).
"""


EVALUATE_EPILOG = """\
outputs, in --out:
  metrics.csv            one row per image, method, target and metric: path,
                         method, metric, target, target_name, value (and
                         error: one row per image that failed, with why)
and on standard output, at the end: the mean of each method and metric over the
images and targets, and the number of images.

metrics (gradcam.metrics; maps upsampled to the image, pixels ranked by heat):
  deletion               area under the score as the hottest pixels are set to 0,
                         in --steps steps; lower is better
  insertion              area under the score as the hottest pixels are restored
                         on a blurred image; higher is better
  average_drop           max(0, Y - O) / Y: the score's drop when the image is
                         multiplied by the map; lower is better
  increase_in_confidence 1 when the map-weighted image scores higher, else 0
The score is the target's probability when the model ends in a softmax, else
its output. Each metric runs the model on many perturbed images (deletion with
100 steps: 101 per image and map): a run takes far longer than explain's.

Inputs, --model, --preprocess, targets, the output folder's lock, --overwrite,
--resume (the journal is --out/.gradcam-run.evaluate), the cost estimate and --yes,
and the exit status are as for 'gradcam explain'.
"""


REPORT_EPILOG = """\
outputs, in --out:
  report.html            one self-contained page (pictures embedded, no script):
                         the verdict in sentences, methods x metrics with 95%
                         bootstrap intervals and paired tests, deletion and
                         insertion curves, sanity checks, a gallery
  report.json            every number of the page
  metrics.csv            one row per image, row of the report and metric, with
                         the columns of 'gradcam evaluate'
and on standard output, at the end: the verdict and the table of means.

The rows are each --method, then the controls: randomcam (random channel
weights), a centred Gaussian map and the image's Sobel edges. The target is one
class for every image (--target) or each image's top prediction. Images are
studied --batch-size at a time (Smooth MPRT draws its noise per batch, so a
resumed run takes the same --batch-size); the intervals, tests and verdict are
made from every image's values at the end. Files that cannot be read are
listed and skipped.

Inputs, --model, --preprocess, the output folder's lock, --overwrite, --resume
(the journal is --out/.gradcam-run.report: each image's values are recorded as
soon as its batch is done, and the page is made from all of them at the end),
the cost estimate and --yes, and the exit status are as for 'gradcam explain'.
"""


def _number(parse, ok, expected: str):
    """An argparse ``type``: ``parse(text)`` where ``ok`` holds for it, else an error that
    says what was ``expected`` and echoes the text."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value
    return convert


_positive_int = _number(int, lambda value: value >= 1, "a positive integer")
_size = _number(int, lambda value: value >= 0, "a number of pixels (0 for full size)")
_fraction = _number(float, lambda value: 0 <= value <= 1, "a fraction from 0 to 1")
_positive_float = _number(float, lambda value: 0 < value < math.inf, "a positive number")
_finite_float = _number(float, math.isfinite, "a number")
_seed = _number(int, lambda value: 0 <= value < 2**32, "an integer from 0 to 2**32 - 1")


#: The command line's flag of each method option of
#: :data:`gradcam.methods.registry.METHOD_OPTIONS` that it sets: ``(flag, type, metavar,
#: help)``; the help names the methods that take the option, from the registry.
METHOD_FLAGS = {
    "max_channels": ("--max-channels", _positive_int, "N",
                     "score or ablate only the N channels of largest variance, N forward passes "
                     "per image instead of one per channel (default: all)"),
    "kernel": ("--kernel", _number(str, lambda value: value in KERNELS, f"one of {', '.join(KERNELS)}"), "NAME",
               f"the kernel: {', '.join(KERNELS[:-1])} or {KERNELS[-1]} (default: {KERNELS[0]})"),
    "gamma": ("--gamma", _positive_float, "X",
              "the kernel's coefficient, a positive number (default: 1 / the layer's channels)"),
    "k": ("--fem-k", _finite_float, "X",
          "an activation counts when above its channel's mean + X standard deviations (default: 2)"),
    "seed": ("--seed", _seed, "N", "the seed of the random channel weights (default: 0)"),
}
FLAGS.update({option: flag for option, (flag, *_) in METHOD_FLAGS.items()})


def option_takers(option: str) -> list[str]:
    """The methods that take ``option`` (:data:`~gradcam.methods.registry.METHOD_OPTIONS`)."""
    return [method for method, own in METHOD_OPTIONS.items() if option in own]


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="NAME|FILE",
        help=f"a built-in model ({', '.join(BUILTIN_MODELS)}, ImageNet weights, offline) or "
             "a .keras model file (default: %(default)s)")
    sizes = ", ".join(str(model.size) for model in BUILTIN_MODELS.values())
    parser.add_argument(
        "--image-size", nargs=2, type=_positive_int, metavar=("H", "W"),
        help=f"the size images are resized to for the model (default: the model's input size; "
             f"{sizes} for {', '.join(BUILTIN_MODELS)})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")


def _add_run_options(parser: argparse.ArgumentParser, per_method: str, method_options: bool = True) -> None:
    """The options of the commands that stream image files through the engines;
    ``method_options``: the methods' own options, the smoothing options and
    ``--similar-to`` (else left unset)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    _add_common_options(parser)
    parser.add_argument(
        "--target", action="append", metavar="SPEC",
        help='what to explain: a class by index (281) or name ("tiger cat"); '
             "segmentation:CATEGORY (a per-pixel output: the pixels whose top class is "
             "CATEGORY, an index or name); output (the sum of a raw output's units) or "
             "output:INDEX (one unit); contrast:CLASS (Finer-CAM: CLASS against its three "
             "closest classes); box:X1,Y1,X2,Y2[:CATEGORY] (a detector: the predicted box that "
             "overlaps the query box most, with an IoU of 0.5 or more, and its score for "
             "CATEGORY, an index or a --class-names name, default 0; the box's edges in the "
             "model's input pixels); repeat for several (default: each image's top prediction)")
    parser.add_argument(
        "--decode", metavar="MODULE:FUNCTION",
        help="for box: targets on a detector whose outputs are not (boxes (N, A, 4), scores "
             "(N, A, categories)): FUNCTION(model) returns the function that turns the "
             "outputs into that pair, e.g. gradcam.models.face_detector:box_decoder for "
             "MTCNN's P-Net (default: the outputs are that pair)")
    if not method_options:
        parser.set_defaults(similar_to=None, eigen_smooth=False, aug_smooth=False,
                            **dict.fromkeys(METHOD_FLAGS, None))
    if method_options:
        parser.add_argument(
            "--similar-to", metavar="IMAGE",
            help="explain the cosine similarity of each image's output with the output on "
                 "IMAGE (loaded and preprocessed as the inputs are), for embedding models; for "
                 "a model that ends in a softmax, of the logits (the probabilities with --score "
                 "output)")
    parser.add_argument(
        "--class-names", metavar="FILE",
        help="the model's class names, one per line in output order (UTF-8), for --target "
             "NAME and the outputs (default: ImageNet's for 1000-class models)")
    parser.add_argument(
        "--method", action="append", metavar="NAME",
        help=f"the class-activation method: {', '.join(METHOD_NAMES)}; repeat for several, "
             f"{per_method} (default: gradcam)")
    for option, (flag, kind, metavar, text) in METHOD_FLAGS.items() if method_options else ():
        parser.add_argument(flag, dest=option, type=kind, metavar=metavar,
                            help=f"{' and '.join(option_takers(option))}: {text}")
    if method_options:
        parser.add_argument("--eigen-smooth", action="store_true",
                            help="every method: the map is the first principal component of the "
                                 "method's weighted activations (less noise)")
        parser.add_argument("--aug-smooth", action="store_true",
                            help="every method: the mean of the maps of the image flipped and "
                                 "scaled by 0.9, 1.0 and 1.1 (six passes per image, smoother)")
    parser.add_argument("--layer", metavar="NAME",
                        help="the layer to explain (default: the last layer with a 4-D output; "
                             "see 'gradcam layers')")
    parser.add_argument("--score", choices=SCORES, default="auto",
                        help="the score explained: auto (the logit when the model ends in a "
                             "softmax, else the output), logit, or output (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again: remove the outputs of the earlier run in --out (the "
                             "files its summary or journal lists) and replace them")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the interrupted run in --out, with the same settings: "
                             "the images it finished are not explained again")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="go on without asking when the run's cost is above the warning "
                             f"threshold ({COST_WARNING_PASSES:,} forward passes)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                        help="images per model call (default: %(default)s)")
    parser.add_argument("--preprocess", choices=list(PREPROCESSING),
                        help="input scaling (default: lite for the built-in models, none for "
                             "model files; see below)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress display and no final report; errors are still shown")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradcam`` command and its subcommands.

    Returns:
        An :class:`argparse.ArgumentParser`; ``args.command`` is ``"explain"``,
        ``"evaluate"``, ``"report"`` or ``"layers"``.
    """
    parser = argparse.ArgumentParser(
        prog="gradcam", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from gradcam import __version__

    parser.add_argument("--version", action="version", version=f"gradcam {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    explain = commands.add_parser(
        "explain", help="explain image files and folders: overlays, heatmaps, summaries",
        description="Explain the model's predictions on image files and folders "
                    "(recursively): write one overlay per image and target, the heatmaps "
                    "and a summary.",
        epilog=EXPLAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.set_defaults(command="explain")
    _add_run_options(explain, "one overlay per method")
    explain.add_argument("--colormap", default="viridis", metavar="NAME",
                         help="matplotlib colormap of the overlays (default: %(default)s)")
    explain.add_argument("--alpha-limit", type=_fraction, default=0.65, metavar="X",
                         help="largest opacity of the overlay, 0..1 (default: %(default)s)")
    explain.add_argument("--overlay-size", type=_size, default=320, metavar="PX",
                         help="longer side of the overlays in pixels, 0 for the image's own "
                              "size (default: %(default)s)")
    explain.add_argument("--format", choices=OVERLAY_FORMATS, default="jpg",
                         help="overlay files: jpg (quality 90, about 24 KiB at 320 px), png "
                              "(lossless, about 200 KiB) or webp (quality 90, about 21 KiB, "
                              "slower) (default: %(default)s)")
    explain.add_argument("--compress", action="store_true",
                         help="with --format png: compress the PNGs, files about 40%% smaller, "
                              "the run about 10%% slower")
    explain.add_argument("--no-overlays", dest="overlays", action="store_false",
                         help="draw no overlays: write only heatmaps.npz and the summaries "
                              "(the overlay options are then unused)")

    evaluate = commands.add_parser(
        "evaluate", help="score the explanations of image files with faithfulness metrics",
        description="Explain the model's predictions on image files and folders "
                    "(recursively) with each --method, score each map with each --metric, "
                    "write the values to metrics.csv and print the mean of each method and "
                    "metric.",
        epilog=EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.set_defaults(command="evaluate")
    _add_run_options(evaluate, "each scored")
    evaluate.add_argument(
        "--metric", action="append", choices=METRICS, metavar="NAME",
        help=f"a metric of gradcam.metrics: {', '.join(METRICS)}; repeat for several "
             f"(default: {' '.join(DEFAULT_METRICS)})")
    evaluate.add_argument("--steps", type=_positive_int, default=100, metavar="N",
                          help="deletion and insertion: pixels are removed or restored in N steps "
                               "(default: %(default)s)")
    evaluate.add_argument("--metric-batch-size", type=_positive_int, metavar="N",
                          help="perturbed images per model call in the metrics (default: --batch-size)")

    report = commands.add_parser(
        "report", help="which method to trust: methods x metrics with evidence, in one HTML page",
        description="Explain the model's predictions on image files and folders "
                    "(recursively) with each --method and the controls, score every map with "
                    "each --metric, and write report.html (the verdict, the table with 95% "
                    "confidence intervals, the curves, the sanity checks and a gallery), "
                    "report.json and metrics.csv.",
        epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.set_defaults(command="report")
    _add_run_options(report, "each studied", method_options=False)
    report.add_argument(
        "--metric", action="append", choices=list(REPORT_METRICS), metavar="NAME",
        help=f"a metric of the report: {', '.join(REPORT_METRICS)}; repeat for several "
             "(default: all)")
    report.add_argument("--steps", type=_positive_int, default=50, metavar="N",
                        help="deletion and insertion: pixels are removed or restored in N steps "
                             "(default: %(default)s)")

    parser.subcommands = {"explain": explain, "evaluate": evaluate, "report": report}

    layers = commands.add_parser(
        "layers", help="list the layers Grad-CAM can explain",
        description="List the model's layers usable for Grad-CAM (4-D output) with their output "
                    "shapes; * marks the one used when --layer is not given.")
    layers.set_defaults(command="layers")
    _add_common_options(layers)
    parser.subcommands["layers"] = layers
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv):
    """Parse ``argv``; an option the command does not take is reported with the
    command's usage (and the commands that take it), not the top-level usage.

    Raises:
        SystemExit: ``--help``, ``--version``, or a bad argument (already reported).
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = parser.subcommands[args.command]
        unknown = [item for item in extra if item.startswith("-")]
        takers = [name for name, sub in parser.subcommands.items()
                  if unknown and any(unknown[0].split("=")[0] in action.option_strings for action in sub._actions)]
        hint = f" ({unknown[0].split('=')[0]} is an option of 'gradcam {' and '.join(takers)}')" if takers else ""
        command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args
