"""The keras.applications families, built with ``weights=None`` (nothing is downloaded),
explained with the defaults: the automatic layer is the one the head's pooling (or, for
VGG16, its flatten) receives, the map has that layer's grid, and it is not mostly empty.

Each model is built once, at a small size its family accepts (96 x 96, a 3 x 3 grid at
stride 32; InceptionV3 at 139, its smallest size with a 3 x 3 grid), and explains one
image, the bundled ``chelsea`` photo, through the family's ``preprocess_input``.
Random weights make the maps noise; what is checked is where they are read from.
MobileNetV3's head keeps 1 x 1 maps after its pooling (the old automatic choice was its
1 x 1 ``logits`` convolution); ConvNeXt's last block ends in a residual ``+``, an
operation, so the pooling's input is read.

Not among the tests run once per backend: this checks the layer choice and the engine on
real architectures, not a backend (the tiny models of ``test_engine`` do that).
"""

import warnings

import keras
import numpy as np
import pytest

from gradcam import GradCAM, samples
from gradcam.image import image_from_path
from gradcam.layers import explained_shape, find_layer
from gradcam.methods.base import EmptyMapWarning

A = keras.applications

# family: (builder, preprocess_input, size, expected layer (None: an Activation layer
# whose name Keras numbers), channels)
FAMILIES = {
    "MobileNetV2": (A.MobileNetV2, A.mobilenet_v2.preprocess_input, 96, "out_relu", 1280),
    "MobileNetV3Small": (A.MobileNetV3Small, A.mobilenet_v3.preprocess_input, 96, None, 576),
    "MobileNetV3Large": (A.MobileNetV3Large, A.mobilenet_v3.preprocess_input, 96, None, 960),
    "ResNet50": (A.ResNet50, A.resnet50.preprocess_input, 96, "conv5_block3_out", 2048),
    "VGG16": (A.VGG16, A.vgg16.preprocess_input, 96, "block5_pool", 512),
    "DenseNet121": (A.DenseNet121, A.densenet.preprocess_input, 96, "relu", 1024),
    "Xception": (A.Xception, A.xception.preprocess_input, 96, "block14_sepconv2_act", 2048),
    "EfficientNetV2B0": (A.EfficientNetV2B0, A.efficientnet_v2.preprocess_input, 96, "top_activation", 1280),
    "InceptionV3": (A.InceptionV3, A.inception_v3.preprocess_input, 139, "mixed10", 2048),
    "NASNetMobile": (A.NASNetMobile, A.nasnet.preprocess_input, 96, None, 1056),
    "ConvNeXtTiny": (A.ConvNeXtTiny, A.convnext.preprocess_input, 96, "input of convnext_tiny_head_gap", 768),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_explained_with_defaults(family):
    build, preprocess, size, expected, channels = FAMILIES[family]
    keras.utils.set_random_seed(1)
    model = build(weights=None, input_shape=(size, size, 3))
    ref = find_layer(model)
    if expected is None:
        assert isinstance(ref.layer, keras.layers.Activation) and not ref.of_input, ref.name
    else:
        assert ref.name == expected
    assert explained_shape(ref) == (None, 3, 3, channels)
    cam = GradCAM(model, preprocess=preprocess)
    assert cam.layer == ref.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        maps = cam.heatmaps(image_from_path(samples.path("chelsea"), image_shape=(size, size)))
    assert maps.shape == (1, 1, 3, 3)
    assert np.count_nonzero(maps) >= 3, maps[0, 0]  # at least a third of the grid
