"""A run's configuration resolved and checked before anything is written.

:func:`check_run` does every check that needs no training (model fields, the stage chain,
teachers' files, the batch against the replicas and the training examples, each stage's
augmentation against the images) and returns :func:`resolve_run_config`'s dict, the content of
the run's ``config.json``. :func:`stage_model_overrides` is how every stage's network is
described, and :func:`resolve_steps_per_execution` what ``steps_per_execution=None`` means on
the device that trains.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

from bireal_larq.models import get_model_config
from bireal_larq.models.config import BiRealConfig, real_valued_twin
from bireal_larq.models.weights import check_file_architecture
from bireal_larq.runs import FINAL_WEIGHTS
from bireal_larq.training.config import (
    DEFAULT_STEPS_PER_EXECUTION,
    StageConfig,
    TeacherConfig,
    TrainConfig,
)
from bireal_larq.training.data import DatasetFn, dataset_shape, train_examples
from bireal_larq.training.distribute import check_batch_size


def stage_model_overrides(config: TrainConfig, stage: StageConfig) -> dict[str, Any]:
    """The BiRealConfig overrides that build ``stage``'s network from ``config.model``.

    A real-valued stage is expressed through the overrides of its twin, so every stage (and
    the final model in ``config.json``) is rebuilt with a plain ``create_model(name, **o)``.
    """
    base = get_model_config(config.model)
    resolved = get_model_config(config.model, **{**config.model_overrides, **stage.model_overrides})
    if stage.real_valued:
        resolved = real_valued_twin(resolved, stage.twin_activation)
    return {
        f.name: getattr(resolved, f.name)
        for f in dataclasses.fields(BiRealConfig)
        if getattr(resolved, f.name) != getattr(base, f.name)
    }


def _check_stage_chain(config: TrainConfig, stages: list[dict[str, Any]]) -> None:
    """Each stage starts from the previous stage's weights by layer name: RSign's thresholds
    in front of a binary stem or classifier exist only where those layers are binary, which a
    real-valued twin stage never makes them, so such a chain would fail after training the
    first stage."""

    def rsign_layers(overrides):
        c = get_model_config(config.model, **overrides)
        return {"stem_conv_rsign": c.rsign and c.binary_first_layer,
                "logits_rsign": c.rsign and c.binary_last_layer}

    for before, after, stage in zip(stages, stages[1:], config.stages[1:]):
        differ = [k for k, v in rsign_layers(after).items() if v != rsign_layers(before)[k]]
        if differ:
            raise ValueError(
                f"Stage {stage.name!r} cannot start from the previous stage's weights: only "
                f"one of them has {differ} (rsign=True with a binary first or last layer, "
                "which a real-valued twin stage does not have); valid: rsign without "
                "binary_first_layer/binary_last_layer, or no twin stage before it"
            )


def resolve_run_config(config: TrainConfig) -> dict[str, Any]:
    """Validates ``config`` against the registry and the dataset; the dict of config.json.

    Raises:
        ValueError: an unknown model, dataset or field value (listing the valid ones).
    """
    get_model_config(config.model, **config.model_overrides)
    stages = [stage_model_overrides(config, s) for s in config.stages]
    _check_stage_chain(config, stages)
    input_shape, num_classes = dataset_shape(config)
    resolved = config.to_dict()
    resolved.update(
        model=config.model,
        model_overrides=stages[-1],
        input_shape=list(input_shape),
        num_classes=num_classes,
        dataset=config.dataset,
        stage_model_overrides={s.name: o for s, o in zip(config.stages, stages)},
    )
    return resolved


def _check_teacher(stage: StageConfig, role: str, teacher: TeacherConfig | None) -> None:
    """A registry teacher's model and weights file, or a model file, exist (before the run
    directory is written, not when the stage starts)."""
    if teacher is None or teacher.source == "previous":
        return
    if teacher.source == "registry":
        architecture = get_model_config(teacher.model, **teacher.model_overrides)
        if teacher.real_valued:
            architecture = real_valued_twin(architecture, teacher.twin_activation)
        path, what = teacher.weights, "weights file"
    else:
        architecture, path, what = None, teacher.path, "model file"
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise FileNotFoundError(
            f"Stage {stage.name!r}: the {role}'s {what} {path!r} does not exist; valid: the "
            f"file of a trained model (e.g. a finished run's {FINAL_WEIGHTS})"
        )
    if architecture is not None:  # a file of another variant would distil another function
        check_file_architecture(path, architecture, f"stage {stage.name!r}'s {role}")


def check_run(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    dataset_fn: DatasetFn | None = None,
) -> dict[str, Any]:
    """Every check that needs no training, before anything is written: the model and its
    fields, the batch against the replicas and the training examples, and each stage's
    augmentation against the dataset's images.

    Returns:
        The resolved configuration (as ``resolve_run_config``); passed to ``run_training``
        as ``checked``, the run does not repeat the checks.

    Raises:
        ValueError: what is invalid and what would be valid.
        FileNotFoundError: the dataset's files are missing.
    """
    resolved = resolve_run_config(config)
    check_batch_size(strategy, config.batch_size)
    for stage in config.stages:
        for role in ("teacher", "refinery"):
            _check_teacher(stage, role, getattr(stage.loss, role))
    checked = []
    for stage in config.stages:
        if stage.augment not in checked:  # stages sharing a recipe share the check
            checked.append(stage.augment)
            train_examples(config, stage, dataset_fn)
    return resolved


# Keys of the resolved configuration that resolution computes rather than copies from the
# TrainConfig.
_RESOLVED = ("model_overrides", "input_shape", "num_classes", "stage_model_overrides")


def checked_differences(config: TrainConfig, checked: dict[str, Any]) -> list[str]:
    """The fields of ``config`` whose value ``checked`` (a :func:`check_run` result) does not
    hold: empty when ``checked`` was resolved from ``config``."""
    own = json.loads(json.dumps(config.to_dict(), default=str))
    given = json.loads(json.dumps(checked, default=str))
    return sorted(k for k, v in own.items() if k not in _RESOLVED and given.get(k) != v)


def device_kind(strategy: tf.distribute.Strategy) -> str:
    """"tpu", "gpu" or "cpu": the kind of device ``strategy`` trains on."""
    if any(c.__name__.startswith("TPUStrategy") for c in type(strategy).__mro__):
        return "tpu"  # TPUStrategy and its experimental / V1 forms
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def resolve_steps_per_execution(config: TrainConfig, strategy: tf.distribute.Strategy) -> int:
    """``config.steps_per_execution``, or when it is None the default of the device kind
    (``DEFAULT_STEPS_PER_EXECUTION``: 1 on CPU, 20 on GPU, 100 on TPU)."""
    if config.steps_per_execution is not None:
        return config.steps_per_execution
    return DEFAULT_STEPS_PER_EXECUTION[device_kind(strategy)]
