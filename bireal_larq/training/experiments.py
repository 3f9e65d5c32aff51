"""Experiments are files: ``experiments/<name>.py`` defines ``get_config(model) -> TrainConfig``.

Each file's docstring holds the exact command and the expected result; ``MODELS`` lists the
models its source gives a recipe for (the first is the default). ``--experiment`` also accepts
a path to such a file.

A recipe file that declares ``FASHION_MNIST_EPOCHS = N`` also gives the experiment
``fmnist_<name>``: its CPU-sized Fashion-MNIST version
(:func:`bireal_larq.training.recipes.fashion_mnist_version` of the recipe's first model,
shortened to about N epochs), with no file of its own. The recipe file's docstring holds that
version's command and expected result too, from a paragraph that starts with
"Fashion-MNIST version" to its end.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from bireal_larq.training import recipes
from bireal_larq.training.config import TrainConfig

# ``fmnist_<name>`` is the Fashion-MNIST version of recipe ``<name>``, whose file declares
# FASHION_MNIST_EPOCHS (and the version's command and result in its docstring, from the
# paragraph that starts with FASHION_MNIST_SECTION on).
FASHION_MNIST_PREFIX = "fmnist_"
FASHION_MNIST_CONSTANT = "FASHION_MNIST_EPOCHS"
FASHION_MNIST_SECTION = "Fashion-MNIST version"


def _experiments_dir() -> Path:
    """$BIREAL_EXPERIMENTS_DIR, else the checkout's experiments/ (next to the package), else
    the copy a wheel installs as ``bireal_larq/experiments``."""
    if os.environ.get("BIREAL_EXPERIMENTS_DIR"):
        return Path(os.environ["BIREAL_EXPERIMENTS_DIR"])
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "experiments"
    return checkout if checkout.is_dir() else package / "experiments"


EXPERIMENTS_DIR = _experiments_dir()


def _declares_fashion_mnist(path: Path) -> bool:
    """Whether the file at ``path`` assigns FASHION_MNIST_EPOCHS at module level (read, not
    run: listing the experiments imports none of them)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        if any(isinstance(t, ast.Name) and t.id == FASHION_MNIST_CONSTANT for t in targets):
            return True
    return False


def list_experiments() -> list[str]:
    """Names of the experiment files in :data:`EXPERIMENTS_DIR`, and ``fmnist_<name>`` for
    each of them that declares FASHION_MNIST_EPOCHS."""
    if not EXPERIMENTS_DIR.is_dir():
        return []
    files = [p for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_")]
    names = {p.stem for p in files}
    names |= {FASHION_MNIST_PREFIX + p.stem for p in files if _declares_fashion_mnist(p)}
    return sorted(names)


def _unknown(name: str, reason: str = "") -> ValueError:
    return ValueError(
        f"Unknown experiment {name!r}{reason}; valid: {', '.join(list_experiments())} "
        "(or a path to an experiment .py file)"
    )


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bireal_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as imports do: dataclasses in the file look their module up.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"Experiment file {path} defines no get_config(model)")
    return module


def fashion_mnist_experiment(recipe: ModuleType, source: str) -> ModuleType:
    """The experiment ``fmnist_<source>``: the Fashion-MNIST version of the loaded recipe
    file ``source``, about ``recipe.FASHION_MNIST_EPOCHS`` epochs long.

    Its docstring is a summary followed by the recipe docstring's Fashion-MNIST section (the
    command and the expected result).
    """
    epochs = getattr(recipe, FASHION_MNIST_CONSTANT)
    overrides = ", ".join(f"{k} {v}" for k, v in recipes.FMNIST_OVERRIDES.items())
    summary = (
        f"{FASHION_MNIST_SECTION} of ``{source}``, sized for a CPU.\n\n"
        f"The same stages, optimizers, losses and schedule shapes as ``{source}``, with "
        f"``{recipes.FMNIST_MODEL}`` ({overrides}) on 28x28x1 inputs, batch "
        f"{recipes.FMNIST_BATCH_SIZE} (rates scaled from each stage's reference batch), the "
        "data package's Fashion-MNIST augmentation, and the durations shortened in proportion "
        f"to about {epochs} epochs in all ({FASHION_MNIST_CONSTANT} of ``{source}``)."
    )
    found = re.search(rf"(?:\A|\n[ \t]*\n)[ \t]*({re.escape(FASHION_MNIST_SECTION)})",
                      recipe.__doc__ or "")
    section = recipe.__doc__[found.start(1):].strip() if found else ""
    module = ModuleType(f"bireal_experiment_{FASHION_MNIST_PREFIX}{source}",
                        "\n\n".join(part for part in (summary, section) if part) + "\n")
    module.SOURCE = source
    module.MODELS = (recipes.FMNIST_MODEL,)
    module.TOTAL_EPOCHS = epochs

    def get_config(model: str) -> TrainConfig:
        published = recipe.get_config(recipe.MODELS[0])
        return recipes.fashion_mnist_version(published, total_epochs=epochs, model=model)

    module.get_config = get_config
    return module


def load_experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (or of the ``.py`` file at that path).

    ``fmnist_<recipe>`` without a file of that name is the Fashion-MNIST version of
    ``<recipe>`` (:func:`fashion_mnist_experiment`), if that recipe file declares
    FASHION_MNIST_EPOCHS.

    Raises:
        ValueError: no such experiment (listing the valid names).
    """
    path = Path(name) if name.endswith(".py") else EXPERIMENTS_DIR / f"{name}.py"
    if path.is_file():
        return _load_file(path)
    source = name[len(FASHION_MNIST_PREFIX):] if name.startswith(FASHION_MNIST_PREFIX) else ""
    if not source or name.endswith(".py") or not (EXPERIMENTS_DIR / f"{source}.py").is_file():
        raise _unknown(name)
    recipe = _load_file(EXPERIMENTS_DIR / f"{source}.py")
    if not hasattr(recipe, FASHION_MNIST_CONSTANT):
        raise _unknown(name, f": experiment {source!r} declares no {FASHION_MNIST_CONSTANT}, "
                             "so it has no Fashion-MNIST version")
    return fashion_mnist_experiment(recipe, source)


def get_experiment(name: str, model: str | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of experiment ``name`` for ``model`` (default: its first).

    Raises:
        ValueError: unknown experiment, or a model the experiment's source gives no recipe for.
    """
    module = load_experiment(name)
    models = tuple(getattr(module, "MODELS", ()))
    if model is None:
        if not models:
            raise ValueError(f"Experiment {name!r} needs --model")
        model = models[0]
    elif models and model not in models:
        raise ValueError(
            f"Experiment {name!r} has no recipe for model {model!r}; valid: {list(models)}"
        )
    config = module.get_config(model)
    if not isinstance(config, TrainConfig):
        raise ValueError(f"Experiment {name!r}: get_config returned {type(config).__name__}")
    return config.replace(experiment=Path(name).stem)
