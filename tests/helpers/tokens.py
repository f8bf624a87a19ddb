"""Token models: the tiny classifier with its patches as tokens (see tests/test_tokens.py
for the hand-computed maps), and a one-block Vision Transformer."""

import keras

from helpers.tiny import CONV_KERNEL, DENSE_KERNEL


def make_tokens(extra):
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(2, 2, strides=2, use_bias=False, name="conv")
    patches = keras.layers.Reshape((4, 2), name="patches")(conv(inputs))
    if extra:
        mean = keras.layers.GlobalAveragePooling1D(keepdims=True, name="mean")(patches)
        tokens = keras.layers.Concatenate(axis=1, name="tokens")([mean] * extra + [patches])
    else:
        tokens = keras.layers.Identity(name="tokens")(patches)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(tokens)
    dense = keras.layers.Dense(2, use_bias=False, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(pooled), name=f"tokens_{extra}")
    conv.set_weights([CONV_KERNEL])
    dense.set_weights([DENSE_KERNEL])
    return model


def make_vit():
    """A one-block pre-norm ViT on the 4x4 input: 2x2 patches, a class token, the head on
    the class token of the final normalisation. Random weights, seeded."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 1), name="image")
    patches = keras.layers.Reshape((4, 8), name="patches")(
        keras.layers.Conv2D(8, 2, strides=2, name="embed")(inputs))
    mean = keras.layers.GlobalAveragePooling1D(keepdims=True, name="class_token")(patches)
    tokens = keras.layers.Concatenate(axis=1, name="tokens")([mean, patches])
    normed = keras.layers.LayerNormalization(name="ln_1")(tokens)
    attended = keras.layers.MultiHeadAttention(2, 4, name="mha")(normed, normed)
    tokens = keras.layers.Add(name="residual")([tokens, attended])
    final = keras.layers.LayerNormalization(name="ln")(tokens)
    head = keras.layers.Dense(3, activation="softmax", name="predictions")(final[:, 0])
    return keras.Model(inputs, head, name="vit")
