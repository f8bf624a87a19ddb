"""Loading image files of every common kind, and checking image arrays."""

import os

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import gradcam.image
from gradcam import image_from_path, load_image
from gradcam.image import doc_from_image, image_from_array, to_batch


def save(tmp_path, image, name, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgb_file_resized(tmp_path):
    path = save(tmp_path, Image.new("RGB", (40, 20), (10, 20, 30)), "a.png")
    doc = image_from_path(path, image_shape=(8, 16))
    assert doc.shape == (1, 8, 16, 3) and doc.dtype == np.float32
    assert (doc[0] == [10, 20, 30]).all()
    assert image_from_path(path, image_shape=None).shape == (1, 20, 40, 3)


@pytest.mark.parametrize(
    "mode, color, expected",
    [
        ("L", 77, (77, 77, 77)),
        ("RGBA", (200, 100, 0, 255), (200, 100, 0)),
        ("RGBA", (0, 0, 0, 0), (255, 255, 255)),  # transparent -> white background
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path, mode, color, expected):
    ext = "jpg" if mode == "CMYK" else "png"
    path = save(tmp_path, Image.new(mode, (4, 4), color), f"m.{ext}")
    doc = image_from_path(path, image_shape=None)
    np.testing.assert_allclose(doc[0, 0, 0], expected, atol=1)


def test_palette_and_16_bit(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 128, 255])
    assert image_from_path(save(tmp_path, palette, "p.png"), None)[0, 0, 0].tolist() == [0, 128, 255]
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert image_from_path(save(tmp_path, sixteen, "16.png"), None)[0, 0, 0].tolist() == [255] * 3


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path, image, "rot.jpg", exif=exif)
    assert image_from_path(path, image_shape=None).shape == (1, 30, 10, 3)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file at .*nope.jpg"):
        image_from_path(tmp_path / "nope.jpg")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ValueError, match="notes.jpg' is not an image file"):
        image_from_path(path)


def test_truncated_image(tmp_path):
    path = save(tmp_path, Image.effect_noise((64, 64), 50).convert("RGB"), "full.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ValueError, match="cut.jpg' is truncated or corrupt"):
        image_from_path(cut)


def test_decompression_bomb(tmp_path, monkeypatch):
    path = save(tmp_path, Image.new("RGB", (64, 64)), "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="big.png' is too large to decode safely"):
        image_from_path(path)


def test_bad_image_shape(tmp_path):
    path = save(tmp_path, Image.new("RGB", (4, 4)), "a.png")
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\).*got \(224,\)"):
        image_from_path(path, image_shape=(224,))


def test_to_batch_checks():
    assert to_batch(np.zeros((4, 4, 3))).shape == (1, 4, 4, 3)
    with pytest.raises(TypeError, match="doc must be an image array.*got str"):
        to_batch("cat.jpg")
    with pytest.raises(TypeError, match="array of numbers"):
        to_batch({"a": 1})
    with pytest.raises(ValueError, match=r"rank 4 .* got an array of shape \(4, 4\)"):
        to_batch(np.zeros((4, 4)))
    bad = np.zeros((1, 2, 2, 3), np.float32)
    bad[0, 0, 0, 0] = np.nan
    bad[0, 1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="doc contains 2 NaN or infinite values"):
        to_batch(bad)


def test_image_from_array_stretches_preprocessed_input():
    doc = np.array([[[-1.0, 0.0, 1.0]]], np.float32)  # one pixel, (x - 127) / 128 style
    assert image_from_array(doc).getpixel((0, 0)) == (0, 128, 255)
    assert image_from_array(np.full((1, 1, 1), 200.0)).getpixel((0, 0)) == (200, 200, 200)


def test_doc_from_image_is_image_from_path_without_the_file(tmp_path):
    path = save(tmp_path, Image.fromarray(np.arange(600, dtype=np.uint8).reshape(10, 20, 3)), "a.png")
    image = load_image(path)
    np.testing.assert_array_equal(doc_from_image(image, (4, 6)), image_from_path(path, (4, 6)))
    assert doc_from_image(image, None).shape == (1, 10, 20, 3)
    with pytest.raises(ValueError, match="image_shape must be"):
        doc_from_image(image, (0, 4))


def test_float_image_in_0_1_is_scaled_to_0_255(tmp_path):
    values = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    path = save(tmp_path, Image.fromarray(values, mode="F"), "float.tiff")
    doc = image_from_path(path, image_shape=None)
    np.testing.assert_array_equal(doc[0, :, :, 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(doc[0, :, :, 1], doc[0, :, :, 2])


def test_float_image_above_1_keeps_the_0_255_scale(tmp_path):
    values = np.array([[0.0, 2.0], [128.0, 255.0]], dtype=np.float32)
    path = save(tmp_path, Image.fromarray(values, mode="F"), "float255.tiff")
    np.testing.assert_array_equal(image_from_path(path, image_shape=None)[0, :, :, 0], values)


def test_permission_denied_is_reported_as_such(tmp_path, monkeypatch):
    # As root, chmod 000 does not stop reading; make the module's open() refuse instead.
    path = save(tmp_path, Image.new("RGB", (4, 4)), "secret.png")

    def refuse(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", os.fspath(file))

    monkeypatch.setattr(gradcam.image, "open", refuse, raising=False)
    with pytest.raises(PermissionError, match="Permission denied: cannot read the image file .*secret.png"):
        image_from_path(path)


def test_pillow_text_chunk_limit_names_the_file(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)
    path = save(tmp_path, Image.new("RGB", (4, 4)), "chunky.png", pnginfo=info)
    with pytest.raises(ValueError, match=r"chunky.png' cannot be decoded safely: Decompressed"):
        image_from_path(path)


def test_folder_and_fifo_are_not_image_files(tmp_path):
    with pytest.raises(ValueError, match="is not a regular file"):
        image_from_path(tmp_path)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.jpg' is not a regular file"):
        image_from_path(fifo)
