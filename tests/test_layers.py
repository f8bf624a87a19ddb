"""Layer selection: automatic, by name, path, index or object, in every model kind."""

import keras
import numpy as np
import pytest

from helpers.tiny import make_nested, make_sequential
import gradcam.targets
from gradcam import GradCAM
from gradcam.layers import find_layer, spatial_layers


def test_automatic_choice_is_last_4d_layer(two_conv):
    assert find_layer(two_conv).path == "conv2"
    assert [ref.path for ref in spatial_layers(two_conv)] == ["conv1", "conv2"]


def test_by_name_index_and_object(two_conv):
    conv1 = two_conv.get_layer("conv1")
    assert find_layer(two_conv, "conv1").layer is conv1
    assert find_layer(two_conv, 1).layer is conv1
    assert find_layer(two_conv, -4).layer is conv1
    assert find_layer(two_conv, conv1).path == "conv1"


def test_sequential():
    model = make_sequential()
    assert find_layer(model).path == "conv"
    assert find_layer(model, 0).path == "conv"


def test_nested_model_by_leaf_name_path_and_automatic():
    model = make_nested()
    inner = model.get_layer("base").get_layer("conv")
    assert find_layer(model).path == "base/conv"
    assert find_layer(model, "conv").layer is inner
    assert find_layer(model, "base/conv").layer is inner
    assert find_layer(model, inner).path == "base/conv"
    # the nested model itself, by index, is usable too: its output is 4-D
    assert find_layer(model, 0).path == "base"
    assert GradCAM(model, layer="base").layer == "base"


def test_typo_lists_closest_names(two_conv):
    with pytest.raises(ValueError, match=r"No layer named 'conv_1' in model 'two_conv'.*'conv1'"):
        find_layer(two_conv, "conv_1")


def test_layer_without_4d_output(two_conv):
    with pytest.raises(ValueError, match=r"Layer 'pool' has output shape \(None, 4\).*conv1, conv2"):
        find_layer(two_conv, "pool")


def test_ambiguous_nested_name():
    def block(name):
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs), name=name)

    inputs = keras.Input((8, 8, 3))
    x = block("block_a")(inputs)
    x = block("block_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x), name="two_blocks")
    with pytest.raises(ValueError, match=r"'conv' is ambiguous.*block_a/conv, block_b/conv"):
        find_layer(model, "conv")
    assert find_layer(model, "block_b/conv").layer is model.get_layer("block_b").get_layer("conv")
    assert find_layer(model).path == "block_b/conv"


def test_index_out_of_range_and_foreign_layer(two_conv):
    with pytest.raises(ValueError, match="Layer index 9 is out of range: model 'two_conv' has 5 layers"):
        find_layer(two_conv, 9)
    with pytest.raises(ValueError, match="is not a layer of model 'two_conv'"):
        find_layer(two_conv, keras.layers.Conv2D(1, 1, name="stranger"))
    with pytest.raises(TypeError, match="layer must be None, a layer name"):
        find_layer(two_conv, 1.5)


def test_model_without_usable_layer():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="mlp")
    with pytest.raises(ValueError, match="Model 'mlp' has no layer usable for Grad-CAM"):
        GradCAM(model)


def test_model_with_several_outputs():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1)(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)], name="two_heads")
    cam = GradCAM(model)  # explained through a target object; classes need one classifier output
    docs = np.ones((1, 4, 4, 1), np.float32)
    for targets, what in ((None, "the top prediction"), ([1], "class target \\[1\\]")):
        with pytest.raises(ValueError, match=rf"Model 'two_heads' has outputs \[\(None, 2\), \(None, 3\)\]; {what} "
                                             r"needs a classifier output \(batch, classes\)\. Explain its outputs "
                                             r"with a gradcam.targets object"):
            cam.heatmaps(docs, targets=targets)
    assert cam.heatmaps(docs, targets=[gradcam.targets.Output(output=1)]).shape == (1, 1, 4, 4)


def test_unbuilt_model_and_non_model():
    with pytest.raises(ValueError, match="is not built"):
        GradCAM(keras.Sequential([keras.layers.Conv2D(2, 1)], name="unbuilt"))
    with pytest.raises(TypeError, match="model must be a keras.Model; got str"):
        GradCAM("resnet50")


def test_subclassed_model_layers_in_call_order():
    from helpers.tiny import make_subclassed
    from gradcam.capture import model_info

    model = make_subclassed()
    shapes = model_info(model).layer_shapes
    assert [layer.name for layer in model.layers] == ["conv", "early", "pool", "predictions"]
    assert spatial_layers(model) == []  # no symbolic outputs: Keras knows no shapes
    assert [ref.path for ref in spatial_layers(model, shapes)] == ["early", "conv"]
    assert find_layer(model, shapes=shapes).path == "conv"
    assert find_layer(model, 1, shapes=shapes).path == "early"


# -- the automatic choice: what the head's pooling receives; token layers; paths ----------
def test_automatic_choice_is_the_pooling_input_when_an_operation_made_it():
    from helpers.method_models import make_residual
    from gradcam.layers import LayerRef, explained_shape

    model, _ = make_residual()
    ref = find_layer(model)
    assert ref == LayerRef(model.get_layer("pool"), "pool", of_input=True)
    assert ref.name == "input of pool" and explained_shape(ref) == (None, 2, 2, 2)
    assert find_layer(model, "input of pool") == ref
    assert find_layer(model, "block") == LayerRef(model.get_layer("block"), "block")


def test_automatic_choice_skips_1x1_maps_after_the_pooling():
    # MobileNetV3's head: pooling that keeps 1x1 maps, 1x1 convolutions, then Flatten
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = keras.layers.Conv2D(5, 1, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Flatten(name="flatten")(x), name="mnv3_head")
    assert find_layer(model).path == "features"


def test_automatic_choice_inside_a_nested_model_ending_in_an_operation():
    base_in = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(base_in)
    base = keras.Model(base_in, features * 2.0, name="base")  # the base ends in an operation
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x), name="wrapped")
    assert find_layer(model).name == "input of pool"


def test_automatic_choice_ignores_sub_models_made_from_the_models_tensors():
    """``keras.Model(layer.output, model.output)`` (a head split off, as users do) calls
    the layers after ``layer`` again on copies of the tensors; the layers then have two
    nodes, but the model's own graph still calls each once, and the choice stays."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="early")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x), name="split_later")
    assert find_layer(model).path == "features"
    keras.Model(model.get_layer("early").output, model.output)
    assert len(model.get_layer("features")._inbound_nodes) == 2
    assert find_layer(model).path == "features"
    assert GradCAM(model).layer == "features"


def test_token_layers_are_usable_and_bad_counts_are_refused():
    from helpers.tokens import make_tokens, make_vit
    from gradcam.layers import token_grid, usable_layers

    assert [token_grid(n) for n in (4, 5, 6, 16, 17, 197, 1)] == [(0, 2), (1, 2), None, (0, 4), (1, 4), (1, 14), None]
    assert [ref.path for ref in usable_layers(make_tokens(1))] == ["conv", "patches", "tokens"]
    with pytest.raises(ValueError, match=r"Layer 'tokens': 6 tokens .* do not make a square grid"):
        find_layer(make_tokens(2), "tokens")
    assert find_layer(make_tokens(2), "tokens", reshape=lambda t: t).path == "tokens"
    vit = make_vit()
    assert find_layer(vit).path == "ln_1"  # not the patch embedding convolution


def test_cli_layers_marks_the_input_of_the_pooling(tmp_path, capsys):
    import argparse

    from helpers.method_models import make_residual
    from gradcam.cli import layers as layers_command

    model, _ = make_residual()
    model.save(tmp_path / "residual.keras")
    args = argparse.Namespace(model=str(tmp_path / "residual.keras"), image_size=None, verbose=False)
    assert layers_command.run(args) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  conv           (2, 2, 2)",
        "  block          (2, 2, 2)",
        "* input of pool  (2, 2, 2)",
        "* = the automatic choice, used when --layer is not given",
    ]
