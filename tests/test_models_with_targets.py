"""The tutorial models with gradcam.targets: a Box on P-Net, a Segmentation of a fully
convolutional classifier."""

import warnings

import numpy as np
import pytest

import gradcam
from gradcam.models import face_detector
from gradcam.models.fully_convolutional import fully_convolutional
from gradcam.targets import Box, NoBoxWarning, Segmentation
from helpers.tiny import LOGIT_MAP_0, X, assert_map, make_functional

# mtcnn 1.0's own detection of the astronaut's face, (x1, y1, x2, y2) in input pixels.
ASTRONAUT_FACE = (180, 65, 264, 172)


@pytest.fixture(scope="module")
def astronaut():
    photo = gradcam.image_from_path(gradcam.samples.path("astronaut"), image_shape=(512, 512))
    pnet = face_detector.PNet(input_shape=(512, 512, 3), scale=0.12)
    return photo, pnet


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_box_on_pnet_explains_the_face(astronaut, method):
    photo, pnet = astronaut
    target = Box(ASTRONAUT_FACE, category=1, decode=face_detector.box_decoder(pnet))
    expl = gradcam.explain_prediction(pnet, photo, targets=[target], layer="prelu3",
                                      method=method, preprocess=face_detector.preprocess_input)
    explained = expl.targets[0]
    assert explained.score > 0.999  # the face probability of the best-overlapping window
    heatmap = explained.heatmap
    assert heatmap.shape == (26, 26)
    row, column = np.unravel_index(heatmap.argmax(), heatmap.shape)
    x, y = (column + 0.5) * 512 / 26, (row + 0.5) * 512 / 26  # the hottest cell's centre
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert x1 <= x <= x2 and y1 <= y <= y2


def test_box_that_no_window_overlaps_gives_an_empty_map_and_the_best_iou(astronaut):
    photo, pnet = astronaut
    target = Box((20, 400, 60, 440), category=1, decode=face_detector.box_decoder(pnet))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expl = gradcam.explain_prediction(pnet, photo, targets=[target], layer="prelu3",
                                          preprocess=face_detector.preprocess_input)
    messages = [str(w.message) for w in caught if issubclass(w.category, NoBoxWarning)]
    assert len(messages) == 1 and "best IoU found: 0.1" in messages[0]
    assert expl.targets[0].heatmap.max() == 0


def test_segmentation_of_a_fully_convolutional_tiny_classifier():
    """Per location, class 0 scores 0.1 A0 - 1 = [[0, 0.8], [3.2, 4]]: over the whole map
    they sum to 8 = 4 x the classifier's logit 2, and their gradient is W[:, 0] at every
    location, so the map is the classifier's class-0 logit map."""
    segmenter = fully_convolutional(make_functional())
    expl = gradcam.explain_prediction(segmenter, X, targets=[Segmentation(0, mask=np.ones((2, 2)))],
                                      layer="conv")
    assert expl.targets[0].score == pytest.approx(8.0, abs=1e-5)
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)
