"""The import graph is layered (docs/design.rst): no gradcam module imports one of a layer
above its own, and the shells (the command line, Ray) do not import each other.

The imports are read with ``ast`` from the source, imports inside functions included (a
lazy import is still a dependency), so nothing is imported to check them.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "gradcam"

#: The layers, lowest first: each module's layer is that of the longest prefix naming it
#: (a package's prefix covers its submodules). A module may import modules of its own
#: layer and of the layers below.
LAYERS = (
    ("foundation: Keras-free checks, tables, files and names", (
        "gradcam._lazy", "gradcam._matching", "gradcam.checks",
        "gradcam.imagenet", "gradcam.io", "gradcam.methods.registry", "gradcam.models.torch_weights",
        "gradcam.progress", "gradcam.samples")),
    ("model access: images, rendering, layers, capture, backends, targets, built-in models", (
        "gradcam.backend", "gradcam.capture", "gradcam.explanation", "gradcam.guided_relu", "gradcam.hub",
        "gradcam.image", "gradcam.layers", "gradcam.model_input", "gradcam.models", "gradcam.render", "gradcam.targets")),
    ("engines: the method template and the methods", (
        "gradcam.engine", "gradcam.methods")),
    ("library: the API, metrics, batch runs, reports, training", (
        "gradcam", "gradcam.api", "gradcam.batch", "gradcam.keras", "gradcam.metrics",
        "gradcam.pipeline", "gradcam.reporting")),
    ("shells: the command line and Ray", (
        "gradcam.__main__", "gradcam.cli", "gradcam.ray")),
)

#: Packages of one layer that must not import each other.
INDEPENDENT = (("gradcam.cli", "gradcam.__main__"), ("gradcam.ray",))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The gradcam modules ``name`` imports: ``from gradcam import hub`` imports
    ``gradcam.hub``, ``from gradcam import __version__`` the package ``gradcam``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # gradcam.io.inputs.find_inputs -> gradcam.io.inputs
                target = target.rpartition(".")[0]
            if target.startswith("gradcam") and target != name:
                found.add(target)
    return found


def layer_of(name: str) -> int | None:
    best, layer = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    return layer


def group_of(name: str) -> int | None:
    for index, prefixes in enumerate(INDEPENDENT):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def violations(edges) -> list[str]:
    """The imports of ``edges`` (``(importer, imported)`` pairs) that break the layering."""
    found = []
    for importer, imported in sorted(edges):
        low, high = layer_of(imported), layer_of(importer)
        if low is not None and high is not None and low > high:
            found.append(f"{importer} (layer {high}) imports {imported} (layer {low})")
        groups = group_of(importer), group_of(imported)
        if None not in groups and groups[0] != groups[1]:
            found.append(f"{importer} imports {imported}: the shells are independent")
    return found


def test_every_module_has_a_layer():
    assert [name for name in all_modules() if layer_of(name) is None] == []


def test_no_module_imports_one_above_it():
    modules = all_modules()
    edges = {(name, target) for name, path in modules.items() for target in imports_of(name, path, modules)}
    assert violations(edges) == []


@pytest.mark.parametrize("edge, message", [
    (("gradcam.ray.arguments", "gradcam.cli.arguments"),
     "gradcam.ray.arguments imports gradcam.cli.arguments: the shells are independent"),
    (("gradcam.methods.base", "gradcam.api"), "gradcam.methods.base (layer 2) imports gradcam.api (layer 3)"),
    (("gradcam.checks", "gradcam.capture"), "gradcam.checks (layer 0) imports gradcam.capture (layer 1)"),
    (("gradcam.models.registry", "gradcam.cli.model"),
     "gradcam.models.registry (layer 1) imports gradcam.cli.model (layer 4)"),
])
def test_an_import_from_above_is_found(edge, message):
    assert violations({edge}) == [message]


def test_imports_are_read_as_modules(tmp_path):
    modules = all_modules()
    assert imports_of("gradcam.ray.explain", modules["gradcam.ray.explain"], modules) >= {
        "gradcam.checks", "gradcam.io.inputs", "gradcam.models.registry", "gradcam.ray.explainer"}
    assert "gradcam" in imports_of("gradcam.cli.arguments", modules["gradcam.cli.arguments"], modules)
    assert "gradcam.backend" in imports_of("gradcam.methods.base", modules["gradcam.methods.base"], modules)


def test_gradcam_ray_loads_no_command_line_module():
    import subprocess
    import sys

    code = ("import pkgutil, importlib, sys, gradcam.ray\n"
            "for info in pkgutil.iter_modules(gradcam.ray.__path__):\n"
            "    importlib.import_module('gradcam.ray.' + info.name)\n"
            "print(sorted(name for name in sys.modules if name.startswith('gradcam.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
