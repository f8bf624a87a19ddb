"""The package's public names, and what importing it costs."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import gradcam


@pytest.mark.parametrize("name", gradcam.__all__)
def test_every_public_name_resolves(name):
    assert getattr(gradcam, name) is not None
    assert name in dir(gradcam)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'gradcam' has no attribute 'explain'"):
        gradcam.explain


def test_import_and_image_loading_do_not_load_tensorflow():
    code = (
        "import sys, gradcam; gradcam.image_from_path; gradcam.imagenet.class_name(1); "
        "from gradcam import cli; cli.build_parser(); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_licence_is_an_spdx_string():
    # A TOML table (``{text = "MIT"}``) makes setuptools print a deprecation warning three
    # times in every install; an SPDX string needs setuptools 77.
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_make_lab_installs_jupyterlab_and_opens_the_tutorials():
    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert any(req.startswith("jupyterlab") for req in project["project"]["optional-dependencies"]["lab"])
    # -n prints the recipe without running it; -o marks the environment as up to date.
    # --no-print-directory: under "make test" this make is a sub-make, which would print
    # "make[1]: Entering directory" lines around the recipe.
    done = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed-stamp", "lab"], cwd=root,
                          capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines == [
        '.venv/bin/python -m pip install --quiet -e ".[lab]"',
        ".venv/bin/python -m jupyter lab --notebook-dir=tutorials ",
    ]


def test_the_weight_reader_does_not_load_keras():
    code = "import sys, gradcam.models.torch_weights; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from gradcam import models

    assert models.efficientnet_lite.EfficientNetLite0 is not None
    with pytest.raises(AttributeError, match="no attribute 'resnet'"):
        models.resnet


def test_the_backends_are_extras_installed_and_tested_by_make():
    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["jax"] == ["jax>=0.4.30"] and extras["torch"] == ["torch>=2.3"]
    # -W: the environment is out of date, so its recipe is printed too (-n runs nothing).
    done = subprocess.run(["make", "-n", "--no-print-directory", "-W", "pyproject.toml", "venv", "unit"], cwd=root,
                          capture_output=True, text=True, check=True)
    lines = [line.strip() for line in done.stdout.splitlines()]
    torch_first = lines.index('.venv/bin/python -m pip install --quiet "torch==2.13.0"')
    assert lines[torch_first + 1] == '.venv/bin/python -m pip install --quiet -e ".[test,docs,jax,torch,ray,hub]"'
    # everything, on TensorFlow, in two processes, each test file in one of them
    everything = ".venv/bin/python -m pytest -n 2 --dist loadfile tests"
    assert everything in lines
    loop = " ".join(lines[lines.index(everything) + 1:])
    assert loop.startswith("for backend in jax torch; do")
    assert "-m pytest -n 2 --dist loadfile tests/" in loop
    for name in ("test_backend", "test_capture", "test_engine", "test_api", "test_methods"):
        assert f"tests/{name}.py" in loop


def test_the_api_reference_lists_every_method():
    import gradcam

    text = (Path(__file__).resolve().parent.parent / "docs" / "api.rst").read_text()
    for name, cls in gradcam.METHODS.items():
        assert f".. autoclass:: gradcam.{cls.__name__}\n" in text, name
        assert getattr(gradcam, cls.__name__) is cls and cls.__name__ in gradcam.__all__
    assert "gradcam.METHODS" in text
