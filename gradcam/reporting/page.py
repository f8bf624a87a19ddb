"""The report as one self-contained HTML page: text, tables, and plots as embedded PNGs.

Nothing on the page is fetched: every picture is a ``data:image/png;base64`` URI, the
style sheet is inline, and there is no script. It reads the same in a browser offline,
in a mail attachment, or printed.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (rendering to files; never opens a window)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gradcam.image import image_from_array  # noqa: E402
from gradcam.render import overlay_heatmap  # noqa: E402

#: The side of a gallery thumbnail, in pixels.
THUMBNAIL = 112

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#1b1b1b;background:#fff;line-height:1.45;padding:0 1em}
h1{font-size:1.7em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:right;vertical-align:top}
th{background:#f1f3f5}td.name,th.name{text-align:left}
tr.control td{background:#fafafa;color:#555}td.best{font-weight:bold;background:#e7f5e9}
td.fail{color:#b00020;font-weight:bold}.ci{color:#666;font-size:.85em}
ul.verdict li{margin:.25em 0}.plots img{max-width:100%;margin:.3em 0}
.gallery td{text-align:center}.gallery img{display:block;margin:auto}
.small{font-size:.85em;color:#555}
"""


def _png(figure_or_image) -> str:
    """A ``data:`` URI of a matplotlib figure or a PIL image, as PNG."""
    buffer = io.BytesIO()
    if isinstance(figure_or_image, Image.Image):
        figure_or_image.save(buffer, format="PNG")
    else:
        figure_or_image.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(figure_or_image)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{size}>'


def _cell(interval: dict) -> str:
    if interval["mean"] is None:
        return f'n/a <span class="ci">(n = {interval["n"]})</span>'
    low, high = interval["low"], interval["high"]
    return (f'{interval["mean"]:.3f} <span class="ci">[{low:.3f}, {high:.3f}]</span>'
            f'<br><span class="ci">n = {interval["n"]}</span>')


def _table(data) -> str:
    metrics = list(data["metrics"])
    confidence = round(100 * data["settings"]["confidence"])
    head = "".join(
        f'<th>{html.escape(data["metrics"][m]["label"])}<br><span class="ci">'
        f'{"higher" if data["metrics"][m]["higher_is_better"] else "lower"} is better</span></th>' for m in metrics)
    lines = [f'<table class="summary"><caption class="small">Mean [{confidence}% bootstrap confidence interval], '
             f'number of images</caption><tr><th class="name">Map</th><th class="name">Kind</th>{head}</tr>']
    for row in data["rows"]:
        name = row["name"]
        cells = []
        for metric in metrics:
            classes = []
            if data["comparisons"][metric]["best"] == name:
                classes.append("best")
            if metric in data["sanity_failures"].get(name, []):
                classes.append("fail")
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{_cell(data['summary'][name][metric])}</td>")
        lines.append(f'<tr class="{row["kind"]}"><td class="name">{html.escape(name)}</td>'
                     f'<td class="name">{row["kind"]}</td>{"".join(cells)}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _curve_plot(data, metric: str) -> str:
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    for name, band in data["curves"][metric].items():
        mean = np.array(band["mean"], float)
        x = np.linspace(0, 1, len(mean))
        style = "--" if next(r["kind"] for r in data["rows"] if r["name"] == name) == "control" else "-"
        axes.plot(x, mean, style, label=name)
        axes.fill_between(x, np.array(band["low"], float), np.array(band["high"], float), alpha=0.18)
    axes.set_xlabel("fraction of pixels " + ("removed" if metric == "deletion" else "inserted"))
    axes.set_ylabel("target's score")
    axes.set_title(f"{data['metrics'][metric]['label']}: mean and {round(100 * data['settings']['confidence'])}% band")
    axes.legend(fontsize="small")
    return _img(_png(figure), f"{metric} curves")


def _randomisation_plot(data) -> str:
    figure, panels = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for name, entry in data["randomisation"].items():
        if "randomisation" not in entry or len(entry["randomisation"]["layers"]) < 2:
            continue
        layers = entry["randomisation"]["layers"]
        for panel, key in zip(panels, ("spearman", "ssim")):
            means = [np.nanmean(np.array(step, float)) if any(v is not None for v in step) else np.nan
                     for step in entry["randomisation"][key]]
            panel.plot(range(len(layers)), means, marker="o", label=name)
            panel.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize="x-small")
    for panel, title in zip(panels, ("Spearman rank correlation", "SSIM")):
        panel.set_title(f"{title} with the trained model's maps", fontsize="small")
        panel.set_ylim(-1.05, 1.05)
        panel.axhline(0, color="#999", linewidth=0.8)
    panels[0].legend(fontsize="small")
    return _img(_png(figure), "cascading randomisation")


def _thumbnail(image: Image.Image, heat=None) -> str:
    picture = image if heat is None else overlay_heatmap(image, np.clip(heat, 0, 1)).convert("RGB")
    scale = THUMBNAIL / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # Small images (a model's own tiny inputs) are enlarged as blocks, photos reduced smoothly.
    return _png(picture.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS))


def thumbnails(image, maps) -> dict[str, str]:
    """An image's gallery thumbnails: the photo, and each map over it.

    Args:
        image: the image ``(H, W, C)``, RGB 0..255 (as loaded, before preprocessing).
        maps: the maps by row name, each ``(h, w)`` in [0, 1] at any resolution.

    Returns:
        ``data:`` URIs of PNGs of at most :data:`THUMBNAIL` pixels a side: ``"photo"``,
        then one per row, by name.
    """
    picture = image_from_array(image)
    found = {"photo": _thumbnail(picture)}
    found.update({name: _thumbnail(picture, heat) for name, heat in maps.items()})
    return found


def _gallery(data) -> str:
    pictures = data["_thumbnails"]
    names = [row["name"] for row in data["rows"]]
    metrics = [m for m in data["metrics"] if not data["metrics"][m]["sanity_check"]]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    lines = [f'<table class="gallery"><tr><th class="name">Image</th><th>photo</th>{head}</tr>']
    for n, info in enumerate(data["images"]):
        cells = [f'<td>{_img(pictures[n]["photo"], info["name"])}</td>']
        for name in names:
            numbers = "<br>".join(
                f'{html.escape(data["metrics"][m]["label"].split(" (")[0])}: '
                f'{"n/a" if data["values"][name][m][n] is None else format(data["values"][name][m][n], ".3f")}'
                for m in metrics)
            alt = f"{name} on {info['name']}"
            cells.append(f'<td>{_img(pictures[n][name], alt)}'
                         f'<span class="ci">{numbers}</span></td>')
        lines.append(f'<tr><td class="name">{html.escape(info["name"])}<br><span class="ci">class '
                     f'{info["target"]}</span></td>{"".join(cells)}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


def render_page(data) -> str:
    """The report's HTML page.

    Args:
        data: what :func:`gradcam.reporting.study.summarise` returns, with the thumbnails
            (``"_thumbnails"``).

    Returns:
        The page, one string of HTML5.
    """
    settings = data["settings"]
    verdict = "\n".join(f"<li>{html.escape(s)}</li>" for s in data["verdict"])
    curves = "\n".join(_curve_plot(data, m) for m in ("deletion", "insertion") if m in data["curves"])
    sanity = [m for m in data["metrics"] if data["metrics"][m]["sanity_check"]]
    randomisation = _randomisation_plot(data) if "randomisation" in sanity else ""
    passes = data["forward_passes"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gradcam report: {html.escape(settings["model"])}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Which method should I trust? {html.escape(settings["model"])}, {len(data["images"])} images</h1>
<p class="small">Methods: {html.escape(", ".join(settings["methods"]))}; controls:
{html.escape(", ".join(settings["controls"]) or "none")}. Seed {settings["seed"]},
{settings["resamples"]} bootstrap resamples, {settings["steps"]} deletion/insertion steps.
Forward passes: {passes["total"]} ({passes["maps"]} for the maps, {passes["shared"]} shared,
{passes["metrics"]} for the metrics, {passes["sanity"]} for the sanity checks).</p>
<h2>Verdict</h2>
<ul class="verdict">
{verdict}
</ul>
<h2>Methods and metrics</h2>
{_table(data)}
<h2>Deletion and insertion curves</h2>
<div class="plots">{curves or '<p>Not computed.</p>'}</div>
<h2>Sanity checks</h2>
<p class="small">Cascading model randomisation (Adebayo et al. 2018): the maps of a copy of the model whose
layers are randomised from the top, compared with the trained model's maps. Smooth MPRT and Efficient
MPRT (Hedstr&ouml;m et al. 2024): maps averaged over noisy copies of each image, and the rise in the maps'
entropy when the whole model is randomised. A map fails when its rank correlation stays at or above
0.5, or its complexity does not rise.</p>
<div class="plots">{randomisation or '<p>Not computed.</p>'}</div>
<h2>Gallery</h2>
{_gallery(data)}
</body>
</html>
"""
