"""``gradcam explain``: check everything that can be checked without the model, hold the
output folder, set the model up, and run the pipeline (:mod:`gradcam.pipeline`).

The order makes a usage error cheap and harmless: the options, the model file and the
inputs are checked before TensorFlow is imported; the output folder's lock is taken, and
the outputs of an earlier run looked for, before the model is loaded; the memory a batch
needs is checked before the first batch runs. A usage error leaves nothing behind (an
output folder the run created is removed again).
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

import numpy as np

from gradcam.cli.arguments import UsageError
from gradcam.cli.memory import check_memory
from gradcam.cli.model import (
    build_engines,
    check_model_file,
    image_shape_for,
    load_model,
    method_classes,
    parse_targets,
    preprocess_function,
)
from gradcam.cli.quiet import tensorflow_quiet
from gradcam.io.inputs import InputError, find_inputs
from gradcam.io.lock import FolderLockedError
from gradcam.io.outputs import OutputFolder, existing_outputs
from gradcam.pipeline import RunSettings, explain_files, one_line
from gradcam.progress import Progress, format_duration


def _settings(args, image_shape=(1, 1), preprocess=None, targets=None) -> RunSettings:
    """The run's settings from the options.

    Raises:
        UsageError: a colormap, format or option combination that cannot be used.
    """
    try:
        return RunSettings(
            image_shape=image_shape, preprocess=preprocess, targets=targets, batch_size=args.batch_size,
            colormap=args.colormap, alpha_limit=args.alpha_limit, overlay_size=args.overlay_size,
            format=args.format, compress=args.compress, overlays=args.overlays)
    except ValueError as error:
        text = one_line(error)
        option = ("--colormap" if "colormap" in text else "--compress" if "compress" in text else "--format")
        raise UsageError(f"{option}: {text}") from None


@contextlib.contextmanager
def _output_folder(path: str):
    """The output folder, held for the run; its problems as usage errors."""
    folder = OutputFolder(path)
    try:
        folder.__enter__()
    except FolderLockedError as error:
        raise UsageError(f"--out: {error}") from None
    except OSError as error:
        raise UsageError(f"--out {path!r}: cannot write there: {one_line(error)}") from None
    try:
        yield folder
    finally:
        folder.__exit__(*sys.exc_info())


def _setup(args):
    """Load the model, build the engine of each method, check the memory and compile (one
    blank image).

    Returns:
        ``(engines, settings, header)``: the engines, the run's settings, and more facts
        for ``summary.json``.

    Raises:
        UsageError: a bad method, model, layer, score, target or image size, or not
            enough memory.
    """
    start = time.perf_counter()
    classes = method_classes(args.method)
    model, builtin = load_model(args.model, args.image_size)
    image_shape = image_shape_for(model, args.image_size)
    engines = build_engines(model, classes, args.layer, args.score)
    targets = parse_targets(args.target, engines[0].classes)
    preprocess = args.preprocess or ("lite" if builtin else "none")
    settings = _settings(args, image_shape, preprocess_function(preprocess), targets)
    check_memory(model, settings)
    try:  # compiles now, so the run's rate and ETA are steady
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about the blank image, e.g. an all-zero map
            for engine in engines:
                engine.compute(np.zeros((1, *image_shape, 3), np.float32), targets=targets)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--model: {one_line(error)}") from None
    header = {"model": args.model, "methods": [engine.name for engine in engines],
              "preprocess": preprocess, "score": args.score,
              "setup_seconds": round(time.perf_counter() - start, 3)}
    return engines, settings, header


@contextlib.contextmanager
def _warnings_shown_by(progress: Progress):
    """Within the block, warnings are shown as ``gradcam: warning: ...`` lines that do not
    garble the progress display; the engine's warning about empty maps is left to the
    run's own report (:func:`run`), which counts them."""
    from gradcam.methods.base import EmptyMapWarning

    def show(message, category, filename, lineno, file=None, line=None):
        progress.message(f"gradcam: warning: {one_line(message) if isinstance(message, Exception) else message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.filterwarnings("ignore", category=EmptyMapWarning)
        yield


def run(args) -> int:
    """``gradcam explain``: run the pipeline, return the exit status.

    Raises:
        UsageError: see :func:`_setup`, and bad inputs, an output folder in use or in
            the way.
    """
    def say(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    _settings(args)  # the colormap, format and --compress, before anything else
    check_model_file(args.model)
    try:
        inputs = find_inputs(args.paths, out_dir=args.out)
    except InputError as error:
        raise UsageError(str(error)) from None
    with _output_folder(args.out) as folder:
        if not args.overwrite:
            existing = existing_outputs(args.out, inputs)
            if existing:
                raise UsageError(
                    f"{existing[0]!r} exists: --out {args.out!r} holds outputs of an earlier run. "
                    "Pass --overwrite to replace them, or choose another --out.")
        say(f"gradcam: loading {args.model} and compiling its explanations...")
        with tensorflow_quiet(enabled=not args.verbose):
            engines, settings, header = _setup(args)
        say(f"gradcam: explaining {len(inputs)} images with {', '.join(header['methods'])} at layer "
            f"{engines[0].layer!r} (setup took {format_duration(header['setup_seconds'])})")
        progress = Progress(len(inputs), enabled=not args.quiet)
        try:
            with _warnings_shown_by(progress):
                report = explain_files(engines, inputs, folder, settings, progress=progress, header=header)
        except OSError as error:  # the run-level files could not be written (a full disk)
            progress.close()
            print(f"gradcam: error: the run's outputs could not be written: {one_line(error)}",
                  file=sys.stderr)
            return 1
        progress.close()
    if report.empty_maps:
        maps = report.ok * settings.targets_per_image * len(engines)
        print(f"gradcam: warning: {report.empty_maps} of {maps} maps are "
              "all zero: no part of the layer's output raises the class score (\"empty\" in "
              "summary.json). Try --score output, or another --layer.", file=sys.stderr)
    failed = f"; {len(report.failed)} failed (listed in summary.json)" if report.failed else ""
    say(f"gradcam: explained {report.ok} of {report.total} images in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s){failed}. Outputs in {args.out}")
    return 1 if report.failed else 0
