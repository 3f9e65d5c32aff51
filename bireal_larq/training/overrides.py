"""A training configuration from an experiment and explicit overrides, as the CLIs make it.

:func:`train_config` is what ``python -m bireal_larq.train --experiment=NAME --epochs=3 ...``
trains: the experiment's :class:`TrainConfig` (:func:`base_config`) with the overrides applied
(:func:`override_config`). The overrides are keyword arguments named like the flags of
:mod:`bireal_larq.train` (:data:`OVERRIDES`); None leaves a value as the experiment has it, so
a CLI passes its flags through unchanged and a notebook passes only what it changes::

    config = train_config("fmnist_authors_pytorch", epochs=2, data_dir="/data/tfds")
    config = override_config(config, batch_size=64, learning_rate=2e-3)

Errors name an override as its flag (``--epochs=0 is out of range; valid: >= 1``). Importing
this module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import sys

from bireal_larq.data.config import DEFAULT_PRESETS
from bireal_larq.training.config import (
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TrainConfig,
)
from bireal_larq.training.experiments import get_experiment, list_experiments
from bireal_larq.training.recipes import with_epochs

# The keyword arguments of override_config: each is a flag of bireal_larq.train.
OVERRIDES = (
    "dataset",
    "data_dir",
    "manual_dir",
    "epochs",
    "batch_size",
    "learning_rate",
    "strategy",
    "mixed_precision",
    "jit_compile",
    "seed",
    "steps_per_epoch",
    "validation_steps",
    "deterministic",
    "backup_every_steps",
    "steps_per_execution",
    "skip_corrupt",
    "max_skip_fraction",
)


def default_config(model: str, dataset: str) -> TrainConfig:
    """Without an experiment: one Adam stage, linear decay to 0 over 10 epochs."""
    return TrainConfig(
        model=model,
        dataset=dataset,
        stages=(StageConfig("train", 10, OptimizerConfig(), ScheduleConfig(kind="linear")),),
    )


def base_config(
    experiment: str | None = None, model: str | None = None, dataset: str | None = None
) -> TrainConfig:
    """The configuration overrides apply to: ``experiment``'s for ``model`` (None: the
    experiment's default model), or without an experiment :func:`default_config` of
    ``model`` on ``dataset``.

    Raises:
        ValueError: an unknown experiment or model, or no experiment and not both ``model``
            and ``dataset``.
    """
    if experiment:
        return get_experiment(experiment, model)
    if not model or not dataset:
        raise ValueError(
            "--model and --dataset are required without --experiment; experiments: "
            + ", ".join(list_experiments())
        )
    return default_config(model, dataset)


def _with_learning_rate(stages, learning_rate: float):
    """The first stage at ``learning_rate``; later stages keep their ratio to it."""
    first = stages[0].optimizer.learning_rate
    ratio = learning_rate / first if first else 1.0
    return tuple(
        dataclasses.replace(
            s,
            optimizer=dataclasses.replace(
                s.optimizer,
                learning_rate=learning_rate if i == 0 else s.optimizer.learning_rate * ratio,
            ),
        )
        for i, s in enumerate(stages)
    )


def steps_per_execution_value(value: int | str) -> int | None:
    """A ``--steps_per_execution`` value: None for "auto" (by device), else an int >= 1.

    Raises:
        ValueError: neither "auto" nor a positive int.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        number = int(value) if not isinstance(value, bool | float) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(
            f"--steps_per_execution={value!r} is invalid; valid: 'auto' or an int >= 1"
        )
    return number


def _other_dataset(config: TrainConfig, stages, dataset: str):
    """``config`` and ``stages`` for ``dataset`` instead of the experiment's: the shapes,
    source options and augmentation belonged to the experiment's dataset (an ImageNet crop
    and Lighting on CIFAR would be a silently different recipe)."""
    replaced = [s.name for s in stages if s.augment is not None]
    if replaced:
        print(
            f"--dataset={dataset} replaces {config.dataset!r} of the experiment: "
            f"stage(s) {replaced} use {dataset}'s default augmentation "
            f"({DEFAULT_PRESETS.get(dataset, '?')!r} preset) instead of the experiment's",
            file=sys.stderr,
        )
    stages = tuple(dataclasses.replace(s, augment=None) for s in stages)
    config = dataclasses.replace(
        config, input_shape=None, num_classes=None, dataset_kwargs={}, image_size=None
    )
    return config, stages


def override_config(
    config: TrainConfig,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    strategy: str | None = None,
    mixed_precision: bool | None = None,
    jit_compile: bool | None = None,
    seed: int | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    deterministic: bool | None = None,
    backup_every_steps: int | None = None,
    steps_per_execution: int | str | None = None,
    skip_corrupt: bool | None = None,
    max_skip_fraction: float | None = None,
) -> TrainConfig:
    """``config`` with the given overrides (None: unchanged), validated.

    Most set the TrainConfig field of their name. The others:

    * ``dataset``: another dataset than ``config``'s also drops what belonged to the old one
      (input shape, class count, dataset options, image size, and every stage's augmentation,
      which becomes the new dataset's default; a note on stderr says so).
    * ``epochs``: every stage's epochs; its schedule rescales to fit (``recipes.with_epochs``).
    * ``learning_rate``: the first stage's base learning rate; later stages keep their ratio
      to it.
    * ``steps_per_execution``: an int >= 1, or "auto" for the device's default (a TrainConfig
      value of None).
    * ``max_skip_fraction``: only with ``skip_corrupt`` (given, or already in ``config``).

    Raises:
        ValueError: an override out of range, or one of TrainConfig's own checks (the message
            names the field and the valid values).
    """
    stages = config.stages
    if dataset and dataset != config.dataset:
        config, stages = _other_dataset(config, stages, dataset)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs={epochs} is out of range; valid: >= 1")
        stages = tuple(with_epochs(s, epochs) for s in stages)
    if learning_rate is not None:
        if not learning_rate > 0:
            raise ValueError(f"--learning_rate={learning_rate} is out of range; valid: > 0")
        stages = _with_learning_rate(stages, learning_rate)
    if max_skip_fraction is not None:
        if not (skip_corrupt if skip_corrupt is not None else config.skip_corrupt):
            raise ValueError(
                "--max_skip_fraction only applies with --skip_corrupt (without it the first "
                "unreadable image stops the run)"
            )
        if not 0.0 <= max_skip_fraction <= 1.0:
            raise ValueError(
                f"--max_skip_fraction={max_skip_fraction} is out of range; valid: [0, 1]"
            )
    if steps_per_execution is not None:  # "auto" is None, which replace() would skip
        config = dataclasses.replace(
            config, steps_per_execution=steps_per_execution_value(steps_per_execution)
        )
    return config.replace(
        stages=stages,
        dataset=dataset,
        data_dir=data_dir,
        manual_dir=manual_dir,
        batch_size=batch_size,
        strategy=strategy,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        deterministic=deterministic,
        backup_every_steps=backup_every_steps,
        skip_corrupt=skip_corrupt,
        max_skip_fraction=max_skip_fraction,
    )


def train_config(
    experiment: str | None = None, model: str | None = None, **overrides
) -> TrainConfig:
    """:func:`base_config` of ``experiment`` and ``model`` (and ``dataset``, which is also
    an override) with :func:`override_config`'s ``overrides`` applied.

    Raises:
        ValueError: as :func:`base_config` and :func:`override_config`.
        TypeError: an override that is none of :data:`OVERRIDES`.
    """
    config = base_config(experiment, model, overrides.get("dataset"))
    return override_config(config, **overrides)
