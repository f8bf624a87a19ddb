"""The command's early checks, cost estimate, input notes, warnings and messages: each
check that needs no model runs before TensorFlow is imported, those that need it before
any image is read, and each message says what is wrong in the command's own terms."""

import re

import numpy as np
import pytest

from helpers.cli import photo, run, run_child, save_model, summary

#: Runs the command in a child and prints whether TensorFlow was imported.
TENSORFLOW_IMPORTED = ("import sys; from gradcam.cli import main; status = main(sys.argv[1:]); "
                       "print('tensorflow' in sys.modules); sys.exit(status)")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.mark.parametrize("args, message", [
    (["--method", "gradcamm"], "--method: Unknown method 'gradcamm'; the methods are 'gradcam', "),
    (["--method", "layercam", "--method", "layercam"], "--method: 'layercam' is given twice."),
    (["--colormap", "viridiss"], "--colormap: Unknown matplotlib colormap 'viridiss'."),
    (["--class-names", "NAMES", "--target", "four"], "--target: Unknown class name 'four'."),
])
def test_checks_that_need_no_model_run_before_tensorflow_is_imported(tmp_path, model_file, args, message):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "names.txt").write_text("zero\none\ntwo\n")
    args = [str(tmp_path / "names.txt") if a == "NAMES" else a for a in args]
    done = run_child("explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out", *args,
                     code=TENSORFLOW_IMPORTED)
    assert done.returncode == 2 and done.stdout == "False\n"
    assert done.stderr.startswith(f"gradcam: error: {message}"), done.stderr
    assert not (tmp_path / "out").exists()


def test_a_target_name_of_a_built_in_model_is_checked_before_it_loads(tmp_path):
    photo(tmp_path / "in" / "a.png")
    done = run_child("explain", tmp_path / "in", "--out", tmp_path / "out", "--target", "tabbby",
                     code=TENSORFLOW_IMPORTED)
    assert done.returncode == 2 and done.stdout == "False\n"
    assert done.stderr.startswith("gradcam: error: --target: "), done.stderr
    assert "tabby" in done.stderr


def test_an_unknown_layer_points_to_gradcam_layers(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--layer", "conv3")
    assert status == 2
    assert stderr.splitlines()[-1].startswith("gradcam: error: --layer: ") and "conv3" in stderr
    assert stderr.rstrip().endswith(f"The layers that can be explained: gradcam layers --model {model_file}")
    assert not (tmp_path / "out").exists()


def test_a_costly_run_stops_unless_yes(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    args = ["evaluate", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out", "--metric", "deletion"]
    status, _, stderr = run(capsys, *args, "--steps", "100000000")
    assert status == 2
    assert stderr.splitlines()[-1] == (
        "gradcam: error: this run makes 100,000,002 forward passes of the model (1 image x 100,000,002), above "
        "1,000,000: it may take hours. Pass --yes to run it anyway, or make it smaller (fewer images, --steps, "
        "--max-channels, --method, --metric).")
    assert not (tmp_path / "out").exists()  # nothing was read or written

    # above the threshold with --yes: a warning, and the run goes on (2 + 3 passes per image)
    import gradcam.cli.cost as cost

    cost.COST_WARNING_PASSES, threshold = 3, cost.COST_WARNING_PASSES
    try:
        status, _, stderr = run(capsys, *args, "--steps", "2", "--yes")
    finally:
        cost.COST_WARNING_PASSES = threshold
    assert status == 0, stderr
    assert ("gradcam: warning: this run makes 4 forward passes of the model (1 image x 4), above 3: it may "
            "take hours.") in stderr
    assert "gradcam: evaluating 1 image with gradcam at layer 'conv2', 4 forward passes (setup took" in stderr


def test_the_expected_time_is_shown_after_the_first_batch(tmp_path, capsys, model_file):
    for n in range(3):
        photo(tmp_path / "in" / f"{n}.png", seed=n)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--batch-size", "2")
    assert status == 0
    assert "gradcam: explaining 3 images with gradcam at layer 'conv2', 3 forward passes (setup took " in stderr
    assert re.search(r"^gradcam: the first 2 took \d+:\d\d: about \d+:\d\d for all 3\.$", stderr, re.M), stderr


def test_folders_holding_a_run_are_not_inputs(tmp_path, capsys, model_file):
    photo(tmp_path / "par" / "a.png")
    assert run(capsys, "explain", tmp_path / "par", "--model", model_file, "--out", tmp_path / "par" / "out")[0] == 0
    status, _, stderr = run(capsys, "explain", tmp_path / "par", "--model", model_file, "--out",
                            tmp_path / "par" / "out2")
    assert status == 0
    assert f"gradcam: note: skipped '{tmp_path / 'par' / 'out'}': it holds a gradcam run's outputs." in stderr
    assert [r["path"] for r in summary(tmp_path / "par" / "out2")["images"]] == [str(tmp_path / "par" / "a.png")]


def test_a_tiny_image_is_explained_with_a_warning(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "dot.png", size=(1, 1))
    photo(tmp_path / "in" / "fine.png", size=(8, 8))  # a quarter of 32: no warning
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out")
    assert status == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("gradcam: warning:")]
    assert warnings == [f"gradcam: warning: '{tmp_path / 'in' / 'dot.png'}' is 1x1 pixels, much smaller than the "
                        "model's 32x32: it is upscaled, and its map shows little."]


def test_a_class_given_twice_is_explained_once(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "names.txt").write_text("zero\none\ntwo\n")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--class-names", tmp_path / "names.txt", "--target", "1", "--target", "one",
                            "--target", "2")
    assert status == 0
    assert "gradcam: warning: --target 'one' is class 1, given already as '1': it is explained once." in stderr
    report = summary(tmp_path / "out")
    assert [t["index"] for t in report["images"][0]["targets"]] == [1, 2] and report["targets"] == [1, 2]
    with np.load(tmp_path / "out" / "heatmaps.npz") as npz:
        assert npz["heatmaps"].shape[:2] == (1, 2)


def test_an_image_size_far_below_the_models_own_is_warned_about(tmp_path):
    done = run_child("explain", tmp_path / "missing.png", "--image-size", "100", "100", code=TENSORFLOW_IMPORTED)
    assert done.returncode == 2 and done.stdout == "False\n"
    assert done.stderr.splitlines()[0] == (
        "gradcam: warning: --image-size 100 100 is far below efficientnet_lite0's own 224x224: its maps will be "
        "coarse. Leave --image-size out to use the model's own.")


def test_out_naming_a_file(tmp_path, capsys, model_file):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "out.txt").write_text("a file")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out.txt")
    assert status == 2
    assert stderr == f"gradcam: error: --out '{tmp_path / 'out.txt'}' is a file; --out names a folder (created if needed).\n"


def test_an_option_of_another_command_gets_this_commands_usage(capsys):
    status, _, stderr = run(capsys, "evaluate", "photos", "--format", "png")
    assert status == 2
    assert stderr.startswith("usage: gradcam evaluate ")
    assert stderr.splitlines()[-1] == ("gradcam evaluate: error: unrecognized arguments: --format png (--format is "
                                       "an option of 'gradcam explain')")


def test_a_run_where_every_file_failed_shows_no_rate(tmp_path, capsys, model_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out")
    assert status == 1
    assert f"gradcam: skipped: '{tmp_path / 'in' / 'empty.png'}' is empty (0 bytes)." in stderr
    assert re.search(r"^gradcam: explained 0 of 1 image in [0-9.]+ s; 1 failed \(listed in summary.json\)\. ",
                     stderr, re.M), stderr
    assert "images/s" not in stderr.splitlines()[-1]


def test_format_as_image_names_what_it_takes():
    from gradcam import format_as_image

    with pytest.raises(TypeError, match=r"^format_as_image takes an Explanation \(from explain_prediction\); "
                                        r"got None\.$"):
        format_as_image(None)


@pytest.mark.parametrize("args, passes", [
    (["--method", "gradcam", "--method", "eigencam"], 2),  # one each
    (["--method", "scorecam", "--max-channels", "4"], 1 + 4),  # and one per channel scored
    (["--method", "ablationcam"], 1 + 6),  # and one per channel of conv2 (6)
    (["--method", "gradcam", "--aug-smooth"], 6),  # one per augmented copy
    (["--method", "scorecam", "--max-channels", "4", "--aug-smooth"], 6 * (1 + 4)),
    (["--method", "gradcam", "--eigen-smooth"], 1),
])
def test_the_first_line_counts_the_forward_passes_of_each_method(tmp_path, capsys, model_file, args, passes):
    for n in range(2):
        photo(tmp_path / "in" / f"{n}.png", seed=n)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            "--target", "1", *args)
    assert status == 0, stderr
    assert f"at layer 'conv2', {2 * passes} forward passes (setup took " in stderr
