"""``gradcam layers``: the layers of a model that Grad-CAM can explain."""

from __future__ import annotations

from gradcam.cli.arguments import UsageError
from gradcam.cli.model import load_model
from gradcam.cli.quiet import tensorflow_quiet
from gradcam.pipeline import one_line


def run(args) -> int:
    """Print the layers usable for Grad-CAM, the automatic one marked; return 0.

    Raises:
        UsageError: a bad model, or one without a layer usable for Grad-CAM.
    """
    with tensorflow_quiet(enabled=not args.verbose):
        from gradcam.capture import model_info
        from gradcam.layers import find_layer, output_shape, spatial_layers

        model, _ = load_model(args.model, args.image_size)
        try:
            shapes = model_info(model).layer_shapes  # a subclassed model's, from a trace
        except (TypeError, ValueError) as error:
            raise UsageError(f"--model: {one_line(error)}") from None
        layers = spatial_layers(model, shapes)
        if not layers:
            raise UsageError(f"--model: {args.model!r} has no layer with a 4-D output; Grad-CAM "
                             "explains convolutional image models.")
        chosen = find_layer(model, None, shapes=shapes).path
    width = max(len(ref.path) for ref in layers)
    print(f"Layers of {args.model} usable for Grad-CAM, with their output shape "
          "(height, width, channels):")
    for ref in layers:
        mark = "*" if ref.path == chosen else " "
        print(f"{mark} {ref.path:<{width}}  {output_shape(ref.layer, shapes)[1:]}")
    print("* = the automatic choice, used when --layer is not given")
    return 0
