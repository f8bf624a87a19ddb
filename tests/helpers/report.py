"""Checking a report's HTML page: with a parser, and in headless Chromium where installed."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

# Appended to a copy of the page in the browser: reports every image that did not decode
# and every table that is not displayed, then that it ran.
CHECKER = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) console.log("CHECK-FAIL broken image: " + img.alt);
  }
  for (const table of document.querySelectorAll("table")) {
    if (table.offsetHeight === 0 || table.offsetWidth === 0) console.log("CHECK-FAIL hidden table");
  }
  console.log("CHECK-DONE " + document.images.length + " images, " + document.querySelectorAll("table").length + " tables");
});
</script>"""


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.scripts, self.links = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "iframe", "object", "embed") or (tag == "a" and "href" in attrs):
            self.links.append(tag)


def check_page(text: str, images: int) -> Page:
    """Parse the page; check it is self-contained, with its tables and decodable images."""
    page = Page()
    page.feed(text)
    page.close()
    assert text.startswith("<!DOCTYPE html>")
    assert page.scripts == 0 and not page.links
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing fetched
    assert page.tags.count("table") == 2  # methods x metrics, gallery
    assert len(page.images) == images
    for uri in page.images:
        assert uri.startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert picture.size[0] > 10 and np.asarray(picture.convert("L")).std() > 0
    return page




def chromium() -> str | None:
    """The path of a Chromium executable, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def open_in_chromium(page: Path, folder: Path, executable: str) -> tuple[list[str], np.ndarray]:
    """Open a copy of ``page`` (with :data:`CHECKER`) in headless Chromium.

    Returns:
        ``(console, screenshot)``: the console's messages, and the screenshot as an RGB array.
    """
    checked = folder / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECKER + "\n</body>"))
    shot = folder / "screenshot.png"
    run = subprocess.run(
        [executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1200,2000", "--enable-logging=stderr", "--v=0", checked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    console = [line.split("] ", 1)[1] for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return console, np.asarray(Image.open(shot).convert("RGB"))
