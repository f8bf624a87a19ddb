"""``gradcam report`` on a tiny saved classifier (tests/helpers/cli.py): its numbers are
``gradcam.report``'s on the same files; an interrupted run (a real SIGINT to a child
process) resumes without studying its finished images again and writes the report an
uninterrupted run writes; a user's files are never replaced; its flags' errors name them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from helpers.cli import leftovers, photo, run, save_model

import gradcam
from gradcam.cli.arguments import build_parser
from gradcam.cli.report import Report
from gradcam.cli.resume import recorded_options
from gradcam.io.inputs import find_inputs
from gradcam.io.journal import RunJournal

STEPS = 4
IMAGES = 5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model file and a folder of 5 pictures and one unreadable file."""
    root = tmp_path_factory.mktemp("report-cli")
    model = save_model(root / "tiny.keras")
    for n in range(IMAGES):
        photo(root / "photos" / f"p{n}.png", seed=n)
    (root / "photos" / "broken.png").write_bytes(b"not an image")
    return model, root / "photos"


def options(model, *extra):
    return ["--model", model, "--method", "gradcam", "--method", "layercam", "--steps", STEPS, "-q", *extra]


def report_json(out) -> dict:
    return json.loads((Path(out) / "report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def uninterrupted(files, tmp_path_factory):
    """An uninterrupted run, in batches of 2 (three batches of the six inputs)."""
    model, photos = files
    out = tmp_path_factory.mktemp("whole") / "out"
    status = gradcam.cli.main([str(a) for a in ["report", photos, *options(model, "--batch-size", 2, "--out", out)]])
    assert status == 1  # one input could not be read
    return out


def test_numbers_are_gradcam_reports(files, tmp_path, capsys):
    model_path, photos = files
    out = tmp_path / "out"
    status, stdout, _ = run(capsys, "report", photos, *options(model_path, "--out", out))
    assert status == 1
    written = report_json(out)
    paths = sorted(str(p) for p in photos.iterdir())
    expected = gradcam.report(keras.saving.load_model(model_path), paths, methods=["gradcam", "layercam"],
                              steps=STEPS, image_shape=(32, 32))
    assert [image["name"] for image in written["images"]] == [f"p{n}.png" for n in range(IMAGES)]
    for key in ("images", "rows", "values", "summary", "comparisons", "sanity_failures", "curves",
                "randomisation", "forward_passes", "metrics"):
        assert written[key] == expected[key], key
    assert [s["path"] for s in written["skipped"]] == [str(photos / "broken.png")]
    assert "broken.png" in written["verdict"][-1]
    assert sorted(os.listdir(out)) == ["metrics.csv", "report.html", "report.json"]  # the journal is gone
    # the verdict and the table of means on standard output
    assert written["verdict"][0] in stdout
    gradcam_row = next(line for line in stdout.splitlines() if line.startswith("gradcam "))
    assert f"{written['summary']['gradcam']['deletion']['mean']:.4f}" in gradcam_row


def recorded(out) -> int:
    path = Path(out) / ".gradcam-run.report" / "records.jsonl"
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_interrupted_run_resumes_to_the_uninterrupted_report(files, uninterrupted, tmp_path, capsys):
    model, photos = files
    out = tmp_path / "out"
    args = ["report", photos, *options(model, "--batch-size", 2, "--out", out)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gradcam.cli import main; sys.exit(main(sys.argv[1:]))",
         *map(str, args)], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 240
        while recorded(out) < 2:  # the first batch: broken.png and p0.png
            assert child.poll() is None, f"the run ended before it could be interrupted: {child.stderr.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, stderr
    assert "--resume" in stderr
    done = recorded(out)
    assert 2 <= done < IMAGES + 1  # interrupted before the end
    assert not (out / "report.html").exists() and not (out / "report.json").exists()
    assert leftovers(out) == []

    # Without --resume the interrupted run is in the way.
    status, _, err = run(capsys, *args)
    assert status == 2 and "holds an interrupted run" in err and "--resume" in err

    # Studied images are not studied again: a study of the remaining batches only.
    studied = []
    study_images = gradcam.reporting.study.Study.images

    def counting(self, batch, names, targets=None):
        studied.extend(names)
        return study_images(self, batch, names, targets)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gradcam.reporting.study.Study, "images", counting)
        status, _, err = run(capsys, *args, "--resume")
    assert status == 1, err
    finished = {f"p{n}.png" for n in range(done - 1)}  # the records after broken.png's
    assert set(studied).isdisjoint(finished) and set(studied) | finished >= {f"p{n}.png" for n in range(IMAGES)}
    assert report_json(out) == report_json(uninterrupted)
    assert (out / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()
    assert not (out / ".gradcam-run.report").exists()


def test_resume_needs_the_same_steps_and_batch_size(files, tmp_path, capsys):
    model, photos = files
    out = tmp_path / "out"
    given = ["report", str(photos), *map(str, options(model, "--out", out))]
    args = build_parser().parse_args(given)
    journal = RunJournal(out, "report")  # as an interrupted run leaves it
    journal.start(recorded_options(args, Report()), [item.path for item in find_inputs(args.paths, out_dir=out)])
    journal.close()
    for flag, value in (("--steps", "5"), ("--batch-size", "3"), ("--metric", "deletion")):
        status, _, err = run(capsys, *given, flag, value, "--resume")
        assert status == 2 and f"--resume: {flag} differs from the interrupted run's" in err, err


def test_a_users_report_is_never_replaced(files, tmp_path, capsys):
    model, photos = files
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("mine")
    status, _, err = run(capsys, "report", photos, *options(model, "--out", out))
    assert status == 2
    assert "report.html" in err and "--overwrite" in err
    assert (out / "report.html").read_text() == "mine"
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("extra, message", [
    (["--target", "0", "--target", "1"], "--target: a report explains one class per image; got 2"),
    (["--target", "segmentation:1"], "--target"),
    (["--metric", "deletion", "--metric", "deletion"], "--metric: 'deletion' is given twice"),
    (["--metric", "road_morf"], "argument --metric: invalid choice: 'road_morf'"),
    (["--eigen-smooth"], "--eigen-smooth is an option of 'gradcam explain and evaluate'"),
    (["--steps", "0"], "argument --steps: expected a positive integer; got '0'"),
])
def test_flag_errors_name_their_flag(files, tmp_path, capsys, extra, message):
    model, photos = files
    status, _, err = run(capsys, "report", photos, *options(model, "--out", tmp_path / "out", *extra))
    assert status == 2
    assert message in err
    assert not (tmp_path / "out").exists()


def test_a_target_class_is_explained_on_every_image(files, tmp_path, capsys):
    model, photos = files
    out = tmp_path / "out"
    status, _, err = run(capsys, "report", photos, *options(model, "--out", out, "--target", "2",
                                                             "--metric", "deletion"))
    assert status == 1, err
    written = report_json(out)
    assert [image["target"] for image in written["images"]] == [2] * IMAGES
    assert written["settings"]["metrics"] == ["deletion"]


def test_each_method_is_compiled_once(files, tmp_path, capsys, monkeypatch):
    # The set-up's engines (on the model) are never run: the study's engines (on the copy
    # the sanity checks randomise) make every map, and are compiled during the set-up.
    seen = {}
    work = Report.work

    def spy(self, args, setup, *rest):
        seen["set-up"] = [len(engine._compiled) for engine in setup.engines]
        seen["study"] = {name: len(engine._compiled) for name, engine in self.study.engines.items()}
        found = work(self, args, setup, *rest)
        seen["set-up after"] = [len(engine._compiled) for engine in setup.engines]
        return found

    monkeypatch.setattr(Report, "work", spy)
    model, photos = files
    status, _, err = run(capsys, "report", photos, *options(model, "--out", tmp_path / "out", "--metric",
                                                             "efficient_mprt"))
    assert status == 1, err
    assert seen["set-up"] == seen["set-up after"] == [0, 0]
    assert sorted(seen["study"]) == ["gradcam", "layercam", "randomcam"]
    assert all(count > 0 for count in seen["study"].values()), seen


def test_a_metric_the_model_cannot_give_names_its_flag(files, tmp_path, capsys):
    path = tmp_path / "logits.keras"
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    keras.Model(inputs, keras.layers.Dense(3, name="logits")(pooled)).save(path)
    status, _, err = run(capsys, "report", files[1], *options(path, "--out", tmp_path / "out", "--metric",
                                                               "average_drop"))
    assert status == 2
    assert "--metric: average_drop needs a model that ends in a softmax" in err, err
    assert not (tmp_path / "out").exists()
