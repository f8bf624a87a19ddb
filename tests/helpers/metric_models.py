"""Tiny linear classifiers whose scores on perturbed images are computed by hand.

``make_linear(kernel, activation=None)``: an input ``(3, 4, C)`` -> Flatten -> Dense(K)
with the given ``(3 * 4 * C, K)`` kernel and no bias. With no activation, class ``k``'s
score is ``sum_p kernel[p, k] * x[p]`` over the flattened pixels ``p`` (row-major, channels
last), so the score of a perturbed image is a sum that can be written down. With
``activation="softmax"`` the score is that class's probability.

``X``: one 3x4 one-channel image whose pixel ``p`` (row-major) holds ``p + 1``; sum 78.

``REGIONS``: a bool ``(7, 11)`` mask of removed pixels for imputations: three separate
regions (one in a corner, one along the right edge, one irregular blob with a hole) and
single pixels touching them only diagonally.
"""

from __future__ import annotations

import keras
import numpy as np

X = np.arange(1, 13, dtype=np.float32).reshape(1, 3, 4, 1)
REGIONS = np.array(
    [
        [c == "#" for c in row]
        for row in """
##.........
#.......###
..#.....###
.....##..##
....####...
...###.##..
....####.#.
""".split()
    ]
)
ONES = np.stack([np.ones(12), -np.ones(12)], axis=1).astype(np.float32)  # sum, minus sum


def make_linear(kernel=ONES, activation=None, channels=1):
    kernel = np.asarray(kernel, np.float32)
    model = keras.Sequential(
        [
            keras.Input((3, 4, channels), name="image"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(kernel.shape[1], use_bias=False, activation=activation, name="predictions"),
        ],
        name="linear",
    )
    model.get_layer("predictions").set_weights([kernel])
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))
