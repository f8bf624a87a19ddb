"""Long runs: ``--resume`` after Ctrl-C and after ``SIGKILL`` gives the folder an
uninterrupted run gives, with no image explained twice; ``--overwrite`` removes the
earlier run's own files; a run's journal and the checks around it.

The interrupted runs are child processes (a real ``SIGINT`` and ``SIGKILL``) on a tiny
random-weights ``.keras`` model and 60 small pictures; each child logs the files it reads,
and reads them slowly enough to be interrupted mid-run.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gradcam
from gradcam.io.journal import RunJournal
from helpers.cli import leftovers, photo, run, save_model, summary

IMAGES = 60

#: The command, with each file it reads logged to $GRADCAM_TEST_LOG, slowly.
LOGGING_CHILD = """
import os, sys, time
from gradcam.batch import decoding
from gradcam.cli import main
log = open(os.environ["GRADCAM_TEST_LOG"], "a", encoding="utf-8")
decode = decoding._Decoder.decode
def logged(self, item):
    log.write(item.path + "\\n"); log.flush()
    time.sleep(0.05)
    return decode(self, item)
decoding._Decoder.decode = logged
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for n in range(IMAGES):
        photo(folder / f"{n:02d}.png", size=(24, 20), seed=n)
    return folder


def recorded(out, command="explain") -> list[str]:
    """The paths the run's journal records, in the order written."""
    return [record["path"] for record in RunJournal(out, command).read_records()]


def interrupt(args, out, log, sig, after: int) -> subprocess.CompletedProcess:
    """Run the command in a child and send it ``sig`` once its journal records ``after``
    images; return the finished child (its stderr as text)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["GRADCAM_TEST_LOG"] = str(log)
    child = subprocess.Popen([sys.executable, "-c", LOGGING_CHILD, *map(str, args)], env=env,
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(recorded(out)) < after:
            assert child.poll() is None, f"the run ended before it could be interrupted: {child.stderr.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, "", stderr)


def ctrl_c_at(monkeypatch, call: int) -> None:
    """Make the engine's ``call``-th computation (the first is the warm-up on a blank
    image) raise ``KeyboardInterrupt``, as Ctrl-C would there."""
    compute, calls = gradcam.GradCAM.compute, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(gradcam.GradCAM, "compute", interrupted)


def folder_contents(out) -> dict[str, bytes]:
    """Every file under ``out`` (hidden ones too) but the run-level files, by relative path."""
    found = {}
    for root, _, files in os.walk(out):
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, out)] = open(path, "rb").read()
    return found


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_interrupted_and_killed_runs_resume_to_the_uninterrupted_runs_folder(tmp_path, capsys, model_file, photos):
    common = ["explain", photos, "--model", model_file, "--batch-size", "4", "--target", "0", "--target", "2"]
    reference = tmp_path / "reference"
    assert run(capsys, *common, "--out", reference)[0] == 0

    out = tmp_path / "out"
    args = [*common, "--out", out]
    interruptions = [(signal.SIGINT, 8), (signal.SIGKILL, 20), (signal.SIGINT, 33), (signal.SIGKILL, 47)]
    for attempt, (sig, after) in enumerate(interruptions):
        before = recorded(out) if attempt else []
        log = tmp_path / f"read-{attempt}.log"
        done = interrupt(args + (["--resume"] if attempt else []), out, log, sig, after)
        assert done.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), done.stderr
        if sig == signal.SIGINT:
            assert "gradcam: interrupted" in done.stderr and "--resume" in done.stderr
            assert "skipped" not in done.stderr and "failed" not in done.stderr, done.stderr
        else:
            assert leftovers(out) != []  # killed: its lock and temporary folder are left
        # nothing the journal held before this run was read (let alone explained) again
        assert set(before).isdisjoint(log.read_text().split("\n")), attempt
        now = recorded(out)
        assert now[: len(before)] == before and len(now) >= after and len(now) < IMAGES
        assert not (out / "summary.json").exists()
    journal = recorded(out)
    assert len(journal) == len(set(journal))  # each image recorded once

    status, _, stderr = run(capsys, *args, "--resume")
    assert status == 0, stderr
    assert f"gradcam: explaining {IMAGES - len(journal)} images ({len(journal)} of {IMAGES} done before)" in stderr
    assert f"gradcam: explained {IMAGES} of {IMAGES} images" in stderr
    assert leftovers(out) == [] and not (out / ".gradcam-run.explain").exists()

    expected, got = folder_contents(reference), folder_contents(out)
    assert sorted(got) == sorted(expected)
    overlays = [name for name in expected if name.endswith(".jpg")]
    assert len(overlays) == 2 * IMAGES
    assert {name: got[name] for name in overlays} == {name: expected[name] for name in overlays}  # byte-identical
    assert csv_rows(out / "summary.csv") == csv_rows(reference / "summary.csv")
    report, reference_report = summary(out), summary(reference)
    assert report["images"] == reference_report["images"] and report["counts"] == reference_report["counts"]
    assert report["resumed"] == len(journal)
    with np.load(out / "heatmaps.npz") as npz, np.load(reference / "heatmaps.npz") as reference_npz:
        assert sorted(npz.files) == sorted(reference_npz.files)
        for name in npz.files:
            np.testing.assert_array_equal(npz[name], reference_npz[name], err_msg=name)


def test_evaluate_resumes_to_the_uninterrupted_runs_metrics(tmp_path, capsys, model_file, photos, monkeypatch):
    common = ["evaluate", photos / "00.png", photos / "01.png", photos / "02.png", photos / "03.png", "--model",
              model_file, "--batch-size", "1", "--metric", "deletion", "--steps", "4"]
    reference = tmp_path / "reference"
    status, reference_stdout, _ = run(capsys, *common, "--out", reference)
    assert status == 0
    ctrl_c_at(monkeypatch, 4)  # the warm-up, two images, then Ctrl-C
    out = tmp_path / "out"
    status, _, stderr = run(capsys, *common, "--out", out)
    assert status == 130 and not (out / "metrics.csv").exists()
    assert "skipped" not in stderr
    assert 1 <= len(recorded(out, "evaluate")) <= 2
    monkeypatch.undo()
    status, stdout, stderr = run(capsys, *common, "--out", out, "--resume")
    assert status == 0, stderr
    assert "done before)" in stderr
    assert (out / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    assert stdout == reference_stdout  # the means cover the whole run


def test_overwrite_removes_only_the_earlier_runs_own_files(tmp_path, capsys, model_file, photos):
    out = tmp_path / "out"
    assert run(capsys, "explain", photos / "00.png", photos / "01.png", "--model", model_file, "--out", out,
               "--target", "0")[0] == 0
    old = sorted(name for name in os.listdir(out) if name.endswith(".jpg"))
    assert old == ["00.0.gradcam.jpg", "01.0.gradcam.jpg"]
    (out / "notes.txt").write_text("mine")
    (out / "02.1.gradcam.jpg").write_bytes(b"not the run's")  # named like an overlay, not listed
    status, _, stderr = run(capsys, "explain", photos / "00.png", photos / "01.png", "--model", model_file,
                            "--out", out, "--target", "1", "--overwrite")
    assert status == 0, stderr
    assert sorted(os.listdir(out)) == ["00.1.gradcam.jpg", "01.1.gradcam.jpg", "02.1.gradcam.jpg",
                                       "heatmaps.npz", "notes.txt", "summary.csv", "summary.json"]
    assert (out / "02.1.gradcam.jpg").read_bytes() == b"not the run's"


def test_overwrite_removes_an_interrupted_runs_overlays(tmp_path, capsys, model_file, photos, monkeypatch):
    ctrl_c_at(monkeypatch, 3)
    out = tmp_path / "out"
    paths = [photos / "00.png", photos / "01.png", photos / "02.png"]
    args = ["explain", *paths, "--model", model_file, "--out", out, "--batch-size", "1"]
    assert run(capsys, *args, "--target", "0")[0] == 130
    records = RunJournal(out, "explain").read_records()
    assert [r["path"] for r in records] in ([], [str(paths[0])])  # the first image, if recorded in time
    listed = [t["overlay"] for r in records for t in r["targets"]]
    assert all((out / name).exists() for name in listed)
    monkeypatch.undo()

    status, _, stderr = run(capsys, *args, "--target", "1")
    assert status == 2
    assert stderr.strip() == (f"gradcam: error: --out '{out}' holds an interrupted run ({len(records)} of 3 images "
                              "done). Pass --resume to go on with it, --overwrite to start it again, or choose "
                              "another --out.")
    status, _, stderr = run(capsys, *args, "--target", "1", "--resume")
    assert status == 2
    assert stderr.strip() == ("gradcam: error: --resume: --target differs from the interrupted run's: it was "
                              "['0'], now ['1']. Resume with the run's settings, or pass --overwrite to start again.")
    status, _, stderr = run(capsys, "explain", *paths[:2], "--model", model_file, "--out", out, "--batch-size", "1",
                            "--target", "0", "--resume")
    assert status == 2
    assert stderr.strip() == ("gradcam: error: --resume: the inputs differ from the interrupted run's (3 files "
                              "then, 2 now): resume with the same paths, or pass --overwrite to start again.")
    status, _, stderr = run(capsys, *args, "--target", "1", "--overwrite")
    assert status == 0, stderr
    assert not any((out / name).exists() for name in listed)  # the interrupted run's recorded overlays
    assert {"00.1.gradcam.jpg", "01.1.gradcam.jpg", "02.1.gradcam.jpg"} <= set(os.listdir(out))


def test_resume_with_nothing_to_resume(tmp_path, capsys, model_file, photos):
    out = tmp_path / "out"
    args = ["explain", photos / "00.png", "--model", model_file, "--out", out]
    status, _, stderr = run(capsys, *args, "--resume")
    assert status == 0 and f"gradcam: nothing to resume in '{out}': starting the run." in stderr
    status, _, stderr = run(capsys, *args, "--resume")
    assert status == 2
    assert stderr.strip() == (f"gradcam: error: --resume: the run in --out '{out}' finished "
                              f"('{out / 'heatmaps.npz'}' exists): there is nothing to resume. Pass --overwrite "
                              "to run it again.")
    status, _, stderr = run(capsys, *args, "--resume", "--overwrite")
    assert status == 2
    assert stderr.strip() == ("gradcam: error: --resume and --overwrite exclude each other: --resume goes on "
                              "with the run in --out, --overwrite starts it again.")


def test_a_journal_records_and_drops_what_a_killed_run_left_half_written(tmp_path):
    journal = RunJournal(tmp_path, "explain")
    journal.start({"model": "m"}, ["a.png", "b.png", "c.png"])
    journal.append({"path": "a.png", "status": "ok"}, np.ones((1, 2, 2), np.float32))
    journal.append({"path": "b.png", "status": "failed", "error": "no"})
    journal.close()
    with open(os.path.join(journal.path, "records.jsonl"), "ab") as file:
        file.write(b'{"path": "c.png", "sta')  # killed while writing c's record
    with open(os.path.join(journal.path, "heatmaps.raw"), "ab") as file:
        file.write(np.zeros((1, 2, 2), np.float32).tobytes())  # ... after its maps
    resumed = RunJournal(tmp_path, "explain")
    resumed.resume()
    assert resumed.done == {"a.png"}  # b failed: tried again
    resumed.append({"path": "b.png", "status": "ok"}, np.full((1, 2, 2), 2, np.float32))
    records = list(resumed.records(["a.png", "b.png", "c.png"]))
    assert [(r["path"], r["status"], r["slot"]) for r in records] == [("a.png", "ok", 0), ("b.png", "ok", 1)]
    np.testing.assert_array_equal(resumed.heatmaps([1, 0]), [np.full((1, 2, 2), 2), np.ones((1, 2, 2))])
    np.testing.assert_array_equal(resumed.heatmaps([0, 1]), [np.ones((1, 2, 2)), np.full((1, 2, 2), 2)])
    assert json.loads(open(os.path.join(resumed.path, "run.json")).read())["inputs"] == 3
    resumed.remove()
    assert os.listdir(tmp_path) == []


def test_resume_may_spell_out_the_defaults(tmp_path, capsys, model_file, photos, monkeypatch):
    ctrl_c_at(monkeypatch, 3)
    out = tmp_path / "out"
    args = ["evaluate", photos / "00.png", photos / "01.png", "--model", model_file, "--out", out, "--batch-size",
            "1", "--steps", "2"]
    assert run(capsys, *args)[0] == 130
    monkeypatch.undo()
    status, _, stderr = run(capsys, *args, "--resume", "--method", "gradcam", "--metric", "deletion", "--metric",
                            "insertion", "--metric", "average_drop")
    assert status == 0, stderr
