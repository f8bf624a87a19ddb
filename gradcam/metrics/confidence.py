"""Average drop and increase in confidence (Chattopadhyay et al., "Grad-CAM++: Improved
Visual Explanations for Deep Convolutional Networks", arXiv 1710.11063): the target's score
on the image seen through its map."""

from __future__ import annotations

import numpy as np

from gradcam.metrics.scoring import check_inputs, metric_docstring, scores_with_known

def masked_scores(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32, known_scores=None):
    """``(Y, O)``: the target's score on each image and on the image times its map.

    The two scores both :func:`average_drop` and :func:`increase_in_confidence` are made
    of: a caller that wants both measures them once. The map is upsampled to the image,
    negative values set to 0 and divided by its maximum (an all-zero map stays zero).

    Args:
        model, docs, heatmaps, targets, preprocess, batch_size: as for :func:`average_drop`.
        known_scores: ``{0: Y}``, the scores on the images themselves when already
            measured (they do not depend on the map). Defaults to ``None``.

    Returns:
        ``(Y, O)``, float32 arrays ``(N,)``.

    Raises:
        As :func:`average_drop`, but for the positive score.
    """
    images, maps, targets, batch_size = check_inputs(model, docs, heatmaps, targets, preprocess, batch_size)
    maps = np.maximum(maps, 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)[..., None]

    def perturb(n, steps):
        image = images[n].astype(np.float32)
        return np.stack([image if step == 0 else image * maps[n] for step in steps])

    scores = scores_with_known(
        model, perturb, len(images), 2, targets, known_scores, preprocess=preprocess, batch_size=batch_size
    )
    return scores[:, 0], scores[:, 1]


def drop_from_scores(unmasked, masked) -> np.ndarray:
    """Average drop's per-image value from :func:`masked_scores`: ``max(0, Y - O) / Y``.

    Raises:
        ValueError: a score ``Y`` is not positive.
    """
    unmasked, masked = np.asarray(unmasked, np.float32), np.asarray(masked, np.float32)
    bad = np.nonzero(unmasked <= 0)[0]
    if len(bad):
        raise ValueError(
            f"average_drop needs a positive score on each image (a probability); the target's "
            f"score is {float(unmasked[bad[0]])} on image {int(bad[0])} (images {bad[:10].tolist()} "
            "are not positive)."
        )
    return (np.maximum(0, unmasked - masked) / unmasked).astype(np.float32)


def increase_from_scores(unmasked, masked) -> np.ndarray:
    """Increase in confidence's per-image value from :func:`masked_scores`: 1 where ``O > Y``."""
    return (np.asarray(masked) > np.asarray(unmasked)).astype(np.float32)


@metric_docstring("images and masked images")
def average_drop(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32):
    """Average drop: how much of the target's score is lost when only the map is shown.

    ``Y`` is the target's score on the image, ``O`` its score on the image multiplied,
    pixel by pixel and in every channel, by the map upsampled to the image (bilinearly)
    and scaled to [0, 1] per image: negative values set to 0, then divided by the map's
    maximum (maps from :mod:`gradcam.methods` are already in [0, 1] and stay as they are;
    an all-zero map gives a black image). The result is ``max(0, Y - O) / Y`` per image;
    the paper reports its mean over a data set, in percent. Lower is better.

    The score is the target's output: its probability when the model ends in a softmax.
    ``preprocess`` is applied after masking, so the image is masked in the caller's image
    space (0 is black for RGB images in 0..255).

    Args:
        {args}

    Returns:
        float32 array ``(N,)`` in [0, 1].

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors};
            the score ``Y`` of an image is not positive (the drop is a fraction of it:
            use a model that outputs probabilities).
    """
    return drop_from_scores(*masked_scores(model, docs, heatmaps, targets, preprocess=preprocess,
                                           batch_size=batch_size))


@metric_docstring("images and masked images")
def increase_in_confidence(model, docs, heatmaps, targets, *, preprocess=None, batch_size: int = 32):
    """Increase in confidence: whether the target's score rises when only the map is shown.

    ``Y`` and ``O`` as for :func:`average_drop` (the map scaled to [0, 1] per image:
    negative values set to 0, divided by its maximum; an all-zero map gives a black image).
    The result is ``1.0`` where ``O > Y``, else ``0.0``; the paper reports the share of
    images, in percent, where the score rises. Higher is better.

    Args:
        {args}

    Returns:
        float32 array ``(N,)`` of 0.0 and 1.0.

    Raises:
        TypeError: {type_errors}
        ValueError: {value_errors}.
    """
    return increase_from_scores(*masked_scores(model, docs, heatmaps, targets, preprocess=preprocess,
                                               batch_size=batch_size))

