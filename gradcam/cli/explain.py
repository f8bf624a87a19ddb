"""``gradcam explain``: stream image files through the engines, drawing an overlay of
each map, and write the heatmaps and the summaries (:func:`gradcam.batch.explain_files`).

The checks, the set-up and the run are those shared with ``gradcam evaluate``
(:func:`gradcam.cli.stream.run_command`).
"""

from __future__ import annotations

from gradcam.cli.arguments import flag_errors
from gradcam.cli.stream import StreamCommand, plural, run_command, run_time, say
from gradcam.io.outputs import RUN_FILES
from gradcam.batch import RunSettings, explain_files


class Explain(StreamCommand):
    """``gradcam explain``: overlays, ``heatmaps.npz`` and the summaries."""

    name = "explain"
    doing = "explaining"
    recorded_options = ("colormap", "alpha_limit", "overlay_size", "format", "compress", "overlays")
    run_files = RUN_FILES
    overlays = True
    empty_maps_where = '"empty" in summary.json'

    def check(self, args) -> None:
        """Check the colormap, format and ``--compress`` before anything else."""
        with flag_errors():
            self.settings(args)

    def settings(self, args, image_shape=(1, 1), preprocess=None, targets=None) -> RunSettings:
        return RunSettings(
            image_shape=image_shape, preprocess=preprocess, targets=targets, batch_size=args.batch_size,
            colormap=args.colormap, alpha_limit=args.alpha_limit, overlay_size=args.overlay_size,
            format=args.format, compress=args.compress, overlays=args.overlays,
            eigen_smooth=args.eigen_smooth, aug_smooth=args.aug_smooth)

    def work(self, args, setup, inputs, folder, progress, journal):
        return explain_files(setup.engines, inputs, folder, setup.settings, progress=progress, header=setup.header,
                             journal=journal)

    def summary(self, args, setup, report) -> None:
        failed = f"; {len(report.failed)} failed (listed in summary.json)" if report.failed else ""
        say(args, f"gradcam: explained {report.ok} of {plural(report.total, 'image')}{run_time(report)}{failed}. "
            f"Outputs in {args.out}")


def run(args) -> int:
    """``gradcam explain``: run the pipeline, return the exit status.

    Raises:
        UsageError: a bad option, model, layer, target, class-names file or input, an
            output folder in use or in the way, or not enough memory.
    """
    return run_command(Explain(), args)
