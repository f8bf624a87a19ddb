"""Files on disk for the streaming pipeline behind ``gradcam explain``.

* :mod:`gradcam.io.inputs`: finding the image files to explain;
* :mod:`gradcam.io.files`: writing files atomically, through a run's temporary folder;
* :mod:`gradcam.io.lock`: the lock that keeps two runs out of one output folder;
* :mod:`gradcam.io.outputs`: a run's output folder and the names of the files in it;
* :mod:`gradcam.io.images`: encoding the overlays (PNG, JPEG, WebP);
* :mod:`gradcam.io.summary`: ``summary.csv``, ``summary.json`` and ``heatmaps.npz``.

None of these modules imports TensorFlow.
"""
