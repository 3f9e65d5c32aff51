"""The package's layering: no import cycles, and the config modules load without TensorFlow."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bireal_larq"

# Modules a user or a config file imports to describe a run, not to run it.
LIGHT_MODULES = (
    "bireal_larq",
    "bireal_larq.utils",
    "bireal_larq.stack",
    "bireal_larq.models.config",
    "bireal_larq.models.zoo",
    "bireal_larq.training.config",
    "bireal_larq.training.experiments",
    "bireal_larq.training.recipes",
    "bireal_larq.training.overrides",
    "bireal_larq.data.specs",
    "bireal_larq.data.config",
    "bireal_larq.data.info",
)
HEAVY = ("tensorflow", "tensorflow_datasets", "larq", "larq_zoo", "bireal_larq.data.sources",
         "bireal_larq.data.pipeline")
PACKAGES = ("bireal_larq", "bireal_larq.models", "bireal_larq.training", "bireal_larq.data")


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _lazy_exports(modules: dict[str, Path], package: str) -> dict[str, str]:
    """A package's ``_EXPORTS`` table (public name -> submodule), read from its source."""
    tree = ast.parse(modules[package].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError:  # {name: "models" for name in __all__}
                return {}
    return {}


def _targets(modules: dict[str, Path], module: str, node: ast.AST) -> set[str]:
    """The package modules an import statement in ``module`` loads."""
    is_package = modules[module].name == "__init__.py"
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source not in modules:
        return set()
    found = set()
    exports = _lazy_exports(modules, source)
    for alias in node.names:
        if f"{source}.{alias.name}" in modules:
            found.add(f"{source}.{alias.name}")
        elif alias.name in exports:
            found.add(f"{source}.{exports[alias.name]}")
        else:
            found.add(source)
    return found


def function_imports(module: str) -> list[str]:
    """The package modules ``module`` imports inside its functions."""
    modules = _module_files()
    found = []
    for node in ast.walk(ast.parse(modules[module].read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found += [f"{node.name}: {t}" for t in _targets(modules, module, inner)]
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at module level or inside functions."""
    modules = _module_files()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _targets(modules, module, node)
        # Importing a submodule runs its packages' __init__ first.
        parents = module.split(".")
        edges |= {".".join(parents[:i]) for i in range(1, len(parents))}
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    # A package's __init__ importing its own submodules is not a cycle in itself: the edges
    # from a submodule to its parent packages are implied by Python, so they are left out
    # when the parent is what imports it.
    imports = import_graph()
    graph = {
        module: {e for e in edges if not (module.startswith(e + ".") and module in imports[e])}
        for module, edges in imports.items()
    }
    found = cycles(graph)
    assert found == [], [{m: sorted(graph[m] & set(c)) for m in c} for c in found]


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    graph = import_graph()  # registry -> weights, and weights must not import the registry
    assert "bireal_larq.models.weights" in graph["bireal_larq.models.registry"]
    assert "bireal_larq.models.registry" not in graph["bireal_larq.models.weights"]


def test_the_data_modules_are_layered_specs_info_sources_pipeline():
    graph = import_graph()
    data = {m[len("bireal_larq.data."):]: {e[len("bireal_larq.data."):] for e in edges
                                           if e.startswith("bireal_larq.data.")}
            for m, edges in graph.items() if m.startswith("bireal_larq.data.")}
    assert data["specs"] == set()
    assert data["config"] <= {"specs"} and data["info"] <= {"specs"}
    assert "pipeline" not in data["sources"]


def test_modules_import_the_package_at_module_level_only():
    # An import inside a function hides a dependency (and so a cycle) from a reader.
    found = {m: function_imports(m) for m in _module_files()}
    assert {m: f for m, f in found.items() if f} == {}


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_config_modules_import_without_tensorflow(module):
    probe = (
        f"import sys\nimport {module}\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=str(ROOT), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_public_names_load_on_first_use():
    probe = (
        "import sys\nimport bireal_larq\nassert 'tensorflow' not in sys.modules\n"
        "print(bireal_larq.create_model.__module__, 'tensorflow' in sys.modules)\n"
        "print(sorted(set(bireal_larq.__all__) - set(dir(bireal_larq))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2:] == ["bireal_larq.models.registry True", "[]"]


def test_subpackages_are_attributes_of_the_package_on_first_use():
    probe = (
        "import sys\nimport bireal_larq as bl\nassert 'bireal_larq.data' not in sys.modules\n"
        "print(bl.data.get_dataset.__module__, bl.training.run_training.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["bireal_larq.data.pipeline",
                                        "bireal_larq.training.runner"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_its_home_modules_and_unknown_names_are_refused(name):
    package = importlib.import_module(name)
    exports = package._EXPORTS
    assert sorted(package.__all__) == sorted(exports)
    for public in package.__all__:
        home = importlib.import_module(f"{name}.{exports[public]}")
        assert getattr(package, public) is getattr(home, public), public
    assert set(package.__all__) <= set(dir(package))
    # Loaded once: a name already used is in the namespace, not looked up again.
    assert set(package.__all__) <= set(vars(package))
    with pytest.raises(AttributeError, match=f"'{name}' has no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018
