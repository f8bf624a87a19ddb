"""The report's page in a real browser: headless Chromium (Debian's ``chromium``; CI
installs it) opens it with no console message, every image decoded, its tables shown, and
a screenshot that is not blank. Where Chromium is absent the page is validated with a
parser instead, and the test says so."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers.report import check_page, chromium, open_in_chromium
from helpers.tiny import make_functional

import gradcam

IMAGES = (np.random.default_rng(3).random((3, 4, 4, 1)) * 10).astype(np.float32)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    gradcam.report(make_functional(), IMAGES, methods=["gradcam"], out=out, steps=3, resamples=100,
                   randomisation_steps=2, smooth_samples=2)
    return out / "report.html"


def test_page_in_a_browser(page, tmp_path, executable=None):
    executable = chromium() if executable is None else executable or None
    if executable is None:
        check_page(page.read_text(), images=18)
        # A warning: pytest lists it in its summary, so the run says what it checked.
        warnings.warn("Chromium not found: the report page was validated with an HTML parser instead of a browser.")
        return
    console, screenshot = open_in_chromium(page, tmp_path, executable)
    assert console and console[-1].startswith('"CHECK-DONE'), console
    assert len(console) == 1, console  # no error, no broken image, no hidden table
    # Per image the photo and 4 maps (gradcam, randomcam, gaussian, sobel); 3 plots; 2 tables.
    assert console[0].startswith('"CHECK-DONE 18 images, 2 tables"'), console
    # Not blank: many colours, and far from uniformly white.
    assert len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 50
    assert screenshot.std() > 10 and (screenshot < 250).any(axis=2).mean() > 0.02


def test_the_browser_check_sees_a_broken_image(page, tmp_path):
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium not found: the check of the browser check needs it")
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    console, _ = open_in_chromium(broken, tmp_path, executable)
    assert any("CHECK-FAIL broken image" in line for line in console), console


def test_without_chromium_the_parser_checks_the_page_and_says_so(page, tmp_path):
    with pytest.warns(UserWarning, match="validated with an HTML parser instead of a browser"):
        test_page_in_a_browser(page, tmp_path, executable=False)
