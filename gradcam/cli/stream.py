"""The driver of the commands that stream image files through the engines (``gradcam
explain`` and ``gradcam evaluate``), and the protocol they follow (:class:`StreamCommand`).

A command gives its settings, its work and its summary; :func:`run_command` does the
rest, in an order that makes a usage error cheap and harmless: the options, the method
names, the model file, the class-names file, the target names known without the model
and the inputs are checked before TensorFlow is imported (:func:`check_before_model`);
the output folder's lock is taken (:func:`output_folder`), and its journal
(:func:`check_journal`: ``--resume``'s settings) and the outputs of an earlier run looked
at (:func:`refuse_existing`), before the model is loaded (:func:`set_up`: the layer, the
targets, the memory a batch needs). The run's cost is counted (:func:`forward_passes`,
:func:`check_cost`) before its journal is started or resumed; ``--overwrite`` removes the
earlier run's files only then. A usage error leaves nothing behind (an output folder the
run created is removed again). The pipeline then runs with a progress display, which
gives the expected time after the first batch, and the command reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from gradcam.checks import ArgumentError, one_line
from gradcam.cli.arguments import UsageError, flag_errors, flag_of
from gradcam.cli.cost import EstimatingProgress, check_cost, forward_passes
from gradcam.cli.messages import plural, say, warn
from gradcam.cli.memory import check_memory
from gradcam.cli.model import (
    BoxSpec,
    build_engines,
    check_class_names,
    check_decode_option,
    check_method_names,
    check_targets_fit,
    load_decoder,
    method_classes,
    method_options,
    parse_target_spec,
    parse_targets,
    read_class_names_option,
)
from gradcam.cli.quiet import tensorflow_quiet
from gradcam.io.inputs import Input, InputError, find_inputs
from gradcam.io.lock import FolderLockedError
from gradcam.cli.resume import check_journal, recorded_options, remove_previous_run
from gradcam.io.journal import RunJournal
from gradcam.io.outputs import OutputFolder, existing_outputs
from gradcam.models.registry import (
    builtin_image_size,
    check_model_file,
    image_shape_for,
    load_model,
    preprocess_function,
)
from gradcam.imagenet import NUM_CLASSES
from gradcam.targets import ClassNames
from gradcam.batch import RunReport, RunSettings
from gradcam.progress import Progress, format_duration, format_rate


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


def check_before_model(args) -> Checked:
    """Check, without TensorFlow, the model file, the class-names file and the inputs.

    Raises:
        UsageError: a bad model file or class-names file, an input that does not exist,
            or no image file.
    """
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: --resume goes on with the run in "
                         "--out, --overwrite starts it again.")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} is a file; --out names a folder (created if needed).")
    check_method_names(args.method)
    with flag_errors():
        check_model_file(args.model)
    warn_small_image_size(args)
    class_names = read_class_names_option(args.class_names)
    runs: list[str] = []
    try:
        inputs = find_inputs(args.paths, out_dir=args.out, skipped_runs=runs)
    except InputError as error:
        raise UsageError(str(error)) from None
    for folder in runs:
        say(args, f"gradcam: note: skipped {folder!r}: it holds a gradcam run's outputs.")
    check_targets_before_model(args, class_names)
    return Checked(inputs, class_names)


#: An ``--image-size`` below a built-in model's own size divided by this is warned about.
SMALL_SIZE_FACTOR = 2


def warn_small_image_size(args) -> None:
    """Warn when ``--image-size`` is far below a built-in model's own size: its maps are
    then tiny (Lite0's are 7x7 at 224, 4x4 at 100)."""
    own = builtin_image_size(args.model)
    if own is None or args.image_size is None:
        return
    if any(size * SMALL_SIZE_FACTOR <= native for size, native in zip(args.image_size, own)):
        height, width = args.image_size
        warn(f"--image-size {height} {width} is far below {args.model}'s own {own[0]}x{own[1]}: "
             "its maps will be coarse. Leave --image-size out to use the model's own.")


def check_targets_before_model(args, class_names) -> None:
    """Check the ``--target`` forms, and their class names against the class names known
    without the model (``--class-names``, or ImageNet's for a built-in model), that
    the ``--similar-to`` file exists, and ``--decode``'s form and module.

    Raises:
        UsageError: a bad form, a name that is not a class, a ``box:`` category name
            without ``--class-names``, a missing ``--similar-to`` file, a bad ``--decode``.
    """
    if args.similar_to is not None and not os.path.isfile(args.similar_to):
        raise UsageError(f"--similar-to {args.similar_to!r}: no such image file.")
    if args.target:
        if class_names is not None:
            parse_targets(args.target, ClassNames(len(class_names), class_names), warn_duplicates=False)
        elif builtin_image_size(args.model) is not None:  # the built-in models are ImageNet's
            parse_targets(args.target, ClassNames(NUM_CLASSES), warn_duplicates=False)
        else:  # the forms, before the model loads; the classes once it has
            for value in args.target:
                target = parse_target_spec(value)
                if isinstance(target, BoxSpec) and isinstance(target.category, str):
                    raise UsageError(f"--target: {value!r}: the category {target.category!r} is a name: give "
                                     "--class-names FILE (the detector's categories, one per line), or an index.")
    check_decode_option(args)


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


def run_time(report: RunReport) -> str:
    """`` in 2.5 s (21.4 images/s)`` for the final line: the rate of the images this run
    explained, left out when it explained none (a run where every file failed)."""
    if not report.explained_now:
        return f" in {report.seconds:.1f} s"
    return f" in {report.seconds:.1f} s ({format_rate(report.images_per_second)} images/s)"


def set_up(args, class_names, command: StreamCommand) -> SetUp:
    """Load the model, build the engine of each method, check the memory and compile (one
    blank image: :meth:`StreamCommand.prepare`).

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
    engines = build_engines(model, classes, args.layer, args.score, class_names, options, model_spec=args.model)
    targets = parse_targets(args.target, engines[0].classes, decode=load_decoder(args.decode, model))
    check_targets_fit(model, engines[0].classes, targets, image_shape, class_names, args.class_names)
    preprocess = args.preprocess or (builtin.preprocessing if builtin else "none")
    if args.similar_to is not None:
        targets = (targets or []) + [similarity_target(args, model, image_shape, preprocess_function(preprocess))]
    with flag_errors():
        settings = command.settings(args, image_shape, preprocess_function(preprocess), targets)
    largest = max(settings.batch_size, command.memory_batch_size(args) or 0)
    check_memory(model, dataclasses.replace(settings, batch_size=largest))
    try:  # compiles now, so the run's rate and ETA are steady
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about the blank image, e.g. an all-zero map
            command.prepare(args, engines, image_shape, settings, targets)
    except ArgumentError as error:
        # --eigen-smooth on a layer of one channel; otherwise the options are checked: the model fails
        flag = flag_of(error.argument) if error.argument == "eigen_smooth" else "--model"
        raise UsageError(f"{flag}: {one_line(error)}") from None
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


def similarity_target(args, model, image_shape, preprocess):
    """The :class:`~gradcam.targets.Similarity` target of ``--similar-to IMAGE``: the
    model's output on IMAGE, loaded and preprocessed as the inputs are; for a model that
    ends in a softmax, its logits (the softmax's input) unless ``--score output``, as the
    engines compare each image's logits with it then.

    Raises:
        UsageError: the image cannot be read, or the model's output is not one
            ``(batch, D)`` vector.
    """
    import keras

    from gradcam.capture import capture, model_info
    from gradcam.image import image_from_path
    from gradcam.targets import Similarity

    softmax = model_info(model).softmax if args.score != "output" else None
    try:
        doc = image_from_path(args.similar_to, image_shape)
    except (OSError, ValueError) as error:
        raise UsageError(f"--similar-to {args.similar_to!r}: {one_line(error)}") from None
    doc = doc if preprocess is None else preprocess(doc)
    with capture(softmax=softmax) as recording:
        returned = model(doc, training=False)
    outputs = [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(returned)]
    if softmax is not None and len(outputs) == 1 and recording.logits:
        outputs = [keras.ops.convert_to_numpy(recording.logits[-1])]
    output = outputs[0]
    if len(outputs) != 1 or output.ndim != 2:
        raise UsageError(f"--similar-to needs a model with one (batch, D) output; {args.model!r} returns "
                         f"{' and '.join(str(y.shape) for y in outputs)}.")
    try:
        return Similarity(output[0])
    except ValueError as error:  # an all-zero output
        raise UsageError(f"--similar-to {args.similar_to!r}: {one_line(error)}") from None


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
        name: the command's name, ``"explain"``: its journal's.
        doing: what the run does, for the first line: ``"explaining"``.
        run_files: the run-level files it writes in ``--out``.
        overlays: whether it writes an overlay per input (looked for before a run).
        empty_maps_where: where the outputs mark all-zero maps, for the warning.
        recorded_options: the command's own options that a resumed run must give as the
            interrupted run did (besides :data:`RECORDED_OPTIONS`).
    """

    name: str
    doing: str
    run_files: tuple
    overlays: bool
    empty_maps_where: str
    recorded_options: tuple = ()

    def passes_per_map(self, args) -> int:
        """The model's forward passes per map after the engines (the metrics')."""
        return 0

    def recorded_defaults(self, args) -> dict:
        """The command's :attr:`recorded_options` whose default is ``None``, spelled out,
        so that a resumed run may name the default or leave it out."""
        return {}

    def check(self, args) -> None:
        """Check the command's own options before anything is read.

        Raises:
            UsageError: an option that cannot be used.
        """

    def settings(self, args, image_shape, preprocess, targets) -> RunSettings:
        """The run's :class:`~gradcam.batch.RunSettings` (its errors name their field)."""
        raise NotImplementedError

    def prepare(self, args, engines, image_shape, settings: RunSettings, targets) -> None:
        """Compile what the run computes (:func:`compile_engines`), so that a model that
        fails, fails before the run: the engines, by default.

        Args:
            args: the parsed options.
            engines: the engines of the methods, one per method.
            image_shape: the images' ``(height, width)``.
            settings: the run's settings (:meth:`settings`).
            targets: the ``--target`` targets parsed.

        Raises:
            ArgumentError, TypeError, ValueError: the engines cannot run on the model
                (:func:`set_up` names the flag).
        """
        compile_engines(engines, image_shape, targets, settings.smoothing)

    def memory_batch_size(self, args) -> int | None:
        """The largest number of images the model runs on at once, for the memory check,
        when more than the settings' batch size; ``None`` when not."""
        return None

    def work(self, args, setup: SetUp, inputs: list[Input], folder: OutputFolder, progress: Progress,
             journal: RunJournal) -> RunReport:
        """Run the pipeline on ``inputs`` (those ``journal`` has not recorded); return its report.

        Raises:
            OSError: the run-level files could not be written.
        """
        raise NotImplementedError

    def summary(self, args, setup: SetUp, report: RunReport) -> None:
        """Report the finished run."""
        raise NotImplementedError


def compile_engines(engines, image_shape, targets=None, smoothing=None) -> None:
    """Run each engine on one blank image, so that its computation is compiled before a run.

    Args:
        engines: the engines.
        image_shape: the images' ``(height, width)``.
        targets: the targets of each call. Defaults to ``None`` (the top prediction).
        smoothing: the engines' smoothing options (``eigen_smooth``, ``aug_smooth``).
            Defaults to ``None`` (none).
    """
    blank = np.zeros((1, *image_shape, 3), np.float32)
    for engine in engines:
        engine.compute(blank, targets=targets, **(smoothing or {}))


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
        journal = RunJournal(args.out, command.name)
        resuming = check_journal(args, journal, checked.inputs, command)
        if not resuming:
            refuse_existing(args, checked.inputs, command.run_files, overlays=command.overlays)
        say(args, f"gradcam: loading {args.model} and compiling its explanations...")
        with tensorflow_quiet(enabled=not args.verbose):
            setup = set_up(args, checked.class_names, command)
        passes = forward_passes(args, setup, command)
        try:
            if resuming:
                journal.resume()
            remaining = len(checked.inputs) - len(journal.done)
            check_cost(args, passes, remaining)
            if not resuming:
                if args.overwrite:
                    remove_previous_run(args, journal, command)
                journal.start(recorded_options(args, command), [item.path for item in checked.inputs])
        except OSError as error:
            raise UsageError(f"--out {args.out!r}: cannot write there: {one_line(error)}") from None
        except BaseException:
            journal.close()
            raise
        done = f" ({len(journal.done)} of {len(checked.inputs)} done before)" if resuming else ""
        say(args, f"gradcam: {command.doing} {plural(remaining, 'image')}{done} with "
            f"{', '.join(setup.header['methods'])} at layer {setup.engines[0].layer!r}, "
            f"{plural(passes * remaining, 'forward pass')} (setup took {format_duration(setup.header['setup_seconds'])})")
        progress = EstimatingProgress(remaining, setup.settings.batch_size, enabled=not args.quiet)
        try:
            with _warnings_shown_by(progress):
                report = command.work(args, setup, checked.inputs, folder, progress, journal)
        except OSError as error:  # the run-level files could not be written (a full disk)
            progress.close()
            journal.close()
            print(f"gradcam: error: the run's outputs could not be written: {one_line(error)}", file=sys.stderr)
            return 1
        except BaseException:
            journal.close()
            raise
        progress.close()
    report_empty_maps(report, setup, command.empty_maps_where)
    command.summary(args, setup, report)
    return 1 if report.failed else 0


def report_empty_maps(report: RunReport, setup: SetUp, where: str) -> None:
    """Warn, once, about all-zero maps (``where``: the file that marks them)."""
    if report.empty_maps:
        from gradcam.capture import model_info

        maps = report.ok * setup.settings.targets_per_image * len(setup.engines)
        classes = all(isinstance(t, (int, str)) for t in setup.settings.targets or ())
        logits = setup.header["score"] != "output" and model_info(setup.engines[0].model).softmax is not None
        print(f"gradcam: warning: {report.empty_maps} of {maps} maps are "
              f"all zero: no part of the layer's output raises the {'class' if classes else 'explained'} "
              f"score ({where}). "
              f"Try {'--score output, or ' if logits else ''}another --layer.", file=sys.stderr)
