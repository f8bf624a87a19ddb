"""Offline ImageNet class names."""

import numpy as np
import pytest

from gradcam import imagenet


def test_names_and_indices():
    assert imagenet.class_name(243) == "bull mastiff"
    assert imagenet.class_name(282) == "tiger cat"
    assert imagenet.class_index("tiger cat") == 282
    assert imagenet.class_index("Tabby_Cat") == 281
    assert imagenet.class_index("espresso") == 967
    assert imagenet.class_synonyms(281) == ("tabby", "tabby cat")
    assert len(imagenet.class_names()) == 1000


def test_first_synonym_wins_over_a_later_one():
    # "missile" is class 657's name and a later synonym of 744 ("projectile, missile")
    assert imagenet.class_index("missile") == 657


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown ImageNet class name 'tigr cat'.*'tiger cat'"):
        imagenet.class_index("tigr cat")


def test_ambiguous_name():
    with pytest.raises(ValueError, match=r"'crane' is ambiguous: it names classes 134 .*517"):
        imagenet.class_index("crane")


def test_bad_index():
    with pytest.raises(ValueError, match="ImageNet class index 1000 is out of range"):
        imagenet.class_name(1000)
    with pytest.raises(TypeError):
        imagenet.class_name("3")


def test_decode_predictions():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, 282], preds[0, 281] = 0.7, 0.2
    preds[1, 967] = 0.9
    decoded = imagenet.decode_predictions(preds, top=2)
    assert decoded[0] == [("n02123159", "tiger cat", pytest.approx(0.7)), ("n02123045", "tabby", pytest.approx(0.2))]
    assert decoded[1][0][1:] == ("espresso", pytest.approx(0.9))
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\); got an array of shape \(10,\)"):
        imagenet.decode_predictions(np.zeros(10))
