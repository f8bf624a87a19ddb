"""The driver of the commands that stream image files through the engines (``gradcam
explain`` and ``gradcam evaluate``), and the protocol they follow (:class:`StreamCommand`).

A command gives its settings, its work and its summary; :func:`run_command` does the
rest, in an order that makes a usage error cheap and harmless: the options, the model
file, the class-names file and the inputs are checked before TensorFlow is imported
(:func:`check_before_model`); the output folder's lock is taken (:func:`output_folder`),
and the outputs of an earlier run looked for (:func:`refuse_existing`), before the model
is loaded (:func:`set_up`); the memory a batch needs is checked before the first batch
runs. A usage error leaves nothing behind (an output folder the run created is removed
again). The pipeline then runs with a progress display, and the command reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from gradcam.checks import one_line
from gradcam.cli.arguments import UsageError, flag_errors
from gradcam.cli.memory import check_memory
from gradcam.cli.model import (
    build_engines,
    check_class_names,
    method_classes,
    method_options,
    parse_targets,
    read_class_names_option,
)
from gradcam.cli.quiet import tensorflow_quiet
from gradcam.io.inputs import Input, InputError, find_inputs
from gradcam.io.lock import FolderLockedError
from gradcam.io.outputs import OutputFolder, existing_outputs
from gradcam.models.registry import check_model_file, image_shape_for, load_model, preprocess_function
from gradcam.batch import RunReport, RunSettings
from gradcam.progress import Progress, format_duration


@dataclass(frozen=True)
class Checked:
    """What :func:`check_before_model` found: the inputs and the ``--class-names``."""

    inputs: list[Input]
    class_names: list[str] | None


@dataclass(frozen=True)
class SetUp:
    """The run, set up by :func:`set_up`: the engines (one per method), the settings, and
    facts for the run's records (``model``, ``methods``, ``preprocess``, ``score``,
    ``setup_seconds``)."""

    engines: list
    settings: RunSettings
    header: dict


def say(args, text: str) -> None:
    """Print a progress line on standard error, unless ``--quiet``."""
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def check_before_model(args) -> Checked:
    """Check, without TensorFlow, the model file, the class-names file and the inputs.

    Raises:
        UsageError: a bad model file or class-names file, an input that does not exist,
            or no image file.
    """
    with flag_errors():
        check_model_file(args.model)
    class_names = read_class_names_option(args.class_names)
    try:
        inputs = find_inputs(args.paths, out_dir=args.out)
    except InputError as error:
        raise UsageError(str(error)) from None
    return Checked(inputs, class_names)


@contextlib.contextmanager
def output_folder(path: str):
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


def refuse_existing(args, inputs, run_files, overlays: bool) -> None:
    """Stop when ``--out`` holds outputs of an earlier run and ``--overwrite`` is not given.

    Raises:
        UsageError: one of ``run_files`` or (with ``overlays``) an overlay of an input
            exists; the message names it.
    """
    if args.overwrite:
        return
    existing = existing_outputs(args.out, inputs, run_files=run_files, overlays=overlays)
    if existing:
        raise UsageError(
            f"{existing[0]!r} exists: --out {args.out!r} holds outputs of an earlier run. "
            "Pass --overwrite to replace them, or choose another --out.")


def set_up(args, class_names, command: StreamCommand) -> SetUp:
    """Load the model, build the engine of each method, check the memory and compile (one
    blank image).

    Args:
        args: the parsed options.
        class_names: the ``--class-names`` read, or ``None``.
        command: the command, for its settings and the memory check.

    Raises:
        UsageError: a bad method, model, layer, score, target, class-names file or image
            size, or not enough memory.
    """
    start = time.perf_counter()
    classes = method_classes(args.method)
    options = method_options(args, [cls.name for cls in classes])
    with flag_errors():
        model, builtin = load_model(args.model, args.image_size)
        image_shape = image_shape_for(model, args.image_size)
    check_class_names(class_names, args.class_names, model)
    engines = build_engines(model, classes, args.layer, args.score, class_names, options)
    targets = parse_targets(args.target, engines[0].classes)
    preprocess = args.preprocess or (builtin.preprocessing if builtin else "none")
    with flag_errors():
        settings = command.settings(args, image_shape, preprocess_function(preprocess), targets)
    largest = max(settings.batch_size, command.memory_batch_size(args) or 0)
    check_memory(model, dataclasses.replace(settings, batch_size=largest))
    try:  # compiles now, so the run's rate and ETA are steady
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about the blank image, e.g. an all-zero map
            for engine in engines:
                engine.compute(np.zeros((1, *image_shape, 3), np.float32), targets=targets)
    except (TypeError, ValueError) as error:  # the options are checked: the model fails
        raise UsageError(f"--model: {one_line(error)}") from None
    header = {"model": args.model, "methods": [engine.name for engine in engines],
              "preprocess": preprocess, "score": args.score,
              "setup_seconds": round(time.perf_counter() - start, 3)}
    if class_names is not None:
        header["class_names"] = args.class_names
    if any(options.values()):
        header["method_options"] = {name: values for name, values in options.items() if values}
    return SetUp(engines, settings, header)


@contextlib.contextmanager
def _warnings_shown_by(progress: Progress):
    """Within the block, warnings are shown as ``gradcam: warning: ...`` lines that do not
    garble the progress display; the engine's warning about empty maps is left to the
    run's own report (:func:`report_empty_maps`), which counts them."""
    from gradcam.methods.base import EmptyMapWarning

    def show(message, category, filename, lineno, file=None, line=None):
        progress.message(f"gradcam: warning: {one_line(message) if isinstance(message, Exception) else message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.filterwarnings("ignore", category=EmptyMapWarning)
        yield


class StreamCommand:
    """A command that streams image files through the engines: what it writes, its
    settings, its work and its summary. :func:`run_command` runs it.

    Attributes:
        doing: what the run does, for the first line: ``"explaining"``.
        run_files: the run-level files it writes in ``--out``.
        overlays: whether it writes an overlay per input (looked for before a run).
        empty_maps_where: where the outputs mark all-zero maps, for the warning.
    """

    doing: str
    run_files: tuple
    overlays: bool
    empty_maps_where: str

    def check(self, args) -> None:
        """Check the command's own options before anything is read.

        Raises:
            UsageError: an option that cannot be used.
        """

    def settings(self, args, image_shape, preprocess, targets) -> RunSettings:
        """The run's :class:`~gradcam.batch.RunSettings` (its errors name their field)."""
        raise NotImplementedError

    def memory_batch_size(self, args) -> int | None:
        """The largest number of images the model runs on at once, for the memory check,
        when more than the settings' batch size; ``None`` when not."""
        return None

    def work(self, args, setup: SetUp, inputs: list[Input], folder: OutputFolder, progress: Progress) -> RunReport:
        """Run the pipeline on ``inputs``; return its report.

        Raises:
            OSError: the run-level files could not be written.
        """
        raise NotImplementedError

    def summary(self, args, setup: SetUp, report: RunReport) -> None:
        """Report the finished run."""
        raise NotImplementedError


def run_command(command: StreamCommand, args) -> int:
    """Run a :class:`StreamCommand`: check, set up, run the pipeline with a progress
    display, report.

    Args:
        command: the command.
        args: the parsed options.

    Returns:
        The exit status: 0 when every input was done, 1 when some failed or the run-level
        files could not be written (reported).

    Raises:
        UsageError: a bad option, model, layer, target, class-names file or input, an
            output folder in use or in the way, or not enough memory.
    """
    command.check(args)
    checked = check_before_model(args)
    with output_folder(args.out) as folder:
        refuse_existing(args, checked.inputs, command.run_files, overlays=command.overlays)
        say(args, f"gradcam: loading {args.model} and compiling its explanations...")
        with tensorflow_quiet(enabled=not args.verbose):
            setup = set_up(args, checked.class_names, command)
        say(args, f"gradcam: {command.doing} {len(checked.inputs)} images with "
            f"{', '.join(setup.header['methods'])} at layer {setup.engines[0].layer!r} "
            f"(setup took {format_duration(setup.header['setup_seconds'])})")
        progress = Progress(len(checked.inputs), enabled=not args.quiet)
        try:
            with _warnings_shown_by(progress):
                report = command.work(args, setup, checked.inputs, folder, progress)
        except OSError as error:  # the run-level files could not be written (a full disk)
            progress.close()
            print(f"gradcam: error: the run's outputs could not be written: {one_line(error)}", file=sys.stderr)
            return 1
        progress.close()
    report_empty_maps(report, setup, command.empty_maps_where)
    command.summary(args, setup, report)
    return 1 if report.failed else 0


def report_empty_maps(report: RunReport, setup: SetUp, where: str) -> None:
    """Warn, once, about all-zero maps (``where``: the file that marks them)."""
    if report.empty_maps:
        maps = report.ok * setup.settings.targets_per_image * len(setup.engines)
        print(f"gradcam: warning: {report.empty_maps} of {maps} maps are "
              f"all zero: no part of the layer's output raises the class score ({where}). "
              "Try --score output, or another --layer.", file=sys.stderr)
