"""What compiling each method once saves ``gradcam report``: the command as it is against
the same command that also compiles the set-up's engines (each method compiled twice).

Run with the backend Keras should use (TensorFlow by default)::

    python benchmarks/report_compile.py
    python benchmarks/report_compile.py --model efficientnet_lite0 --repeats 2

By default a tiny classifier (two convolutions, 32x32 inputs, saved in a temporary
folder) on 5 random pictures, ``--method gradcam --method layercam --steps 4``, in one
process on CPU: the two sides run alternately, ``--repeats`` times each after a warm-up
of both, each first in turn, each into its own ``--out``. Printed: the median set-up time (model loading and
compiling) and the median whole command (wall and process CPU time, the steadier on a
shared machine), each side's and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def tiny_model(path: Path) -> str:
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="tiny").save(path)
    return str(path)


def pictures(folder: Path, count: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for n in range(count):
        pixels = np.random.default_rng(n).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{n}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a --model of gradcam report; default: a tiny classifier")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    import keras

    from gradcam.cli.arguments import build_parser, parse_arguments
    from gradcam.cli.report import Report
    from gradcam.cli.stream import compile_engines, run_command

    class CompilingTwice(Report):
        """The command as it was: the set-up's engines compiled too."""

        def prepare(self, args, engines, image_shape, settings, targets):
            compile_engines(engines, image_shape, targets, settings.smoothing)
            super().prepare(args, engines, image_shape, settings, targets)

    def timed(command):
        class Timed(command):
            def work(self, args, setup, *rest):
                self.setup_seconds = setup.header["setup_seconds"]
                return super().work(args, setup, *rest)

        return Timed

    root = Path(tempfile.mkdtemp(prefix="report-compile-"))
    model = options.model or tiny_model(root / "tiny.keras")
    photos = pictures(root / "photos", options.images)
    sides = {"once": timed(Report), "twice": timed(CompilingTwice)}
    times = {name: {"setup": [], "total": [], "total CPU": []} for name in sides}
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, model {options.model or 'tiny'}, "
          f"{options.images} images, --steps {options.steps}")
    for run in range(options.repeats + 1):  # the first round warms both up
        for name, command in sorted(sides.items(), reverse=run % 2 == 1):  # each side first in turn
            args = parse_arguments(build_parser(), [
                "report", str(photos), "--model", model, "--method", "gradcam", "--method", "layercam",
                "--steps", str(options.steps), "-q", "--out", str(root / f"{name}{run}")])
            report = command()
            start, cpu = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):
                run_command(report, args)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu
            if run:
                times[name]["total"].append(total)
                times[name]["total CPU"].append(cpu)
                times[name]["setup"].append(report.setup_seconds)
    for part in ("setup", "total", "total CPU"):
        once, twice = (statistics.median(times[name][part]) for name in sides)
        print(f"{part:>9}: once {once:.3f} s, twice {twice:.3f} s, saved {twice - once:.3f} s "
              f"(once/twice {once / twice:.2f}x)")


if __name__ == "__main__":
    main()
