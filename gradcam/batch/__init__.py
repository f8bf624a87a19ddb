"""Explaining or evaluating many image files, streamed: what ``gradcam explain`` and
``gradcam evaluate`` run.

Modules: :mod:`~gradcam.batch.settings` (the settings and reports),
:mod:`~gradcam.batch.decoding` (the workers' decoding), :mod:`~gradcam.batch.run` (the
template of a run), :mod:`~gradcam.batch.explain` and :mod:`~gradcam.batch.evaluate` (the
two kinds of run).

A run is a pipeline, so that decoding and drawing overlap the model and memory stays
flat whatever the number of files:

1. worker threads (one per CPU core) read each file (:func:`gradcam.load_image`), cut
   the window a keras-hub classifier's preprocessor keeps (:func:`gradcam.hub.picture_view`),
   resize it for the model (:func:`gradcam.image.doc_from_image`) and, when overlays are
   drawn, for the overlay (:func:`overlay_base`), at most two batches ahead of the engine;
2. the calling thread stacks the decoded images into batches, preprocesses them and runs
   the engine of each method on them (:meth:`gradcam.GradCAM.compute`);
3. then the run's own step: :func:`explain_files` has the worker threads draw each
   overlay (:func:`gradcam.render.overlay_heatmap`) and save it
   (:func:`gradcam.io.images.encode_image`, :func:`gradcam.io.files.atomic_file`);
   :func:`evaluate_files` runs each metric on each map in the calling thread (the
   metrics run the model);
4. a recording thread takes the images in input order and appends their results to the
   run's files (:class:`gradcam.io.summary.SummaryWriter`,
   :class:`gradcam.io.evaluation.MetricsWriter`).

Pillow, zlib and TensorFlow release the GIL while they decode, resize, encode and
compute, so the threads share the CPU cores. A file that cannot be read is recorded as
failed and the run goes on. Every file is written under a temporary name in the run's
temporary folder, then renamed: an interrupted run leaves complete files or none.

The threads pass typed records: :class:`~gradcam.batch.decoding._Decoded` (a worker to the engine's thread),
:class:`~gradcam.batch.run._Batch` (the engine's thread to the recording thread) and, for overlays, the
futures of the drawing workers. ``_Pipeline`` is the template of a run; each kind of run (``_Explaining``,
``_Evaluating``) overrides its step and its files; the decoding is its ``_Decoder``'s.
"""

from __future__ import annotations

from gradcam.batch.decoding import overlay_base
from gradcam.batch.evaluate import evaluate_files
from gradcam.batch.explain import TOP_CLASSES, explain_files
from gradcam.batch.settings import EvaluationReport, RunReport, RunSettings

__all__ = ["TOP_CLASSES", "EvaluationReport", "RunReport", "RunSettings", "evaluate_files", "explain_files",
           "overlay_base"]
