"""The methods' own options and the smoothing flags on the command line: each reaches
the engines of the methods that take it (maps equal to the library's), is recorded in
``summary.json`` and the run's journal, and is refused where no method takes it or with
a bad value. On a tiny random-weights ``.keras`` model (16x16 maps of 6 channels)."""

import csv
import json
import os
import warnings

import keras
import numpy as np
import pytest

import gradcam
from gradcam.io.journal import RunJournal
from helpers.cli import photo, run, save_model, summary


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny.keras")


def two_photos(tmp_path):
    paths = [photo(tmp_path / "in" / "a.png", seed=1), photo(tmp_path / "in" / "b.png", seed=2)]
    docs = np.concatenate([gradcam.image_from_path(p, (32, 32)) for p in paths])
    return tmp_path / "in", docs


def heatmaps(out):
    with np.load(out / "heatmaps.npz") as npz:
        return npz["heatmaps"]


def test_method_options_reach_the_methods_that_take_them(tmp_path, capsys, model_file):
    photos, docs = two_photos(tmp_path)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out, "--no-overlays",
                            "--method", "gradcam", "--method", "scorecam", "--max-channels", "2",
                            "--method", "kpcacam", "--kernel", "rbf", "--gamma", "0.5",
                            "--method", "fem", "--fem-k", "0.5", "--method", "randomcam", "--seed", "7")
    assert status == 0, stderr
    model = keras.models.load_model(model_file)
    engines = [gradcam.GradCAM(model), gradcam.ScoreCAM(model, max_channels=2),
               gradcam.KPCACAM(model, kernel="rbf", gamma=0.5), gradcam.FEM(model, k=0.5),
               gradcam.RandomCAM(model, seed=7)]
    defaults = [gradcam.ScoreCAM(model), gradcam.KPCACAM(model), gradcam.FEM(model), gradcam.RandomCAM(model)]
    expected = [engine.compute(docs).heatmaps for engine in engines]
    for given, default in zip(expected[1:], defaults):  # each option changes the maps (conv2 has 6 channels)
        assert np.abs(given - default.compute(docs).heatmaps).max() > 1e-3
    np.testing.assert_allclose(heatmaps(out), np.concatenate(expected, axis=1), atol=1e-5)
    assert summary(out)["method_options"] == {"scorecam": {"max_channels": 2},
                                              "kpcacam": {"kernel": "rbf", "gamma": 0.5}, "fem": {"k": 0.5},
                                              "randomcam": {"seed": 7}}


def test_smoothing_flags_reach_every_method_and_are_recorded(tmp_path, capsys, model_file):
    photos, docs = two_photos(tmp_path)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", photos, "--model", model_file, "--out", out, "--no-overlays",
                            "--method", "gradcam", "--method", "eigencam", "--eigen-smooth", "--aug-smooth")
    assert status == 0, stderr
    model = keras.models.load_model(model_file)
    engines = [gradcam.GradCAM(model), gradcam.EigenCAM(model)]
    smoothed = np.concatenate([e.compute(docs, eigen_smooth=True, aug_smooth=True).heatmaps for e in engines], 1)
    plain = np.concatenate([e.compute(docs).heatmaps for e in engines], axis=1)
    assert np.abs(smoothed - plain).max() > 1e-3
    np.testing.assert_allclose(heatmaps(out), smoothed, atol=1e-5)
    assert summary(out)["eigen_smooth"] is True and summary(out)["aug_smooth"] is True


def test_evaluate_scores_the_smoothed_maps(tmp_path, capsys, model_file):
    photos, docs = two_photos(tmp_path)
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "evaluate", photos, "--model", model_file, "--out", out, "--aug-smooth",
                            "--metric", "deletion", "--steps", "4")
    assert status == 0, stderr
    model = keras.models.load_model(model_file)
    result = gradcam.GradCAM(model).compute(docs, aug_smooth=True)
    expected = gradcam.metrics.deletion(model, docs, result.heatmaps[:, 0], result.targets[:, 0], steps=4)
    plain = gradcam.GradCAM(model).compute(docs)
    assert np.abs(gradcam.metrics.deletion(model, docs, plain.heatmaps[:, 0], plain.targets[:, 0], steps=4)
                  - expected).max() > 1e-4
    with open(out / "metrics.csv", newline="", encoding="utf-8") as file:
        values = [float(row["value"]) for row in csv.DictReader(file)]
    np.testing.assert_allclose(values, expected, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--max-channels", "2"], "gradcam: error: --max-channels applies to --method scorecam or ablationcam, which is not given."),
    (["--method", "scorecam", "--max-channels", "0"],
     "gradcam explain: error: argument --max-channels: expected a positive integer; got '0'"),
    (["--kernel", "rbf"], "gradcam: error: --kernel applies to --method kpcacam, which is not given."),
    (["--method", "gradcam", "--gamma", "2"], "gradcam: error: --gamma applies to --method kpcacam, which is not given."),
    (["--fem-k", "1"], "gradcam: error: --fem-k applies to --method fem, which is not given."),
    (["--seed", "1"], "gradcam: error: --seed applies to --method randomcam, which is not given."),
    (["--method", "kpcacam", "--gamma", "0"],
     "gradcam explain: error: argument --gamma: expected a positive number; got '0'"),
    (["--method", "kpcacam", "--gamma", "inf"],
     "gradcam explain: error: argument --gamma: expected a positive number; got 'inf'"),
    (["--method", "fem", "--fem-k", "nan"], "gradcam explain: error: argument --fem-k: expected a number; got 'nan'"),
    (["--method", "randomcam", "--seed", "-1"],
     "gradcam explain: error: argument --seed: expected an integer from 0 to 2**32 - 1; got '-1'"),
    (["--method", "kpcacam", "--kernel", "gaussian"],  # before the model loads
     "gradcam explain: error: argument --kernel: expected one of sigmoid, rbf, poly, linear, cosine; got 'gaussian'"),
])
def test_method_option_errors(tmp_path, capsys, model_file, args, message):
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", tmp_path / "out",
                            *args)
    assert status == 2 and stderr.splitlines()[-1] == message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method, options, message", [
    ("kpcacam", {"kernel": "gaussian"}, "--kernel: kernel must be one of 'sigmoid', 'rbf', 'poly', 'linear', "
                                        "'cosine'; got 'gaussian'."),
    ("kpcacam", {"gamma": -1.0}, "--gamma: gamma must be a positive number or None (1 / channels); got -1.0."),
    ("fem", {"k": float("nan")}, "--fem-k: k must be a finite number (standard deviations above the mean); got nan."),
    ("randomcam", {"seed": -1}, "--seed: seed must be a non-negative integer; got -1."),
    ("randomcam", {"seed": 2**32}, "--seed: seed must be an integer in [0, 2**32); got 4294967296."),
    ("scorecam", {"max_channels": 0}, "--max-channels: max_channels must be a positive integer; got 0."),
    ("ablationcam", {"max_channels": 0}, "--max-channels: max_channels must be a positive integer or None; got 0."),
])
def test_the_methods_errors_name_the_flag_of_the_option(model_file, method, options, message):
    """Each method's constructor names the option at fault (an ArgumentError), which
    the command line reports under the option's flag."""
    from gradcam.cli.arguments import UsageError
    from gradcam.cli.model import build_engines, method_classes

    model = keras.models.load_model(model_file)
    with pytest.raises(UsageError) as raised:
        build_engines(model, method_classes([method]), None, "auto", options={method: options})
    assert str(raised.value).startswith(message)


def test_eigen_smooth_on_a_layer_of_one_channel_names_the_flag(tmp_path, capsys):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="one")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model_path = tmp_path / "one.keras"
    with warnings.catch_warnings():  # Keras's saving code trips a NumPy 2 deprecation
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(model_path)
    photo(tmp_path / "in" / "a.png")
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_path, "--out", tmp_path / "out",
                            "--eigen-smooth")
    assert status == 2
    assert stderr.splitlines()[-1].startswith("gradcam: error: --eigen-smooth: eigen_smooth needs a layer with 2 "
                                              "channels or more; layer 'one' has ")


def interrupted_run(tmp_path, capsys, monkeypatch, model_file, *args):
    """An explain run stopped by Ctrl-C at its first batch (after the warm-up); its folder."""
    compute, calls = gradcam.GradCAM.compute, []

    def interrupted(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return compute(self, *a, **kw)

    photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(gradcam.GradCAM, "compute", interrupted)
        status, _, _ = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out, *args)
    assert status != 0 and RunJournal(out, "explain").exists()
    return out


@pytest.mark.parametrize("then, now, message", [
    (["--eigen-smooth"], [], "--eigen-smooth differs from the interrupted run's: it was True, now False."),
    ([], ["--aug-smooth"], "--aug-smooth differs from the interrupted run's: it was False, now True."),
    (["--method", "kpcacam", "--kernel", "rbf"], ["--method", "kpcacam"],
     "--kernel differs from the interrupted run's: it was 'rbf', now None."),
])
def test_resume_checks_the_method_options_and_smoothing(tmp_path, capsys, monkeypatch, model_file, then, now,
                                                         message):
    out = interrupted_run(tmp_path, capsys, monkeypatch, model_file, "--method", "gradcam", *then)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out, "--resume",
                            "--method", "gradcam", *now)
    assert status == 2 and stderr.splitlines()[-1] == f"gradcam: error: --resume: {message} Resume with the " \
        "run's settings, or pass --overwrite to start again."


def test_a_journal_without_the_smoothing_flags_resumes_without_them(tmp_path, capsys, monkeypatch, model_file):
    out = interrupted_run(tmp_path, capsys, monkeypatch, model_file)
    journal = RunJournal(out, "explain")
    info_path = os.path.join(journal.path, "run.json")
    with open(info_path, encoding="utf-8") as file:
        info = json.load(file)
    for name in ("eigen_smooth", "aug_smooth", "kernel", "gamma", "k", "seed"):
        del info["settings"][name]  # as an earlier version wrote it
    with open(info_path, "w", encoding="utf-8") as file:
        json.dump(info, file)
    status, _, stderr = run(capsys, "explain", tmp_path / "in", "--model", model_file, "--out", out, "--resume")
    assert status == 0, stderr
