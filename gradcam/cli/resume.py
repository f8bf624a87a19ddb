"""``--resume`` and ``--overwrite``: the run's journal in ``--out``
(:class:`gradcam.io.journal.RunJournal`) checked against the command's options before
the model loads, and the earlier run's own files removed when starting again."""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

from gradcam.cli.arguments import METHOD_FLAGS, UsageError, flag_of
from gradcam.cli.messages import say
from gradcam.cli.model import check_method_names
from gradcam.io.journal import RunJournal, inputs_digest, setting_differences
from gradcam.io.outputs import existing_outputs, previous_run_files

if TYPE_CHECKING:
    from gradcam.cli.stream import StreamCommand


def recorded_options(args, command: StreamCommand) -> dict:
    """The options that make a run's outputs what they are, as JSON values: a resumed
    run must give the same (``--batch-size`` and the display options may change)."""
    options = {name: getattr(args, name) for name in RECORDED_OPTIONS + command.recorded_options}
    options["method"] = check_method_names(args.method)  # the default, spelled out
    options.update({name: getattr(args, name) for name in SMOOTHING})
    options.update(command.recorded_defaults(args))
    return json.loads(json.dumps(options))


#: The options of both commands recorded in a run's journal (:func:`recorded_options`).
RECORDED_OPTIONS = ("model", "image_size", "target", "decode", "similar_to", "class_names", "method", *METHOD_FLAGS,
                    "layer", "score", "preprocess")
#: ``--eigen-smooth`` and ``--aug-smooth``: ``False`` in a journal that lacks them (an
#: earlier version's).
SMOOTHING = ("eigen_smooth", "aug_smooth")


def check_journal(args, journal: RunJournal, inputs, command: StreamCommand) -> bool:
    """Decide, before the model loads, whether the run resumes the journal in ``--out``.

    Returns:
        Whether to resume it (``--resume`` with a journal whose settings and inputs are
        the run's).

    Raises:
        UsageError: ``--resume`` with other settings or inputs than the run's, or with
            nothing to resume when ``--out`` holds a finished run; a journal in ``--out``
            without ``--resume`` or ``--overwrite``.
    """
    if not journal.exists():
        if args.resume:
            existing = existing_outputs(args.out, inputs, run_files=command.run_files, overlays=False)
            if existing:
                raise UsageError(f"--resume: the run in --out {args.out!r} finished ({existing[0]!r} exists): "
                                 "there is nothing to resume. Pass --overwrite to run it again.")
            say(args, f"gradcam: nothing to resume in {args.out!r}: starting the run.")
        return False
    try:
        info = journal.run_info()
    except ValueError as error:
        raise UsageError(f"--out: {error} Pass --overwrite to start the run again.") from None
    done = len({record.get("path") for record in journal.read_records() if record.get("status") == "ok"})
    if not args.resume:
        if args.overwrite:
            return False
        raise UsageError(f"--out {args.out!r} holds an interrupted run ({done} of {info.get('inputs')} images "
                         "done). Pass --resume to go on with it, --overwrite to start it again, or choose "
                         "another --out.")
    recorded = {**dict.fromkeys(SMOOTHING, False), "decode": None, **info["settings"]}  # an earlier version's
    differences = setting_differences(recorded, recorded_options(args, command))
    if differences:
        name, then, now = differences[0]
        raise UsageError(f"--resume: {flag_of(name)} differs from the interrupted run's: it was {then!r}, "
                         f"now {now!r}. Resume with the run's settings, or pass --overwrite to start again.")
    if info.get("digest") != inputs_digest(item.path for item in inputs):
        raise UsageError(f"--resume: the inputs differ from the interrupted run's ({info.get('inputs')} files "
                         f"then, {len(inputs)} now): resume with the same paths, or pass --overwrite to start "
                         "again.")
    return True


def remove_previous_run(args, journal: RunJournal, command: StreamCommand) -> None:
    """``--overwrite``: remove the files the earlier run in ``--out`` lists as its own
    (:func:`~gradcam.io.outputs.previous_run_files`) and its journal."""
    for path in previous_run_files(args.out, command.run_files, journal):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    journal.remove()
