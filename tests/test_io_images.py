"""Encoding overlays: the fast PNG encoder, JPEG and WebP through Pillow."""

import io

import numpy as np
import pytest
from PIL import Image

from gradcam.io import images
from gradcam.io.images import check_format, encode_image, encode_png


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("mode, shape", [("RGB", (37, 53, 3)), ("RGBA", (5, 1, 4)), ("RGB", (1, 1, 3))])
def test_encode_png_round_trips(mode, shape, compress):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(Image.fromarray(pixels, mode=mode), compress)))
    assert decoded.mode == mode
    np.testing.assert_array_equal(np.asarray(decoded), pixels)


def test_compressed_png_is_smaller_on_a_photo():
    photo = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    assert len(encode_png(photo, compress=True)) < len(encode_png(photo)) / 2


def test_encode_png_refuses_other_modes():
    with pytest.raises(ValueError, match="RGB or RGBA images; got mode 'L'"):
        encode_png(Image.new("L", (2, 2)))


@pytest.mark.parametrize("format, pillow_format", [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_each_format_decodes_to_the_picture(format, pillow_format):
    picture = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    decoded = Image.open(io.BytesIO(encode_image(picture, format)))
    assert decoded.format == pillow_format and decoded.size == (64, 48)
    difference = np.abs(np.asarray(decoded.convert("RGB"), np.int16) - np.asarray(picture, np.int16))
    assert difference.max() <= (0 if format == "png" else 8)


def test_jpeg_is_quality_90():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    expected = io.BytesIO()
    picture.save(expected, "JPEG", quality=90)
    assert encode_image(picture, "jpg") == expected.getvalue()


def test_formats_are_checked():
    check_format("png", compress=True)
    with pytest.raises(ValueError, match="^overlay format must be one of jpg, png, webp; got 'gif'.$"):
        check_format("gif")
    with pytest.raises(ValueError, match="^compress applies to PNG overlays only; the format is jpg.$"):
        check_format("jpg", compress=True)
    with pytest.raises(ValueError, match="cannot encode a RGBA image as jpg"):
        encode_image(Image.new("RGBA", (2, 2)), "jpg")


def test_webp_without_pillow_support_is_refused(monkeypatch):
    monkeypatch.setattr(images.features, "check", lambda name: name != "webp")
    with pytest.raises(ValueError, match="^this Pillow was built without WebP support: choose jpg or png.$"):
        check_format("webp")
