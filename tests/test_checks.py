"""gradcam.checks: the argument checks shared by the engines, metrics, CLI and Ray."""

import numpy as np
import pytest

from gradcam.checks import ArgumentError, check_positive_int


def test_positive_int_returns_an_int():
    assert check_positive_int(np.int64(3), "n") == 3
    assert type(check_positive_int(np.int64(3), "n")) is int


@pytest.mark.parametrize("value", [0, -1, 1.0, True, np.bool_(True), "2", None])
def test_positive_int_refuses_and_names_the_value(value):
    with pytest.raises(ValueError, match=rf"^n must be a positive integer; got {value!r}\.$"):
        check_positive_int(value, "n")


def test_positive_int_options():
    assert check_positive_int(None, "n", allow_none=True) is None
    assert check_positive_int(0, "n", allow_zero=True) == 0
    with pytest.raises(ValueError, match="n must be a non-negative integer or None; got -1"):
        check_positive_int(-1, "n", allow_none=True, allow_zero=True)


def test_argument_error_is_a_value_error_that_names_its_argument():
    error = ArgumentError("layer", "No layer named 'conv9'.")
    assert isinstance(error, ValueError)
    assert error.argument == "layer" and str(error) == "No layer named 'conv9'."
