"""gradcam.models.shortcut: generated rings and crosses with a class-coloured marker."""

import numpy as np
import pytest
from scipy import ndimage

from gradcam.models.shortcut import CLASS_NAMES, MARKER_COLOURS, make_shortcut


def marker_masks(data, marker_size=4):
    masks = np.zeros(data.images.shape[:3], bool)
    for mask, (y, x) in zip(masks, data.corners):
        mask[y:y + marker_size, x:x + marker_size] = True
    return masks


def test_shapes_and_types():
    data = make_shortcut(20, seed=3)
    assert data.images.shape == (20, 32, 32, 3) and data.images.dtype == np.float32
    assert data.labels.shape == data.markers.shape == (20,) and data.labels.dtype == np.int32
    assert data.corners.shape == (20, 2) and data.objects.shape == (20, 3)
    assert data.masks.shape == (20, 32, 32) and data.masks.dtype == np.float32
    assert set(np.unique(data.masks)) == {0.0, 1.0}
    assert data.images.min() >= 0 and data.images.max() <= 255
    assert CLASS_NAMES == ("ring", "cross")


def test_the_marker_is_a_square_of_its_class_colour_in_a_corner():
    data = make_shortcut(40, size=36, marker_size=5, seed=4)
    assert set(map(tuple, data.corners)) <= {(1, 1), (1, 30), (30, 1), (30, 30)}  # 36 - 1 - 5 = 30
    assert len(set(map(tuple, data.corners))) == 4  # every corner is used
    for image, marker, marker_mask in zip(data.images, data.markers, marker_masks(data, 5)):
        np.testing.assert_array_equal(image[marker_mask], np.tile(MARKER_COLOURS[marker], (25, 1)))
        # nowhere else is the image coloured: the rest is grey (R = G = B)
        np.testing.assert_array_equal(image[~marker_mask][:, 0], image[~marker_mask][:, 2])


def test_the_marker_agrees_with_the_label_with_the_given_probability():
    agreeing = make_shortcut(200, seed=5)
    np.testing.assert_array_equal(agreeing.markers, agreeing.labels)
    swapped = make_shortcut(200, agreement=0.0, seed=5)
    np.testing.assert_array_equal(swapped.markers, 1 - swapped.labels)
    half = make_shortcut(2000, agreement=0.5, seed=5)
    assert 0.45 < (half.markers == half.labels).mean() < 0.55
    assert 0.45 < half.labels.mean() < 0.55  # both classes, evenly


def test_the_object_is_a_ring_or_a_cross_inside_its_mask():
    data = make_shortcut(60, seed=6)
    markers = marker_masks(data)
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    for image, label, mask, marker, (y, x, radius) in zip(data.images, data.labels, data.masks, markers, data.objects):
        bright = (image[..., 0] > 115) & ~marker  # halfway between the background and the object
        # the mask is the disc of the object's outer radius plus one pixel; it holds the
        # whole object and keeps two pixels from the marker
        np.testing.assert_array_equal(mask, np.hypot(yy - y, xx - x) <= radius + 1)
        assert not bright[mask == 0].any() and 5 <= radius <= 8
        assert not ndimage.binary_dilation(marker, iterations=1)[mask == 1].any()
        # a ring has a dark hole at its centre, a cross a bright centre
        assert bright[int(y), int(x)] == (CLASS_NAMES[label] == "cross")
        assert ndimage.label(bright)[1] == 1  # one connected object
        if CLASS_NAMES[label] == "ring":  # the hole is closed off from the background
            assert ndimage.label(~bright)[1] == 2


def test_same_seed_same_images():
    a, b, c = make_shortcut(4, seed=7), make_shortcut(4, seed=7), make_shortcut(4, seed=8)
    for field in a._fields:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        make_shortcut(0)
    with pytest.raises(ValueError, match=r"agreement must be a probability in \[0, 1\]; got 1.5"):
        make_shortcut(1, agreement=1.5)
    with pytest.raises(ValueError, match=r"radii=\(3, 2\)"):
        make_shortcut(1, radii=(3, 2))
    with pytest.raises(ValueError, match=r"width=0.5"):
        make_shortcut(1, width=0.5)
    with pytest.raises(ValueError, match=r"A 24x24 image cannot hold an object of radius 8.0 beside a marker of 4 "
                                         r"pixels; use size >= 30"):
        make_shortcut(1, size=24)
