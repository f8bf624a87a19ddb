"""Whether a run fits in memory: the estimate, worked out by hand on a tiny model."""

import keras
import pytest

from gradcam.cli import memory
from gradcam.cli.arguments import UsageError
from gradcam.batch import RunSettings


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)  # 32 x 32 x 4 = 4096
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)  # 16 x 16 x 6 = 1536
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_largest_activation_of_a_model_and_of_a_nested_one(model):
    assert memory.largest_activation_bytes(model) == 4096 * 4
    wrapper = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(2.0), model])
    assert memory.largest_activation_bytes(wrapper) == 4096 * 4


def test_layers_of_unknown_size_are_not_counted():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    assert memory.largest_activation_bytes(keras.Model(inputs, keras.layers.Dense(2)(x))) == 4 * 4


def test_estimate(model):
    # batch 2: 4 images decoded ahead and 3 x 2 in the engine's thread, 32 x 32 x 3 float32
    # (12 KiB) each; the engine 2.5 x 2 x 16 KiB
    assert memory.estimate_bytes(model, RunSettings((32, 32), batch_size=2)) == 10 * 12288 + 81920
    assert memory.estimate_bytes(model, RunSettings((32, 32), batch_size=2, prefetch=1)) == 7 * 12288 + 81920


def test_check_memory(model, monkeypatch):
    settings = RunSettings((32, 32), batch_size=2)
    monkeypatch.setattr(memory, "available_bytes", lambda: 204800)
    memory.check_memory(model, settings)
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # unknown: not checked
    memory.check_memory(model, settings)
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 * 2**20 // 2)
    # 64 + 3 x 32 images of 48 KiB, and 2.5 x 32 x 16 KiB: 8.75 MiB
    with pytest.raises(UsageError, match=(
            r"^not enough memory: images of 64x64 in batches of 32 need at least 8.8 MiB, and 1.5 MiB is "
            r"available. Choose a smaller --batch-size or --image-size.$")):
        memory.check_memory(model, RunSettings((64, 64)))


def test_available_memory_is_read():
    available = memory.available_bytes()
    assert available is None or available > 0


@pytest.mark.parametrize("count, text", [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"),
                                         (200 * 2**20, "200.0 MiB"), (3 * 2**40, "3072.0 GiB")])
def test_format_bytes(count, text):
    assert memory.format_bytes(count) == text
