"""Build ``cat_and_coffee.jpg``: two sample photos side by side, one object in each half.

The tutorials use this picture to show how the explained class (the *target*) moves the
heatmap: the model's top class sits on one object, a second class on the other.

Each half is a square crop of a committed sample photo, resized to a common height and
pasted next to the other; nothing else is changed. Pillow is the only requirement::

    python gradcam/samples/make_composite.py

The output is written next to this script and overwrites an existing file.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
HEIGHT = 300  # pixels; each half is HEIGHT x HEIGHT
QUALITY = 90  # JPEG quality of the output

# (file, crop box (left, upper, right, lower) in that file's pixels), left to right.
PARTS = (
    ("chelsea.jpg", (70, 0, 370, 300)),  # the cat's face
    ("coffee.jpg", (78, 0, 478, 400)),  # the cup on its saucer
)
OUTPUT = "cat_and_coffee.jpg"


def half(path: Path, box: tuple[int, int, int, int]) -> Image.Image:
    """Crop ``box`` out of the RGB image at ``path`` and scale it to HEIGHT x HEIGHT."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        left, upper, right, lower = box
        if not (0 <= left < right <= image.width and 0 <= upper < lower <= image.height):
            raise ValueError(
                f"Crop box {box} does not fit inside {path.name} "
                f"({image.width} x {image.height} pixels)."
            )
        return image.crop(box).resize((HEIGHT, HEIGHT), Image.Resampling.LANCZOS)


def make_composite() -> Path:
    """Write the composite next to this script and return its path."""
    halves = [half(HERE / name, box) for name, box in PARTS]
    canvas = Image.new("RGB", (HEIGHT * len(halves), HEIGHT))
    for i, image in enumerate(halves):
        canvas.paste(image, (i * HEIGHT, 0))
    out = HERE / OUTPUT
    canvas.save(out, quality=QUALITY, optimize=True)
    return out


if __name__ == "__main__":
    path = make_composite()
    print(f"wrote {path.name} ({path.stat().st_size // 1024} KiB)")
