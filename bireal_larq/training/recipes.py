"""Operations on recipes: rescaling durations and deriving the small CPU-sized versions.

The published recipes live in ``experiments/``; their Fashion-MNIST versions are derived
here in code (same stages, optimizers, losses and schedule shapes; durations scaled), so the
two can never drift apart. A recipe file declares the length of its version
(``FASHION_MNIST_EPOCHS``); the experiment registry (:mod:`bireal_larq.training.experiments`)
then offers it as ``fmnist_<recipe>``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bireal_larq.data.config import preset
from bireal_larq.training.config import StageConfig, TrainConfig

# The small-input model, its size and the batch of the Fashion-MNIST versions (CPU-sized).
FMNIST_MODEL = "birealnet18_small"
FMNIST_OVERRIDES = {"base_filters": 32}
FMNIST_BATCH_SIZE = 128


def with_epochs(stage: StageConfig, epochs: int) -> StageConfig:
    """``stage`` lasting ``epochs`` epochs; its schedule's boundaries and warm-up scale along.

    Boundaries that would collapse onto each other or the end are dropped (with their
    factors), so the shortened schedule keeps its shape as well as the grid allows.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} is out of range; valid: an int >= 1")
    scale = epochs / stage.epochs
    schedule = stage.schedule
    boundaries, factors = [], []
    per_boundary = (
        schedule.factors
        if len(schedule.factors) == len(schedule.boundaries)
        else schedule.factors * len(schedule.boundaries)
    )
    for b, f in zip(schedule.boundaries, per_boundary):
        new = b * scale
        if 0 < new < epochs and (not boundaries or new > boundaries[-1]):
            boundaries.append(new)
            factors.append(f)
    kind = schedule.kind if boundaries or schedule.kind != "steps" else "constant"
    schedule = dataclasses.replace(
        schedule,
        kind=kind,
        boundaries=tuple(boundaries),
        factors=tuple(factors) or schedule.factors[:1],
        warmup_epochs=schedule.warmup_epochs * scale,
    )
    return dataclasses.replace(stage, epochs=epochs, schedule=schedule)


def scaled_stages(stages: tuple[StageConfig, ...], total_epochs: int) -> tuple[StageConfig, ...]:
    """Every stage shortened in proportion so the recipe lasts about ``total_epochs``."""
    scale = total_epochs / sum(s.epochs for s in stages)
    return tuple(with_epochs(s, max(1, round(s.epochs * scale))) for s in stages)


def fashion_mnist_version(
    config: TrainConfig,
    *,
    total_epochs: int,
    batch_size: int = FMNIST_BATCH_SIZE,
    augment: Any = None,
    model: str = FMNIST_MODEL,
    model_overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """The CPU-sized Fashion-MNIST version of a published recipe.

    Same stages, optimizers, losses and schedule shapes; durations shortened to about
    ``total_epochs``; learning rates still scale from each stage's reference batch.

    Args:
        config: the published recipe.
        total_epochs: the length of the whole small recipe.
        batch_size: the small recipe's batch size.
        augment: the data package's AugmentConfig for every stage (default: its
            Fashion-MNIST preset).
        model: a small-input model (default ``birealnet18_small``).
        model_overrides: BiRealConfig overrides on top of the recipe's own (default:
            ``base_filters=32``).
    """
    if augment is None:
        augment = preset("fashion_mnist")
    stages = tuple(
        dataclasses.replace(s, augment=augment) for s in scaled_stages(config.stages, total_epochs)
    )
    return dataclasses.replace(
        config,
        model=model,
        model_overrides={
            **config.model_overrides,
            **(FMNIST_OVERRIDES if model_overrides is None else model_overrides),
        },
        dataset="fashion_mnist",
        stages=stages,
        batch_size=batch_size,
        input_shape=None,
        num_classes=None,
        image_size=None,
        dataset_kwargs={},
        backup_every_steps=100,
        exact_resume=True,
    )
