"""The sample photos installed with the package, and the README's quick start."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import gradcam

ROOT = Path(__file__).resolve().parent.parent


def test_names_lists_every_photo_and_path_finds_each():
    names = gradcam.samples.names()
    assert names == ("astronaut", "cat_and_coffee", "chelsea", "coffee", "motorcycle", "rocket")
    for name in names:
        path = gradcam.samples.path(name)
        assert os.path.isabs(path) and path.endswith(f"{name}.jpg")
        with Image.open(path) as image:
            assert image.format == "JPEG"
    assert gradcam.samples.path("coffee.jpg") == gradcam.samples.path("coffee")


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError, match=r"No sample photo is named 'chelsae'\. Did you mean 'chelsea'\?.*astronaut"):
        gradcam.samples.path("chelsae")
    with pytest.raises(TypeError, match="name must be a string"):
        gradcam.samples.path(3)


def test_package_data_includes_the_photos():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"gradcam.samples" = ["*.jpg", "README.rst"]' in text


def _python_blocks(rst: str) -> list[str]:
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", rst)
    return ["\n".join(line[4:] for line in block.splitlines()) for block in blocks]


@pytest.mark.parametrize("page, last_line", [
    ("README.rst", "print('OK', expl.targets[0].name)"),
    ("docs/quickstart.rst", "print('OK', len(blocks_ran))"),
])
def test_quick_start_runs_as_written_from_another_folder(tmp_path, page, last_line):
    blocks = _python_blocks((ROOT / page).read_text())
    assert blocks, f"{page} has no Python code block"
    code = "blocks_ran = []\n" + "\nblocks_ran.append(1)\n".join(blocks) + "\n" + last_line + "\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].startswith("OK")
    assert os.listdir(tmp_path) == [], "the quick start writes no file"
