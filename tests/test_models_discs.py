"""gradcam.models.discs: generated images of discs to count."""

import numpy as np
import pytest
from scipy import ndimage

from gradcam.models.discs import make_discs


def test_counts_are_the_discs_drawn():
    data = make_discs(50, seed=3)
    assert data.images.shape == (50, 40, 40, 3) and data.images.dtype == np.float32
    assert data.counts.dtype == np.float32 and set(data.counts) <= {0, 1, 2, 3, 4, 5}
    for image, count, discs in zip(data.images, data.counts, data.discs):
        _, found = ndimage.label(image[..., 0] > 115)  # halfway between background and disc
        assert found == count == len(discs)
        np.testing.assert_array_equal(image[..., 0], image[..., 2])  # grey
        for y, x, radius in discs:
            assert image[int(y), int(x), 0] == 230  # the centre is fully bright
            assert 2.5 <= radius <= 4.5 and radius + 1 <= min(y, x, 40 - y, 40 - x)
    assert data.images.min() >= 0 and data.images.max() == 230


def test_discs_never_touch():
    for discs in make_discs(30, min_discs=5, max_discs=5, seed=1).discs:
        centres, radii = discs[:, :2], discs[:, 2]
        distances = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
        gaps = distances - radii[:, None] - radii[None]
        assert gaps[~np.eye(5, dtype=bool)].min() >= 2.0


def test_same_seed_same_images():
    a, b, c = make_discs(4, seed=7), make_discs(4, seed=7), make_discs(4, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.images, c.images)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        make_discs(0)
    with pytest.raises(ValueError, match="min_discs=3, max_discs=2"):
        make_discs(1, min_discs=3, max_discs=2)
    with pytest.raises(ValueError, match=r"radii=\(1, 30\)"):
        make_discs(1, radii=(1, 30))
    with pytest.raises(ValueError, match="Could not place 40 discs in a 20x20 image"):
        make_discs(1, size=20, min_discs=40, max_discs=40)
