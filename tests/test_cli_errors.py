"""The command line names the flag of a library error from ArgumentError.argument, through
one table (gradcam.cli.arguments.FLAGS), never from the message."""

import dataclasses

import pytest

from gradcam.checks import ArgumentError
from gradcam.cli.arguments import FLAGS, UsageError, build_parser, flag_errors, flag_of
from gradcam.batch import RunSettings


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(action for action in parser._subparsers._group_actions).choices[command]
    return {flag for action in sub._actions for flag in action.option_strings}


def test_every_flag_of_the_table_exists():
    flags = _flags("explain") | _flags("evaluate")
    assert set(FLAGS.values()) <= flags


@pytest.mark.parametrize("settings, flag", [
    (dict(colormap="viridiss"), "--colormap"),
    (dict(format="tiff"), "--format"),
    (dict(compress=True), "--compress"),
    (dict(alpha_limit=2.0), "--alpha-limit"),
    (dict(batch_size=0), "--batch-size"),
    (dict(overlay_size=-1), "--overlay-size"),
    (dict(image_shape=(0, 4)), "--image-size"),
    (dict(targets=()), "--target"),
    (dict(overlays="yes"), "--no-overlays"),
])
def test_each_run_setting_error_names_a_flag_of_explain(settings, flag):
    with pytest.raises(ArgumentError) as raised:
        RunSettings(**{"image_shape": (4, 4), **settings})
    assert flag_of(raised.value.argument) == flag
    assert flag in _flags("explain")
    with pytest.raises(UsageError) as usage:
        with flag_errors():
            RunSettings(**{"image_shape": (4, 4), **settings})
    assert str(usage.value) == f"{flag}: {raised.value}"


def test_every_field_of_run_settings_that_the_command_sets_has_a_flag():
    flags = _flags("explain")
    fields = {field.name for field in dataclasses.fields(RunSettings)} - {"preprocess", "workers", "prefetch"}
    assert {name: flag_of(name) for name in fields if flag_of(name) not in flags} == {}


def test_flag_errors_fallback_and_pass_through():
    with pytest.raises(UsageError, match=r"^--layer: no such layer$"):
        with flag_errors(fallback="--layer"):
            raise ValueError("no such layer")
    with pytest.raises(UsageError, match=r"^--score: bad score$"):  # the argument, not the fallback
        with flag_errors(fallback="--layer"):
            raise ArgumentError("score", "bad score")
    with pytest.raises(UsageError, match=r"^--model: no layer to explain$"):  # --layer not given
        with flag_errors(fallback="--model", unset=["layer"]):
            raise ArgumentError("layer", "no layer to explain")
    with pytest.raises(TypeError, match="not a flag's"):
        with flag_errors():
            raise TypeError("not a flag's")
    assert flag_of("method") == "--method" and flag_of("options") == "--method"
    assert flag_of("image_size") == "--image-size" and flag_of("class_names") == "--class-names"
