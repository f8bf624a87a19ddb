"""The notebook display of an Explanation: each target's overlay (with a Box's query box
and a Segmentation mask's outline), label, description, score and probability in
``_repr_html_``; the overlays side by side in ``_repr_png_``."""

import base64
import html
import io
import re

import numpy as np
from PIL import Image

import gradcam
from gradcam.explanation import Explanation, TargetExplanation
from gradcam.render import draw_outline, format_as_image
from gradcam.targets import Box, Output, Segmentation
from helpers.target_models import GRID_BOXES, make_detector, make_segmenter
from helpers.tiny import X

MASKS = np.array([[[1, 0], [0, 0]], [[0, 1], [1, 1]]], np.float32)  # one per image


def _pixels(image):
    return np.asarray(image.convert("RGBA"))


def _shown_images(text):
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_each_target_is_shown_with_its_name_description_score_and_mask_outline():
    batch = np.concatenate([X, X[:, ::-1]])
    expls = gradcam.GradCAM(make_segmenter(), layer="conv").explain(
        batch, targets=[Segmentation(0, mask=MASKS), Output()])
    for n, expl in enumerate(expls):
        segmentation, output = expl.targets
        np.testing.assert_array_equal(segmentation.explained.mask, MASKS[n])  # the image's own mask
        expected = [draw_outline(format_as_image(expl, target=0), MASKS[n]), format_as_image(expl, target=1)]
        assert not np.array_equal(_pixels(expected[0]), _pixels(format_as_image(expl, target=0)))
        for k in range(2):
            np.testing.assert_array_equal(_pixels(expl.overlay(k)), _pixels(expected[k]))

        text = expl._repr_html_()
        assert "layer <code>conv</code>" in text
        shown = _shown_images(text)
        assert len(shown) == 2
        for image, overlay in zip(shown, expected):
            np.testing.assert_array_equal(_pixels(image), _pixels(overlay))
        for target in (segmentation, output):
            caption = (f"<figcaption><b>{html.escape(target.label)}</b><br>{html.escape(target.description)}<br>"
                       f"<small>score {target.score:.4g}{', empty map' if target.empty else ''}</small></figcaption>")
            assert caption in text
        assert segmentation.label == "segmentation of 0"
        assert "the sum of class 0&#x27;s scores over the mask&#x27;s pixels" in text  # escaped

        sheet = Image.open(io.BytesIO(expl._repr_png_()))
        width, height = expl.image.size
        assert sheet.size == (2 * width + 4, height)
        np.testing.assert_array_equal(_pixels(sheet)[:, :width], _pixels(expected[0]))
        np.testing.assert_array_equal(_pixels(sheet)[:, width + 4:], _pixels(expected[1]))


def test_a_box_target_is_shown_with_its_query_box():
    (expl,) = gradcam.GradCAM(make_detector(), layer="conv").explain(X, targets=Box(GRID_BOXES[3], 0))
    (target,) = expl.targets
    plain = gradcam.render.overlay_heatmap(expl.image, target.heatmap)
    overlay = expl.overlay(0)
    np.testing.assert_array_equal(_pixels(overlay), _pixels(format_as_image(expl)))
    assert not np.array_equal(_pixels(overlay), _pixels(plain))  # the box is drawn
    text = expl._repr_html_()
    (shown,) = _shown_images(text)
    np.testing.assert_array_equal(_pixels(shown), _pixels(overlay))
    assert f"<b>{html.escape(target.name)}</b><br>{html.escape(target.description)}" in text
    np.testing.assert_array_equal(_pixels(Image.open(io.BytesIO(expl._repr_png_()))), _pixels(overlay))


def test_text_is_escaped_and_the_probability_and_empty_map_are_said():
    image = Image.new("RGB", (2, 2), (10, 20, 30))
    expl = Explanation(image, [
        TargetExplanation(-1, "<b>&", 1.25, None, np.zeros((2, 2), np.float32), "a < b"),
        TargetExplanation(3, "three", -0.5, 0.125, np.ones((2, 2), np.float32), "the logit of class 3 (three)"),
    ], layer="outer/<inner>")
    text = expl._repr_html_()
    assert "layer <code>outer/&lt;inner&gt;</code>" in text
    assert '<b>&lt;b&gt;&amp;</b><br>a &lt; b<br><small>score 1.25, empty map</small>' in text
    assert 'alt="&lt;b&gt;&amp;"' in text
    assert ("<b>3 (three)</b><br>the logit of class 3 (three)<br><small>score -0.5, probability 0.125</small>"
            in text)
