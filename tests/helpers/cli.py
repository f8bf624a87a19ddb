"""The command line's test helpers: a tiny saved model, pictures, in-process and child runs."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
from PIL import Image

from gradcam.cli import main


def save_model(path, input_shape=(32, 32, 3)):
    """A tiny classifier that takes RGB 0..255 (it rescales itself), saved to ``path``."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255.0, name="rescaling")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    with warnings.catch_warnings():  # Keras's saving code trips a NumPy 2 deprecation
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        keras.Model(inputs, x, name="tiny").save(path)
    return str(path)


def photo(path, size=(48, 40), mode="RGB", seed=0, **save_kwargs):
    """Save a random picture (any Pillow mode) and return its path."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_kwargs)
    return path


def run(capsys, *args):
    """Run the command in-process; return (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_child(*args, code="import sys; from gradcam.cli import main; sys.exit(main(sys.argv[1:]))", **kwargs):
    """Run the command in a child process, without TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, **kwargs)


def summary(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as file:
        return json.load(file)


def leftovers(folder):
    """Temporary files and folders, and locks, left anywhere under ``folder``."""
    found = []
    for root, dirs, files in os.walk(folder):
        found += [os.path.join(root, d) for d in dirs if d.startswith(".gradcam-tmp-")]
        found += [os.path.join(root, f) for f in files if f.endswith(".tmp") or f == ".gradcam.lock"]
    return found
