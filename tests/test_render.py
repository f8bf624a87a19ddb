"""Rendering functions, checked pixel by pixel."""

import matplotlib
import numpy as np
import pytest
from PIL import Image

from gradcam import Explanation, TargetExplanation, expand_heatmap, format_as_image, heatmap_to_image
from gradcam.render import colorize, overlay_heatmap, plot_explanations


def explanation(heatmap, image=None):
    heatmap = np.asarray(heatmap, np.float32)
    image = image or Image.new("RGB", heatmap.shape[::-1], (100, 50, 200))
    return Explanation(image=image, targets=[TargetExplanation(3, "three", 1.5, 0.25, heatmap)], layer="conv")


def test_heatmap_to_image_modes_and_values():
    image = heatmap_to_image(np.array([[0.0, 0.5], [0.2, 1.0]]))
    assert image.mode == "L" and np.asarray(image).ravel().tolist() == [0, 128, 51, 255]
    assert heatmap_to_image(np.ones((2, 2, 3))).mode == "RGB"
    assert heatmap_to_image(np.ones((2, 2, 4))).getpixel((0, 0)) == (255, 255, 255, 255)


@pytest.mark.parametrize("bad", [np.array([[1.5]]), np.array([[-0.1]]), np.array([[np.nan]])])
def test_heatmap_outside_unit_range(bad):
    with pytest.raises(ValueError, match=r"heatmap values must lie in \[0, 1\]"):
        heatmap_to_image(bad)


def test_heatmap_bad_shape():
    with pytest.raises(ValueError, match=r"heatmap must have shape \(h, w\)"):
        heatmap_to_image(np.zeros((2, 2, 2)))


def test_expand_heatmap_is_a_resize_of_the_gray_map():
    heat = np.array([[0.0, 1.0], [0.5, 0.25]])
    image = Image.new("RGB", (4, 6))
    expanded = expand_heatmap(heat, image, resampling_filter=Image.NEAREST)
    assert expanded.size == (4, 6) and expanded.mode == "L"
    assert np.asarray(expanded).tolist()[0] == [0, 0, 255, 255]
    assert np.asarray(expanded).tolist()[5] == [128, 128, 64, 64]


def test_colorize_alpha_follows_heat_up_to_the_limit():
    heat = np.array([[0.0, 0.3, 1.0]])
    rgba = np.asarray(colorize(heat, "viridis", alpha_limit=0.5))
    expected_rgb = np.round(matplotlib.colormaps["viridis"](heat)[..., :3] * 255)
    np.testing.assert_array_equal(rgba[..., :3], expected_rgb)
    assert rgba[0, :, 3].tolist() == [0, 76, 128]


def test_format_as_image_pixels():
    image = Image.new("RGB", (2, 1), (100, 50, 200))
    expl = explanation([[0.0, 1.0]], image)
    overlay = format_as_image(expl, resampling_filter=Image.NEAREST, alpha_limit=1.0)
    assert overlay.mode == "RGBA" and overlay.size == (2, 1)
    assert overlay.getpixel((0, 0)) == (100, 50, 200, 255)  # no heat: the image itself
    top = tuple(int(round(c * 255)) for c in matplotlib.cm.viridis(1.0)[:3])
    assert overlay.getpixel((1, 0))[:3] == top  # full heat, opaque: the colormap's colour
    half = format_as_image(expl, resampling_filter=Image.NEAREST, alpha_limit=0.5).getpixel((1, 0))
    expected = [(t * 128 + i * 127) / 255 for t, i in zip(top, (100, 50, 200))]
    np.testing.assert_allclose(half[:3], expected, atol=1)


def test_alpha_limit_byte_scale_and_errors():
    expl = explanation([[0.0, 1.0], [0.5, 0.2]])
    a = np.asarray(format_as_image(expl, alpha_limit=255.0))
    b = np.asarray(format_as_image(expl, alpha_limit=1.0))
    np.testing.assert_array_equal(a, b)
    for bad in (-0.1, 300, "a lot"):
        with pytest.raises(ValueError, match="alpha_limit must be"):
            format_as_image(expl, alpha_limit=bad)
    with pytest.raises(ValueError, match="Unknown matplotlib colormap 'viridiss'"):
        format_as_image(expl, colormap="viridiss")
    with pytest.raises(ValueError, match=r"target must be a position in 0..0; got 1"):
        format_as_image(expl, target=1)


def test_explanation_heatmap_and_png_repr():
    expl = explanation([[0.0, 1.0], [0.5, 0.2]])
    assert np.asarray(expl.heatmap).ravel().tolist() == [0, 255, 128, 51]
    import io

    shown = Image.open(io.BytesIO(expl._repr_png_()))
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(format_as_image(expl)))


def test_plot_explanations_grid():
    expls = [explanation([[0.0, 1.0]]) for _ in range(3)]
    figure = plot_explanations(expls, ncols=2)
    titled = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(figure.axes) == 4 and titled == ["conv\n3 (three) p=0.25"] * 3
    with pytest.raises(ValueError, match="titles has 1 entries for 3 panels"):
        plot_explanations(expls, titles=["only one"])
    with pytest.raises(ValueError, match="at least one explanation"):
        plot_explanations([])
    two_targets = explanation([[0.0, 1.0]])
    two_targets.targets.append(TargetExplanation(5, None, 2.0, None, np.zeros((1, 2), np.float32)))
    figure = plot_explanations(two_targets)
    assert [ax.get_title() for ax in figure.axes] == ["conv\n3 (three) p=0.25", "conv\n5"]
    panel = np.asarray(figure.axes[1].images[0].get_array())
    np.testing.assert_array_equal(panel, np.asarray(format_as_image(two_targets, target=1)))
    import matplotlib.pyplot as plt

    plt.close("all")


def test_overlay_heatmap_is_format_as_image_of_one_map():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    heat = rng.random((3, 4)).astype(np.float32)
    expected = Image.alpha_composite(
        image.convert("RGBA"), colorize(np.asarray(expand_heatmap(heat, image)) / 255.0, "magma", 0.8)
    )
    overlay = overlay_heatmap(image, heat, colormap="magma", alpha_limit=0.8)
    assert overlay.mode == "RGBA" and overlay.size == (13, 9)
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(expected))
    expl = explanation(heat, image)
    np.testing.assert_array_equal(np.asarray(format_as_image(expl)), np.asarray(overlay_heatmap(image, heat)))
