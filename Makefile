# Everything a fresh machine needs, from Python 3 and make alone.
#   make docs   build the documentation site (executes the tutorials) into _build/html
#   make test   unit tests (the backend-neutral ones on TensorFlow, JAX and PyTorch), the
#               tutorials under nbval, and the docs build (warnings = errors)
#   make notebooks   execute the tutorials and store their outputs (nbval's reference)
#   make lab    install JupyterLab into the environment and open the tutorials in it
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2
# The tutorials' stored outputs and the site are made with TensorFlow, Keras's default:
# whatever KERAS_BACKEND the shell has, the targets below run on TensorFlow unless they
# name another backend themselves.
export KERAS_BACKEND := tensorflow

# pip's plain "torch" is a CUDA build of several GB on Linux; this one is installed first,
# so that the torch extra (a range) is already met. Set TORCH= to keep an installed torch.
TORCH ?= torch==2.13.0
# The tests that run once per Keras backend: what does not depend on the backend must
# give the same results on each. The whole suite runs on TensorFlow.
BACKEND_TESTS := tests/test_backend.py tests/test_capture.py tests/test_engine.py tests/test_api.py \
                 tests/test_methods.py $(wildcard tests/test_method_*.py) \
                 $(wildcard tests/test_metrics_*.py) tests/test_pipeline.py tests/test_cli_evaluate.py \
                 tests/test_tokens.py tests/test_hub.py \
                 tests/test_engine_factory.py \
                 tests/test_keras_callback.py tests/test_differentiable_maps.py tests/test_keras_penalty.py
BACKEND_TESTS += tests/test_report.py
BACKEND_TESTS += tests/test_targets.py
BACKEND_TESTS += tests/test_ray_targets.py
OTHER_BACKENDS := jax torch
BACKEND_TESTS += tests/test_models_face_detector.py tests/test_models_with_targets.py
BACKEND_TESTS += tests/test_device_maps.py

NOTEBOOKS := $(wildcard tutorials/*.ipynb)
SANITIZE  := tutorials/sanitize.cfg

# nbsphinx converts the notebooks' Markdown with pandoc, which the pypandoc-binary wheel
# (docs extra) bundles in pypandoc/files/. Expanded when a recipe runs, after the venv exists.
PANDOC_DIR = $(shell $(PY) -c 'import os, pypandoc; print(os.path.join(os.path.dirname(pypandoc.__file__), "files"))')
# -E: read every source again, so notebooks and docstrings never come from a stale cache.
SPHINXOPTS ?= -W --keep-going
SPHINX = PATH="$(PANDOC_DIR):$$PATH" $(PY) -m sphinx $(SPHINXOPTS) -E -d _build/doctrees -b html . _build/html

.PHONY: venv test unit nbval notebooks docs docs-stored clean lab
.NOTPARALLEL:

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(PY) -m pip install --quiet "$(TORCH)")
	$(PY) -m pip install --quiet -e ".[test,docs,jax,torch,ray,hub]"
	touch $(STAMP)

venv: $(STAMP)

# The tests run in JOBS processes (pytest-xdist), a test file or notebook in one process
# from start to end (--dist loadfile / loadscope: its module fixtures, Ray clusters and
# kernels are made once); JOBS=0 runs them in this process. Most tests use one core, so
# two processes on two cores take about 0.65x the time of one.
JOBS ?= 2
XDIST = -n $(JOBS) $(if $(filter 0,$(JOBS)),,--dist $(1))

# PyTorch's CPU threads spin while they wait for work: one thread is faster for the tiny
# test models, and leaves the other core to the rest of the machine.
unit: $(STAMP)
	$(PY) -m pytest $(call XDIST,loadfile) tests
	for backend in $(OTHER_BACKENDS); do \
	    KERAS_BACKEND=$$backend OMP_NUM_THREADS=1 $(PY) -m pytest $(call XDIST,loadfile) $(BACKEND_TESTS) || exit 1; \
	done

# Executes each notebook and compares every cell's output with the stored one.
nbval: $(STAMP)
ifeq ($(NOTEBOOKS),)
	@echo "nbval: no notebooks in tutorials/ yet, nothing to check"
else
	$(PY) -m pytest $(call XDIST,loadscope) --nbval --nbval-current-env --nbval-sanitize-with $(SANITIZE) $(NOTEBOOKS)
endif

# Executes the tutorials and stores their outputs in the notebooks: the reference that
# nbval compares with. Log lines that TensorFlow's C++ code writes straight to file
# descriptor 2 stay in the terminal, as they do under nbval and in the docs build.
notebooks: $(STAMP)
ifeq ($(NOTEBOOKS),)
	@echo "notebooks: no notebooks in tutorials/ yet, nothing to execute"
else
	$(PY) -m nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=python3 \
	    --ExecutePreprocessor.timeout=1800 \
	    --ExecutePreprocessor.record_timing=False \
	    '--ExecutePreprocessor.extra_arguments=["--IPKernelApp.capture_fd_output=False"]' \
	    $(NOTEBOOKS)
endif

# The site, executing every tutorial notebook.
docs: $(STAMP)
	GRADCAM_DOCS_EXECUTE=always $(SPHINX)

# The site from the outputs stored in the notebooks (the ones nbval has just checked).
docs-stored: $(STAMP)
	GRADCAM_DOCS_EXECUTE=never $(SPHINX)

test: unit nbval docs-stored

clean:
	rm -rf _build

# Runs the tutorials yourself: JupyterLab (the lab extra) in the project's environment,
# opened on tutorials/. LAB_ARGS passes options, e.g. make lab LAB_ARGS=--no-browser.
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m pip install --quiet -e ".[lab]"
	$(PY) -m jupyter lab --notebook-dir=tutorials $(LAB_ARGS)

# Times gradcam against the model's own compiled pass and against eli5 / tf-keras-vis
# (docs/performance.rst shows its output). Installs the bench extra first.
.PHONY: bench
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/compare_peers.py
