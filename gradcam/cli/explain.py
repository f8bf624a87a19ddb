"""``gradcam explain``: stream image files through the engines, drawing an overlay of
each map, and write the heatmaps and the summaries (:func:`gradcam.pipeline.explain_files`).

The checks, the set-up and the run are those shared with ``gradcam evaluate``
(:mod:`gradcam.cli.stream`).
"""

from __future__ import annotations

from gradcam.cli.arguments import UsageError
from gradcam.cli.stream import (
    check_before_model,
    output_folder,
    refuse_existing,
    report_empty_maps,
    run_stream,
    say,
)
from gradcam.io.outputs import RUN_FILES
from gradcam.pipeline import RunSettings, explain_files, one_line


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


def run(args) -> int:
    """``gradcam explain``: run the pipeline, return the exit status.

    Raises:
        UsageError: a bad option, model, layer, target, class-names file or input, an
            output folder in use or in the way, or not enough memory.
    """
    _settings(args)  # the colormap, format and --compress, before anything else
    checked = check_before_model(args)
    with output_folder(args.out) as folder:
        refuse_existing(args, checked.inputs, RUN_FILES, overlays=True)

        def work(setup, progress):
            return explain_files(setup.engines, checked.inputs, folder, setup.settings, progress=progress,
                                 header=setup.header)

        setup, report = run_stream(args, checked, folder, lambda *shape: _settings(args, *shape), work,
                                   "explaining")
    if report is None:
        return 1
    report_empty_maps(report, setup, '"empty" in summary.json')
    failed = f"; {len(report.failed)} failed (listed in summary.json)" if report.failed else ""
    say(args, f"gradcam: explained {report.ok} of {report.total} images in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s){failed}. Outputs in {args.out}")
    return 1 if report.failed else 0
