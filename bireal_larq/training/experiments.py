"""Experiments are files: ``experiments/<name>.py`` defines ``get_config(model) -> TrainConfig``.

Each file's docstring holds the exact command and the expected result; ``MODELS`` lists the
models its source gives a recipe for (the first is the default). ``--experiment`` also accepts
a path to such a file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from bireal_larq.training.config import TrainConfig


def _experiments_dir() -> Path:
    """$BIREAL_EXPERIMENTS_DIR, else the checkout's experiments/ (next to the package), else
    the copy a wheel installs as ``bireal_larq/experiments``."""
    if os.environ.get("BIREAL_EXPERIMENTS_DIR"):
        return Path(os.environ["BIREAL_EXPERIMENTS_DIR"])
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "experiments"
    return checkout if checkout.is_dir() else package / "experiments"


EXPERIMENTS_DIR = _experiments_dir()


def list_experiments() -> list[str]:
    """Names of the experiment files in :data:`EXPERIMENTS_DIR`."""
    if not EXPERIMENTS_DIR.is_dir():
        return []
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (or of the ``.py`` file at that path).

    Raises:
        ValueError: no such experiment (listing the valid names).
    """
    path = Path(name) if name.endswith(".py") else EXPERIMENTS_DIR / f"{name}.py"
    if not path.is_file():
        raise ValueError(
            f"Unknown experiment {name!r}; valid: {', '.join(list_experiments())} "
            "(or a path to an experiment .py file)"
        )
    spec = importlib.util.spec_from_file_location(f"bireal_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as imports do: dataclasses in the file look their module up.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"Experiment file {path} defines no get_config(model)")
    return module


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
