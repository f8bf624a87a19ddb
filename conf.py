"""Sphinx configuration of the gradcam documentation site.

The repository root is the Sphinx source directory: ``index.rst`` (the front page, which
reuses ``README.rst``), the pages in ``docs/`` and the notebooks in ``tutorials/``.
Build it with ``make docs`` (or ``make test``), which call::

    python -m sphinx -W --keep-going -b html . _build/html

Whether nbsphinx executes the tutorial notebooks is read from the environment variable
``GRADCAM_DOCS_EXECUTE``:

``always`` (the default)
    run every notebook and render the fresh outputs (``make docs``);
``never``
    render the outputs stored in the notebooks (``make test``, right after nbval has
    executed them and compared the results with those stored outputs);
``auto``
    run only the notebooks that have no stored outputs.

Whatever the mode, the HTML build ends by writing ``gradcam.report`` on the sample photos
into the site (``reports/samples/report.html``, embedded by ``docs/report.rst``).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

# -- Project -------------------------------------------------------------------------

project = "gradcam"
author = "The gradcam developers"
copyright = "The gradcam developers"
try:
    release = metadata.version("gradcam")
except metadata.PackageNotFoundError:  # building from a checkout that is not installed
    release = "unknown"
version = release

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "nbsphinx",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}

# Sphinx reads every file under the source directory, which here is the whole
# repository: keep it to index.rst, docs/ and tutorials/.
exclude_patterns = [
    "_build",
    "build",
    "dist",
    ".venv",
    "venv",
    ".git",
    ".ci",
    "**/.ipynb_checkpoints",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    "gradcam",
    "gradcam-out",
    "tests",
    "benchmarks",
    "README.rst",  # included by index.rst
]

# -- autodoc and napoleon (Google-style docstrings) ----------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not duplicate object entries

# -- nbsphinx ------------------------------------------------------------------------

_EXECUTE_MODES = ("always", "never", "auto")
nbsphinx_execute = os.environ.get("GRADCAM_DOCS_EXECUTE", "always").strip().lower()
if nbsphinx_execute not in _EXECUTE_MODES:
    raise ValueError(
        f"GRADCAM_DOCS_EXECUTE must be one of {', '.join(_EXECUTE_MODES)}; "
        f"got {os.environ['GRADCAM_DOCS_EXECUTE']!r}."
    )
nbsphinx_kernel_name = "python3"  # the kernel of the Python that runs Sphinx
# TensorFlow writes some C++ log lines straight to file descriptor 2; keep them in the
# terminal, out of the rendered pages, as nbval and `make notebooks` do.
nbsphinx_execute_arguments = ["--IPKernelApp.capture_fd_output=False"]
nbsphinx_timeout = 1800  # seconds per cell; the first call of a model compiles it
nbsphinx_allow_errors = False  # a failing tutorial fails the build
nbsphinx_prolog = r"""
{% set notebook = env.doc2path(env.docname, base=None) | string %}

.. only:: html

    .. note::

        This page was generated from the notebook ``{{ notebook }}``. To run it
        yourself, open that file in Jupyter from a checkout of the repository.
"""

# -- HTML ----------------------------------------------------------------------------

html_theme = "furo"
html_title = f"gradcam {release}"

# -- The tutorials page --------------------------------------------------------------

_TUTORIALS_PAGE = "docs/tutorials"
_TUTORIALS_GLOB = "   /tutorials/*\n"


def _skip_empty_tutorials_glob(app, docname, source):
    """Drop the tutorials toctree's glob while tutorials/ holds no notebook.

    Sphinx warns about a glob that matches nothing (and, with ``-W``, fails), with no
    warning type that ``suppress_warnings`` could name.
    """
    if docname != _TUTORIALS_PAGE:
        return
    if _TUTORIALS_GLOB not in source[0]:
        raise ValueError(f"{_TUTORIALS_PAGE}.rst no longer has the line {_TUTORIALS_GLOB!r}.")
    if not any((Path(app.srcdir) / "tutorials").glob("*.ipynb")):
        source[0] = source[0].replace(_TUTORIALS_GLOB, "")


# -- The sample report ----------------------------------------------------------------

#: Where the report on the sample photos goes in the built site (docs/report.rst embeds it).
SAMPLE_REPORT = "reports/samples"
#: Its settings: the three default methods on the six sample photos with short step counts
#: (about a minute on 2 CPUs), as in the tutorial "Which explanation to trust?".
SAMPLE_REPORT_OPTIONS = dict(methods=["gradcam", "gradcam++", "layercam"], steps=10, randomisation_steps=2,
                             smooth_samples=3, resamples=2000)


def _write_sample_report(app, exception):
    """Write ``gradcam.report`` on the sample photos into the built HTML site."""
    if exception is not None or app.builder.format != "html":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import gradcam
    from gradcam.models import efficientnet_lite

    model = efficientnet_lite.EfficientNetLite0(weights="imagenet")
    paths = [gradcam.samples.path(name) for name in gradcam.samples.names()]
    gradcam.report(model, paths, preprocess=efficientnet_lite.preprocess_input,
                   out=Path(app.outdir) / SAMPLE_REPORT, **SAMPLE_REPORT_OPTIONS)


def setup(app):
    app.connect("source-read", _skip_empty_tutorials_glob)
    app.connect("build-finished", _write_sample_report)
