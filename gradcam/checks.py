"""Checks of argument values shared by the engines, the metrics, the command line and Ray.

Keras-free: the command line and :mod:`gradcam.ray` check their arguments with these
before anything imports Keras.
"""

from __future__ import annotations

import contextlib

import numpy as np


def check_positive_int(value, name: str, *, allow_none: bool = False, allow_zero: bool = False):
    """``value`` as an ``int`` if it is a positive integer (``bool`` is refused).

    Args:
        value: the value to check.
        name: the argument's name, for the message.
        allow_none: accept ``None`` (and return it). Defaults to ``False``.
        allow_zero: accept ``0``. Defaults to ``False``.

    Returns:
        ``int(value)``, or ``None`` when ``value`` is ``None`` and ``allow_none``.

    Raises:
        ValueError: ``value`` is not a positive (or, with ``allow_zero``, non-negative)
            integer; the message names ``name`` and echoes ``value``.

    Example:
        >>> check_positive_int(32, "batch_size")
        32
    """
    if allow_none and value is None:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and (
        value > 0 or (allow_zero and value == 0))
    if not ok:
        kind = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def check_bool(value, name: str) -> bool:
    """``value`` as a ``bool`` if it is ``True`` or ``False`` (NumPy's too).

    Args:
        value: the value to check.
        name: the argument's name, for the message and the error's ``argument``.

    Returns:
        ``bool(value)``.

    Raises:
        ArgumentError: (a ``ValueError``, ``argument=name``) anything else, ``1`` and
            ``"yes"`` included; the message echoes it.

    Example:
        >>> check_bool(True, "eigen_smooth")
        True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(name, f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an ``int`` if it is a non-negative integer (``bool`` is refused).

    Args:
        seed: the value to check.
        name: the argument's name, for the message. Defaults to ``"seed"``.

    Returns:
        ``int(seed)``.

    Raises:
        ValueError: ``seed`` is not a non-negative integer; the message echoes it.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {seed!r}.")
    return int(seed)


class ArgumentError(ValueError):
    """A bad argument value, with the argument's name in :attr:`argument`.

    A ``ValueError``, so callers that catch those keep working; the command line reads
    :attr:`argument` to say which flag is at fault, instead of parsing the message.

    Args:
        argument: the argument's name as the function takes it, e.g. ``"layer"``.
        message: the whole message, naming the bad value and what was expected.

    Attributes:
        argument: the argument's name.
    """

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


def one_line(error: BaseException) -> str:
    """An exception as one line of text, for messages and summaries: its message with
    Keras's line breaks folded, prefixed by its type unless it is a ``ValueError`` or a
    ``FileNotFoundError`` (whose messages say what is wrong on their own).

    Example:
        >>> one_line(TypeError("bad\n  value"))
        'TypeError: bad value'
    """
    text = " ".join(str(error).split())
    if isinstance(error, (FileNotFoundError, ValueError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextlib.contextmanager
def attributed_to(argument: str):
    """Within the block, a ``ValueError`` that names no argument becomes an
    :class:`ArgumentError` of ``argument`` (same message); an :class:`ArgumentError`
    passes unchanged.

    Example:
        >>> with attributed_to("batch_size"):
        ...     check_positive_int(0, "batch_size")
        Traceback (most recent call last):
        gradcam.checks.ArgumentError: batch_size must be a positive integer; got 0.
    """
    try:
        yield
    except ArgumentError:
        raise
    except ValueError as error:
        raise ArgumentError(argument, str(error)) from None
