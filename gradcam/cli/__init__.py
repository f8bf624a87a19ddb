"""The ``gradcam`` command: explain the predictions of an image classifier on image files.

::

    gradcam explain photos/ --out gradcam-out
    gradcam explain cat.jpg --target "tiger cat" --target 281 --model efficientnet_lite2
    gradcam evaluate photos/ --method gradcam --method layercam --metric deletion
    gradcam report photos/ --method gradcam --method layercam --out report
    gradcam layers --model my_model.keras

Modules: :mod:`~gradcam.cli.arguments` (the parser, and the table from the library's
argument names to the flags), :mod:`~gradcam.cli.model` (class names, targets and the
engine of each method), :mod:`~gradcam.cli.memory` (whether a run fits),
:mod:`~gradcam.cli.quiet` (TensorFlow's log lines), :mod:`~gradcam.cli.stream` (the
driver of ``explain`` and ``evaluate``, and the protocol they follow),
:mod:`~gradcam.cli.resume` (``--resume`` and ``--overwrite``), :mod:`~gradcam.cli.cost`
(the forward passes a run makes, ``--yes``), :mod:`~gradcam.cli.messages` (the lines on
standard error), and one per command, :mod:`~gradcam.cli.explain`,
:mod:`~gradcam.cli.evaluate`, :mod:`~gradcam.cli.report` and :mod:`~gradcam.cli.layers`. The model is loaded by
:mod:`gradcam.models.registry`, the work done by :mod:`gradcam.batch` with the library's
engine.

Exit status: 0 when every input was explained, 1 when some inputs failed (they are
listed, and the rest of the run completes) or the summary could not be written, 2 for a
usage error (bad option, input path, model file, class-names file, layer or class; outputs
that would be overwritten without ``--overwrite``; an interrupted run in ``--out`` without
``--resume``, or ``--resume`` with other settings; an output folder in use by another run;
a run that cannot fit in memory, or whose cost is above the threshold without ``--yes``),
130 when interrupted (``--resume`` goes on with the run).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from gradcam.cli import evaluate, explain, layers, report
from gradcam.cli.arguments import UsageError, build_parser, parse_arguments
from gradcam.io.journal import RunJournal

__all__ = ["UsageError", "build_parser", "main"]

_COMMANDS = {"explain": explain.run, "evaluate": evaluate.run, "report": report.run, "layers": layers.run}


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
        args = parse_arguments(parser, argv)
    except SystemExit as exit:  # --help, --version, or an argparse error (already printed)
        return exit.code if isinstance(exit.code, int) else 0
    try:
        with _sigterm_interrupts():
            return _COMMANDS[args.command](args)
    except UsageError as error:
        print(f"gradcam: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = ""
        if args.command in ("explain", "evaluate", "report") and RunJournal(args.out, args.command).exists():
            resume = " Run the same command with --resume to go on with it."
        print("\ngradcam: interrupted; files already written are complete, the run's summaries, "
              f"heatmaps, metrics.csv or report were not written.{resume}", file=sys.stderr)
        return 130
