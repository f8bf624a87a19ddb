"""Whether a run fits in memory: an estimate of what a batch needs, checked before the
first batch runs, so that a run too large for the machine stops with a message instead
of being killed by the system.

The estimate counts what the image size and the batch size determine:

* the pipeline's images at the model's size, float32: those decoded ahead of the engine
  and one batch three times (stacked, preprocessed, the engine's copy), see
  :attr:`gradcam.batch.RunSettings.held_images`;
* the engine: :data:`ENGINE_FACTOR` times the largest layer output of the batch. The
  compiled forward and backward pass frees each activation once it is used, so its
  peak follows the largest one: measured with EfficientNet-Lite0 from 224 to 1792
  pixels, the peak grew by 2.2 to 2.5 times the batch's largest layer output.

Layers whose output size is not known (a model that takes any image size) are not
counted, nor are decoding a file (one image per worker at the file's own size) and
TensorFlow itself (about 650 MiB): the estimate is a lower bound.
"""

from __future__ import annotations

import os

import numpy as np

from gradcam.cli.arguments import UsageError
from gradcam.batch import RunSettings

#: The engine's peak memory, in multiples of the batch's largest layer output.
ENGINE_FACTOR = 2.5


def largest_activation_bytes(model) -> int:
    """Bytes of the largest layer output of ``model`` for one image, among the layers
    whose output shape is known (nested models included); 0 if none is known."""
    import keras

    from gradcam.layers import iter_layers, output_shape

    largest = 0
    for ref in iter_layers(model):
        if isinstance(ref.layer, (keras.Model, keras.layers.InputLayer)):
            continue
        shape = output_shape(ref.layer)
        if not shape or any(d is None for d in shape[1:]):
            continue
        itemsize = np.dtype(keras.backend.standardize_dtype(ref.layer.output.dtype)).itemsize
        largest = max(largest, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    return largest


def estimate_bytes(model, settings: RunSettings) -> int:
    """The memory a run of ``model`` with ``settings`` needs at least, in bytes (see the
    module's description)."""
    height, width = settings.image_shape
    images = settings.held_images * height * width * 3 * 4
    engine = ENGINE_FACTOR * settings.batch_size * largest_activation_bytes(model)
    return int(images + engine)


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as file:
            text = file.read(64).strip()
        return int(text)
    except (OSError, ValueError):
        return None  # missing, or "max"


def _cgroup_room() -> int | None:
    """What this process's cgroup (a container's limit) still allows, in bytes."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            lines = file.read(65536).splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            folder = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
            limit, used = _read_int(os.path.join(folder, "memory.max")), _read_int(
                os.path.join(folder, "memory.current"))
        elif "memory" in controllers.split(","):  # cgroup v1
            folder = "/sys/fs/cgroup/memory"
            limit, used = _read_int(os.path.join(folder, "memory.limit_in_bytes")), _read_int(
                os.path.join(folder, "memory.usage_in_bytes"))
        else:
            continue
        if limit is not None and used is not None and limit < 2**60:
            return max(0, limit - used)
    return None


def available_bytes() -> int | None:
    """Memory this process can still take, in bytes: the smaller of the system's
    available memory (``MemAvailable`` in ``/proc/meminfo``, or the free pages) and what
    its cgroup allows; ``None`` where neither can be read."""
    room = []
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    room.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not room:
        try:
            room.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    cgroup = _cgroup_room()
    if cgroup is not None:
        room.append(cgroup)
    return min(room) if room else None


def format_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``, ``3 * 2**30`` -> ``"3.0 GiB"``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            break
        count /= 1024
    return f"{count:.0f} bytes" if unit == "bytes" else f"{count:.1f} {unit}"


def check_memory(model, settings: RunSettings) -> None:
    """Stop a run that cannot fit in memory.

    Raises:
        UsageError: the estimate exceeds the memory available; the message gives both and
            the options that lower the estimate.
    """
    need, room = estimate_bytes(model, settings), available_bytes()
    if room is not None and need > room:
        height, width = settings.image_shape
        raise UsageError(
            f"not enough memory: images of {height}x{width} in batches of {settings.batch_size} "
            f"need at least {format_bytes(need)}, and {format_bytes(room)} is available. Choose a "
            "smaller --batch-size or --image-size.")
