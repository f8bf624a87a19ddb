"""TensorFlow's log lines kept off the terminal, everything else written back."""

import os
import subprocess
import sys

import pytest

from gradcam.cli.quiet import is_tensorflow_line

# As TensorFlow 2.21 writes them on a CPU machine while it loads and first runs.
TENSORFLOW_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795735380.161418    4631 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1795735380.161802    4631 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
    "I0000 00:00:1795735380.205829    4631 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1795735382.974698    4631 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "2024-05-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
    "WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered tf.function retracing.",
]


@pytest.mark.parametrize("line", TENSORFLOW_LINES)
def test_tensorflow_lines_are_recognised(line):
    assert is_tensorflow_line(line + "\n")


@pytest.mark.parametrize("line", [
    "gradcam: skipped: 'a.jpg' is not an image file Pillow can read.",
    "/x/engine.py:285: UserWarning: 1 of 1 Grad-CAM maps are all zero",
    "Traceback (most recent call last):",
    "I0000 is not how a log line goes on",
])
def test_other_lines_are_kept(line):
    assert not is_tensorflow_line(line)


def test_descriptor_2_is_filtered_and_restored():
    code = (
        "import os, sys\n"
        "from gradcam.cli.quiet import tensorflow_quiet\n"
        "with tensorflow_quiet():\n"
        f"    os.write(2, {TENSORFLOW_LINES[0]!r}.encode() + b'\\n' + {TENSORFLOW_LINES[2]!r}.encode() + b'\\n')\n"
        "    os.write(2, b'kept from C\\n')\n"
        "    print('kept from Python', file=sys.stderr)\n"
        "    print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
        "print('TF_CPP_MIN_LOG_LEVEL' in os.environ)\n"
        "with tensorflow_quiet(enabled=False):\n"
        f"    os.write(2, {TENSORFLOW_LINES[2]!r}.encode() + b'\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\nFalse\n"
    assert done.stderr == f"kept from C\nkept from Python\n{TENSORFLOW_LINES[2]}\nafter\n"
