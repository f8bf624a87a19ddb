"""``gradcam evaluate`` end to end on a tiny model file: metrics.csv equal to the metric
functions called directly, the table of means, failed files, exit codes, refusing to
overwrite, and metrics that fail."""

import csv
import os

import keras
import numpy as np
import pytest

import gradcam
from gradcam import metrics
from helpers.cli import leftovers, photo, run, save_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.fixture
def photos(tmp_path):
    """``a.png`` and ``b.jpg``, readable, and ``bad.jpg``, not an image; the folder and the
    readable paths in input order."""
    folder = tmp_path / "photos"
    paths = [photo(folder / "a.png", size=(64, 40)), photo(folder / "b.jpg", size=(30, 50), seed=3)]
    (folder / "bad.jpg").write_text("not an image")
    return folder, paths


def rows_of(out):
    with open(out / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_values_equal_the_metric_functions_called_directly(tmp_path, capsys, model_file, photos):
    folder, paths = photos
    out = tmp_path / "out"

    status, stdout, stderr = run(capsys, "evaluate", folder, "--model", model_file, "--out", out,
                                 "--method", "gradcam", "--method", "layercam", "--target", "2", "--target", "0",
                                 "--metric", "deletion", "--metric", "insertion", "--steps", "4",
                                 "--batch-size", "2", "--metric-batch-size", "3")

    assert status == 1, stderr
    model = keras.models.load_model(model_file)
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in paths])
    results = [engine.compute(docs, targets=[2, 0]) for engine in (gradcam.GradCAM(model), gradcam.LayerCAM(model))]
    expected = {}  # (image, method, target, metric) -> value
    for method, result in zip(["gradcam", "layercam"], results):
        for k, target in enumerate([2, 0]):
            for name in ["deletion", "insertion"]:
                values = getattr(metrics, name)(model, docs, result.heatmaps[:, k], result.targets[:, k], steps=4,
                                                batch_size=3)
                for n in range(2):
                    expected[(n, method, target, name)] = values[n]
    rows = rows_of(out)
    assert list(rows[0]) == ["path", "method", "metric", "target", "target_name", "value", "error"]
    assert [(os.path.basename(r["path"]), r["method"], r["target"], r["metric"]) for r in rows] == [
        (os.path.basename(p), m, t, name) for p in paths for m in ("gradcam", "layercam") for t in ("2", "0")
        for name in ("deletion", "insertion")] + [("bad.jpg", "", "", "")]
    for row in rows[:-1]:
        n = [str(p) for p in paths].index(row["path"])
        assert np.float32(row["value"]) == expected[(n, row["method"], int(row["target"]), row["metric"])]
        assert row["target_name"] == "" and row["error"] == ""
    assert rows[-1]["value"] == "" and "is not an image file" in rows[-1]["error"]
    assert "gradcam: skipped: " in stderr and "bad.jpg" in stderr
    assert "evaluated 2 of 3 images with deletion, insertion in " in stderr
    assert "1 failed (listed in metrics.csv)" in stderr
    means = {(m, name): np.mean([v for (_, m2, _, n2), v in expected.items() if (m2, n2) == (m, name)])
             for m in ("gradcam", "layercam") for name in ("deletion", "insertion")}
    assert stdout.splitlines() == [
        "method     deletion  insertion",
        f"gradcam   {means['gradcam', 'deletion']:9.4f}  {means['gradcam', 'insertion']:9.4f}",
        f"layercam  {means['layercam', 'deletion']:9.4f}  {means['layercam', 'insertion']:9.4f}",
        "mean over 2 images (2 targets each)",
    ]
    assert sorted(os.listdir(out)) == ["metrics.csv"] and leftovers(out) == []


def test_road_is_its_mean_over_the_percentiles(tmp_path, capsys, model_file, photos):
    _, paths = photos
    out = tmp_path / "out"
    status, stdout, stderr = run(capsys, "evaluate", *paths, "--model", model_file, "--out", out,
                                 "--metric", "road_morf", "--metric", "road_lerf", "--metric-batch-size", "4")
    assert status == 0, stderr
    model = keras.models.load_model(model_file)
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in paths])
    result = gradcam.GradCAM(model).compute(docs)
    rows = rows_of(out)
    assert [row["metric"] for row in rows] == ["road_morf", "road_lerf"] * 2
    for order in ("morf", "lerf"):
        scores = metrics.road(model, docs, result.heatmaps[:, 0], result.targets[:, 0], order=order, batch_size=4)
        assert scores.shape == (2, 9)
        values = [np.float32(row["value"]) for row in rows if row["metric"] == f"road_{order}"]
        np.testing.assert_array_equal(values, scores.mean(axis=1))
    assert stdout.splitlines()[0] == "method   road_morf  road_lerf"


def fake_metric(model, docs, heatmaps, targets, *, preprocess=None, batch_size=32, steps=100):
    """A stand-in metric that depends on each argument it is given: the image's mean, the
    map's mean, the target, ``steps`` and ``batch_size``."""
    return (docs.mean(axis=(1, 2, 3)) / 255 + heatmaps.mean(axis=(1, 2)) + 10 * targets
            + 1000 * steps + 1e5 * batch_size).astype(np.float32)


def test_default_metrics_steps_and_top_prediction(tmp_path, capsys, model_file, monkeypatch):
    for name in ["deletion", "insertion", "average_drop"]:
        monkeypatch.setattr(metrics, name, fake_metric, raising=False)
    path = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    status, stdout, stderr = run(capsys, "evaluate", path, "--model", model_file, "--out", out, "--quiet")
    assert status == 0 and stderr == ""
    model = keras.models.load_model(model_file)
    doc = gradcam.image_from_path(path, (32, 32))
    result = gradcam.GradCAM(model).compute(doc)
    top = int(result.targets[0, 0])
    assert top == int(np.argmax(result.outputs[0]))
    rows = rows_of(out)
    assert [(r["metric"], r["target"]) for r in rows] == [(m, str(top)) for m in ("deletion", "insertion",
                                                                                  "average_drop")]
    stepped = fake_metric(model, doc, result.heatmaps[:, 0], result.targets[:, 0], steps=100, batch_size=32)[0]
    plain = fake_metric(model, doc, result.heatmaps[:, 0], result.targets[:, 0], batch_size=32)[0]
    assert [np.float32(r["value"]) for r in rows] == [stepped, stepped, plain]
    assert stdout.splitlines()[0] == "method    deletion  insertion  average_drop"
    assert stdout.splitlines()[-1] == "mean over 1 images (1 target each)"


def test_class_names_name_the_targets(tmp_path, capsys, model_file, monkeypatch):
    monkeypatch.setattr(metrics, "deletion", fake_metric)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n", encoding="utf-8")
    path = photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "evaluate", path, "--model", model_file, "--out", tmp_path / "out",
                            "--class-names", names, "--target", "bird", "--target", "cat", "--metric", "deletion")
    assert status == 0, stderr
    assert [(r["target"], r["target_name"]) for r in rows_of(tmp_path / "out")] == [("2", "bird"), ("0", "cat")]


def test_never_overwrites_without_overwrite(tmp_path, capsys, model_file, monkeypatch):
    monkeypatch.setattr(metrics, "deletion", fake_metric)
    path = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    args = ["evaluate", path, "--model", model_file, "--out", out, "--metric", "deletion"]
    assert run(capsys, *args)[0] == 0
    before = (out / "metrics.csv").stat().st_mtime_ns

    status, stdout, stderr = run(capsys, *args)
    assert status == 2 and stdout == ""
    assert stderr.strip() == (f"gradcam: error: '{out / 'metrics.csv'}' exists: --out '{out}' holds outputs of "
                              "an earlier run. Pass --overwrite to replace them, or choose another --out.")
    assert (out / "metrics.csv").stat().st_mtime_ns == before

    status, _, _ = run(capsys, *args, "--overwrite")
    assert status == 0 and (out / "metrics.csv").stat().st_mtime_ns != before
    # the outputs of gradcam explain are not in the way, nor metrics.csv in explain's
    assert run(capsys, "explain", path, "--model", model_file, "--out", out, "--quiet")[0] == 0
    shared = tmp_path / "shared"
    assert run(capsys, "explain", path, "--model", model_file, "--out", shared, "--quiet")[0] == 0
    assert run(capsys, *args[:5], shared, *args[6:])[0] == 0
    assert {"metrics.csv", "heatmaps.npz", "summary.csv", "summary.json"} <= set(os.listdir(shared))
    assert leftovers(out) == []


def test_a_failing_metric_fails_its_batch_and_the_run_goes_on(tmp_path, capsys, model_file, monkeypatch):
    calls = []

    def fails_on_the_first_batch(model, docs, heatmaps, targets, **options):
        calls.append(len(docs))
        if len(calls) == 1:
            raise ValueError("no can do")
        return np.full(len(docs), 0.5, np.float32)

    monkeypatch.setattr(metrics, "deletion", fails_on_the_first_batch)
    for name in ["a.png", "b.png", "c.png"]:
        photo(tmp_path / "in" / name)
    out = tmp_path / "out"
    status, stdout, stderr = run(capsys, "evaluate", tmp_path / "in", "--model", model_file, "--out", out,
                                 "--metric", "deletion", "--batch-size", "2")
    assert status == 1 and calls == [2, 1]
    rows = rows_of(out)
    assert [(os.path.basename(r["path"]), r["value"], r["error"]) for r in rows] == [
        ("a.png", "", "the metric deletion failed on a batch: no can do"),
        ("b.png", "", "the metric deletion failed on a batch: no can do"),
        ("c.png", "0.5", "")]
    assert stdout.splitlines()[1:] == ["gradcam     0.5000", "mean over 1 images (1 target each)"]


@pytest.mark.parametrize("args, message", [
    (["--metric", "deletion", "--metric", "deletion"], "gradcam: error: --metric: 'deletion' is given twice."),
    (["--metric", "road"], "gradcam evaluate: error: argument --metric: invalid choice: 'road'"),
    (["--steps", "0"], "gradcam evaluate: error: argument --steps: expected a positive integer; got '0'"),
    (["--class-names", "missing.txt"], "gradcam: error: --class-names: cannot read 'missing.txt': No such file"),
])
def test_usage_errors_exit_2(tmp_path, capsys, model_file, args, message):
    path = photo(tmp_path / "in" / "a.png")
    status, stdout, stderr = run(capsys, "evaluate", path, "--model", model_file, "--out", tmp_path / "out", *args)
    assert status == 2 and stdout == ""
    assert stderr.splitlines()[-1].startswith(message)
    assert not (tmp_path / "out").exists()
