"""Pretrained weights that ship inside installed packages: the checks the builders share."""

from __future__ import annotations

import importlib.util
import os

__all__ = ["check_weights_argument", "package_file"]


def check_weights_argument(weights, preset: str, meaning: str) -> None:
    """Check a builder's ``weights``: `None`, the name of its packaged weights, or a file.

    Args:
        weights: the argument as received.
        preset: the name that selects the packaged weights, e.g. ``"imagenet"``.
        meaning: what ``preset`` stands for, for the message.

    Raises:
        ValueError: ``weights`` is none of the three (the message echoes it).
    """
    if not (weights is None or weights == preset
            or (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            f"`{preset!r}` ({meaning}) or the path to an existing Keras weights file. "
            f"Received: weights={weights!r}"
        )


def package_file(package: str, relative: str, what: str) -> str:
    """The path of a file inside an installed package, found without importing it.

    Args:
        package: the package's import name, e.g. ``"mtcnn"``.
        relative: the file's path inside the package, with ``/`` separators.
        what: what the file holds, to start the message, e.g. ``"The weights of P-Net"``.

    Returns:
        The file's path.

    Raises:
        ImportError: the package is not installed (the message gives the pip command).
        FileNotFoundError: the package lacks the file.
    """
    pip_name = package.replace("_", "-")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{what} come from the package {pip_name!r}, which is not installed. Install it "
            f"with:\n    pip install {pip_name}"
        )
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, *relative.split("/"))
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"The package {pip_name!r} is installed but lacks {relative}. Reinstall it with:\n"
        f"    pip install --force-reinstall {pip_name}"
    )
