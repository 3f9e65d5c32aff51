"""The training side of the data contract: datasets per stage, sharded per replica.

Everything about reading and preprocessing images lives in :mod:`bireal_larq.data`; this
module only asks it for batches, repeats the training data (so a resumed run can skip to its
exact position) and shards it over the replicas of a strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from bireal_larq.data import dataset_info as info_of
from bireal_larq.data import get_dataset
from bireal_larq.training.config import StageConfig, TrainConfig

DatasetFn = Callable[..., tuple[tf.data.Dataset, int]]




def dataset_info(config: TrainConfig):
    """The data package's DatasetInfo of the run's dataset (sized like the model input).

    Raises:
        ValueError: the dataset name is unknown (the data package lists the valid ones).
    """
    kwargs = {k: v for k, v in config.dataset_kwargs.items() if k != "shuffle_buffer"}
    if config.dataset == "synthetic" and config.num_classes is not None:
        kwargs.setdefault("num_classes", config.num_classes)
    info = info_of(config.dataset, data_dir=config.data_dir, **kwargs)
    return info.with_image_size(config.image_size) if config.image_size else info


def dataset_shape(config: TrainConfig) -> tuple[tuple[int, int, int], int]:
    """The model's input shape and class count: explicit in ``config`` or the dataset's."""
    info = dataset_info(config)
    shape = tuple(config.input_shape or info.image_shape)
    if config.input_shape is not None and shape != tuple(info.image_shape):
        # The pipeline sizes the images (image_size), the model takes input_shape: a mismatch
        # would only surface as a Keras shape error once training starts.
        h, w, c = info.image_shape
        size = f"image_size={config.image_size}" if config.image_size else "its own size"
        raise ValueError(
            f"input_shape={shape} does not match the images of {config.dataset!r}: {h}x{w} "
            f"with {c} channel(s) ({size}); valid: input_shape=({h}, {w}, {c}) or unset, or "
            "image_size set to the input's side (channels are the dataset's)"
        )
    return shape, int(config.num_classes or info.num_classes)


@dataclass
class StageData:
    train: Any
    validation: Any
    steps_per_epoch: int
    validation_steps: int | None
    train_examples: int


def _kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.dataset_kwargs)
    for key in ("data_dir", "manual_dir", "image_size"):
        if getattr(config, key) is not None:
            kwargs[key] = getattr(config, key)
    if config.num_classes is not None:
        kwargs.setdefault("num_classes", config.num_classes)
    if config.skip_corrupt:
        kwargs.update(skip_corrupt=True, max_skip_fraction=config.max_skip_fraction)
    return kwargs


def _train_split(config: TrainConfig, stage: StageConfig, get_dataset: DatasetFn, context=None):
    """(dataset, examples) of the training split with ``stage``'s augmentation."""
    return get_dataset(
        config.dataset,
        "train",
        batch_size=config.batch_size,
        training=True,
        seed=config.seed,
        augment=stage.augment,
        input_context=context,
        **_kwargs(config),
    )


def train_examples(
    config: TrainConfig, stage: StageConfig, dataset_fn: DatasetFn | None = None
) -> int:
    """The number of training examples of ``stage``'s data, after checking that the data
    exists, that the stage's augmentation fits the images and that one batch fits the split.

    Raises:
        ValueError: the augmentation does not fit the dataset (e.g. colour ops on grey
            images), or ``batch_size`` exceeds the training examples.
        FileNotFoundError: the dataset's files are missing (the message says where they go).
    """
    _, examples = _train_split(config, stage, dataset_fn or get_dataset)
    if examples // config.batch_size < 1:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {examples} training "
            f"examples of {config.dataset!r}; valid: batch_size <= {examples}"
        )
    return examples


def steps_per_epoch(config: TrainConfig, examples: int) -> int:
    """Training steps per epoch: whole batches of the ``examples``, at most
    ``config.steps_per_epoch``."""
    steps = examples // config.batch_size
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps


def stage_data(
    config: TrainConfig,
    stage: StageConfig,
    strategy: tf.distribute.Strategy,
    *,
    skip_batches: int = 0,
    dataset_fn: DatasetFn | None = None,
    examples: int | None = None,
) -> StageData:
    """The training and validation data of ``stage`` under ``strategy``.

    Args:
        config: the run (dataset, batch size, seed, epoch caps).
        stage: the stage (its augmentation).
        strategy: the distribution strategy; with several replicas each gets its shard.
        skip_batches: training batches already consumed (resuming from a backup).
        dataset_fn: ``get_dataset``-compatible function (default: bireal_larq.data's).
        examples: the training examples, when known (:func:`train_examples`): the split is
            then not built once more only to count them.
    """
    read = dataset_fn or get_dataset
    kwargs = _kwargs(config)
    eval_batch = config.eval_batch_size or config.batch_size

    def train_fn(context=None):
        ds, _ = _train_split(config, stage, read, context)
        # A fixed seed gives a fixed sequence of epoch orders; skipping the consumed
        # batches puts a resumed run exactly where the interrupted one stopped.
        ds = ds.repeat()
        # skip_batches counts steps; this pipeline yields per-replica batches and every step
        # takes one for each replica it feeds (MirroredStrategy: all replicas of the worker).
        per_step = context.num_replicas_in_sync // context.num_input_pipelines if context else 1
        return ds.skip(skip_batches * per_step) if skip_batches else ds

    def val_fn(context=None):
        # The stage's recipe also fixes the evaluation resize ratio (Training-Tricks-for-BNNs
        # item 18).
        ds, _ = read(
            config.dataset,
            "test",
            batch_size=eval_batch,
            training=False,
            seed=config.seed,
            augment=stage.augment,
            input_context=context,
            **kwargs,
        )
        return ds

    if examples is None:
        examples = train_examples(config, stage, read)
    steps = steps_per_epoch(config, examples)
    # None runs the whole test split.
    val_steps = config.validation_steps
    if strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        train = strategy.distribute_datasets_from_function(train_fn)
    else:
        train = train_fn()
    # Keras distributes a plain evaluation dataset itself (and then needs no step count).
    validation = val_fn()
    return StageData(train, validation, steps, val_steps, examples)
