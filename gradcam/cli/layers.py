"""``gradcam layers``: the layers of a model that a class-activation map can explain."""

from __future__ import annotations

from gradcam.cli.arguments import UsageError, flag_errors
from gradcam.cli.quiet import tensorflow_quiet
from gradcam.models.registry import load_model


def run(args) -> int:
    """Print the layers usable for Grad-CAM, the automatic one marked; return 0.

    Layers with a 4-D output show ``(height, width, channels)``, token layers ``(tokens,
    channels)``. When the automatic choice is the input of a layer (what the head's
    pooling receives, made by an operation such as a residual ``+``), it is printed last
    as ``input of <layer>``, the value that ``--layer`` takes for it.

    Raises:
        UsageError: a bad model, or one without a layer usable for Grad-CAM.
    """
    with tensorflow_quiet(enabled=not args.verbose):
        from gradcam.capture import model_info
        from gradcam.layers import explained_shape, find_layer, output_shape, usable_layers

        with flag_errors(fallback="--model"):
            model, _ = load_model(args.model, args.image_size)
            shapes = model_info(model).layer_shapes  # a subclassed model's, from a trace
        layers = usable_layers(model, shapes)
        if not layers:
            raise UsageError(f"--model: {args.model!r} has no layer with a 4-D output or a grid of "
                             "tokens; Grad-CAM explains image models.")
        chosen = find_layer(model, None, shapes=shapes)
    rows = [(ref.name, output_shape(ref.layer, shapes)[1:], ref == chosen) for ref in layers]
    if chosen.of_input:
        rows.append((chosen.name, explained_shape(chosen, shapes)[1:], True))
    width = max(len(name) for name, _, _ in rows)
    print(f"Layers of {args.model} usable for Grad-CAM, with their output shape "
          "(height, width, channels), or (tokens, channels):")
    for name, shape, is_chosen in rows:
        print(f"{'*' if is_chosen else ' '} {name:<{width}}  {shape}")
    print("* = the automatic choice, used when --layer is not given")
    return 0
