"""The method registry, the engine factory and cache, the engine's per-call options and
the per-model cache of model_info."""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import weakref

import numpy as np
import pytest

import gradcam
from gradcam import capture, model_input
from gradcam.checks import ArgumentError
from gradcam.methods import METHODS, EngineCache, Method, ScoreCAM, build_engine, factory, registry
from helpers.tiny import LOGIT_MAP_0, X, assert_map, make_functional, make_subclassed


# -- the registry ------------------------------------------------------------------------
def test_the_registry_imports_without_keras():
    code = ("import sys, gradcam.methods.registry as r, gradcam.methods; "
            "print(len(r.METHOD_NAMES), 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(len(METHODS)), "False"]


def test_each_registered_class_has_its_name_and_takes_its_options():
    shared = set(inspect.signature(Method.__init__).parameters)
    assert list(METHODS) == list(registry.REGISTRY)
    for name, entry in registry.REGISTRY.items():
        cls = METHODS[name]
        assert cls.name == name and cls.__name__ == entry.cls and issubclass(cls, Method)
        own = tuple(p for p in inspect.signature(cls.__init__).parameters if p not in shared)
        assert own == entry.options, name
        assert entry.description and "\n" not in entry.description


# -- build_engine and EngineCache ----------------------------------------------------------
def test_build_engine_makes_the_methods_engine_with_its_options(tiny):
    engine = build_engine(tiny, "scorecam", options={"max_channels": 1}, class_names=["cat", "dog"])
    assert type(engine) is ScoreCAM and engine.max_channels == 1 and engine.classes.name(1) == "dog"
    expected = ScoreCAM(tiny, max_channels=1).heatmaps(X, targets=[0])
    np.testing.assert_array_equal(engine.heatmaps(X, targets=[0]), expected)
    assert_map(build_engine(tiny, layer="conv").heatmaps(X, targets=[0])[0, 0], LOGIT_MAP_0)
    assert type(build_engine(tiny, METHODS["gradcam++"])) is METHODS["gradcam++"]


@pytest.mark.parametrize("kwargs, argument, error, message", [
    (dict(method="gradcm"), "method", ValueError,
     r"^Unknown method 'gradcm'; the methods are .*Did you mean 'gradcam'"),
    (dict(layer="nope"), "layer", ValueError, r"^No layer named 'nope' in model"),
    (dict(score="proba"), "score", ValueError, r"^score must be one of 'auto', 'logit', 'output'; got 'proba'\.$"),
    (dict(method="gradcam", options={"max_channels": 2}), "options", TypeError,
     r"^method 'gradcam' has no option 'max_channels'; it takes none\.$"),
])
def test_refused_arguments_are_named(tiny, kwargs, argument, error, message):
    with pytest.raises(ArgumentError, match=message) as raised:
        build_engine(tiny, **kwargs)
    assert raised.value.argument == argument and isinstance(raised.value, error)


def test_logit_without_softmax_names_the_score():
    with pytest.raises(ArgumentError, match="score='logit' needs a model that ends in a softmax") as raised:
        build_engine(make_functional(activation=None, name="no_softmax"), score="logit")
    assert raised.value.argument == "score"


def test_the_cache_reuses_engines_and_holds_models_weakly():
    cache = EngineCache()
    model = make_functional(name="cached_weakly")
    engine = cache.get(model, "gradcam++", layer="conv")
    assert cache.get(model, "gradcam++", layer="conv") is engine and cache.engines(model) == [engine]
    assert cache.get(model, "gradcam++", options={}) is not engine and len(cache) == 1
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None and len(cache) == 0
    assert engine.model is None
    with pytest.raises(RuntimeError, match="The model explained by this GradCAMPlusPlus engine has been deleted"):
        engine.heatmaps(X)


def test_an_engine_keeps_its_model_unless_weak_model():
    strong, weak = make_functional(name="strong"), make_functional(name="weak")
    engines = [build_engine(strong), build_engine(weak, weak_model=True)]
    refs = [weakref.ref(strong), weakref.ref(weak)]
    del strong, weak
    gc.collect()
    assert refs[0]() is engines[0].model and refs[1]() is None
    assert_map(engines[0].heatmaps(X)[0, 0], LOGIT_MAP_0)


# -- the per-call API --------------------------------------------------------------------
def test_preprocess_per_call(tiny):
    engine = build_engine(tiny, preprocess=lambda x: x / 2)
    doubled = X * 2
    before = doubled.copy()
    assert_map(engine.heatmaps(doubled, targets=[0])[0, 0], LOGIT_MAP_0)  # the engine's own
    assert_map(engine.heatmaps(X, targets=[0], preprocess=None)[0, 0], LOGIT_MAP_0)
    assert_map(engine.compute(X * 3, targets=[0], preprocess=lambda x: x / 3).heatmaps[0, 0], LOGIT_MAP_0)
    (expl,) = engine.explain(X * 4, targets=[0], preprocess=lambda x: x / 4)
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)
    np.testing.assert_array_equal(doubled, before)
    with pytest.raises(TypeError, match="preprocess must be a function, None or 'engine'; got 'lite'"):
        engine.heatmaps(X, preprocess="lite")


def test_explain_prediction_checks_its_batch_and_finds_its_method_once(tiny, monkeypatch):
    checked, looked_up = [], []
    to_batch, load = model_input.to_batch, factory.load_method_class
    monkeypatch.setattr(model_input, "to_batch", lambda docs, name: checked.append(name) or to_batch(docs, name))
    monkeypatch.setattr(factory, "load_method_class", lambda name: looked_up.append(name) or load(name))
    expl = gradcam.explain_prediction(tiny, X, targets=[0], preprocess=lambda x: x)
    # the image once, then what preprocess made of it
    assert checked == ["doc", "the output of preprocess"] and looked_up == ["gradcam"]
    assert_map(expl.targets[0].heatmap, LOGIT_MAP_0)
    with pytest.raises(TypeError, match="doc must be an image array"):
        gradcam.explain_prediction(tiny, "cat.jpg")


# -- model_info, once per model ----------------------------------------------------------------
def test_a_subclassed_model_is_traced_once(monkeypatch):
    traces = []
    trace = capture._trace
    monkeypatch.setattr(capture, "_trace", lambda *args: traces.append(args[0].name) or trace(*args))
    model = make_subclassed()
    assert_map(gradcam.GradCAM(model).heatmaps(X, targets=[0])[0, 0], LOGIT_MAP_0)
    gradcam.GradCAMPlusPlus(model).heatmaps(X)
    gradcam.explain_prediction(model, X)
    heatmaps = np.ones((1, 4, 4), np.float32)
    gradcam.metrics.average_drop(model, X, heatmaps, [0])
    assert traces == ["tiny_subclassed"]
    assert capture.model_info(model) is capture.model_info(model)


@pytest.mark.parametrize("make", [make_functional, make_subclassed])
def test_model_info_does_not_keep_models_alive(make):
    model = make()
    info = capture.model_info(model)
    assert info.num_classes == 2
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
