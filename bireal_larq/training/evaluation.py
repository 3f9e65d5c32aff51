"""Top-1 / top-5 of a trained checkpoint on a dataset's test split."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import tensorflow as tf

from bireal_larq.models import create_model
from bireal_larq.runs import FINAL_WEIGHTS, RUN_CONFIG, eval_resize_ratio, read_run_config
from bireal_larq.training.callbacks import load_weights

_STAGE_DIR = re.compile(r"^\d\d_(\w+)$")


def find_run(checkpoint: str) -> tuple[str, str, str | None]:
    """(run directory, weights file, stage name or None) of a run dir or a weights file in one.

    Raises:
        FileNotFoundError: no run directory (``config.json``) contains ``checkpoint``.
    """
    checkpoint = os.path.abspath(checkpoint)
    if os.path.isdir(checkpoint):
        return checkpoint, os.path.join(checkpoint, FINAL_WEIGHTS), None
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(f"Checkpoint {checkpoint!r} does not exist")
    directory, stage = os.path.dirname(checkpoint), None
    while directory != os.path.dirname(directory):
        match = _STAGE_DIR.match(os.path.basename(directory))
        if match and stage is None:
            stage = match.group(1)
        if os.path.exists(os.path.join(directory, RUN_CONFIG)):
            return directory, checkpoint, stage
        directory = os.path.dirname(directory)
    raise FileNotFoundError(
        f"{checkpoint!r} is not inside a run directory ({RUN_CONFIG} not found above it)"
    )


def evaluate_checkpoint(
    checkpoint: str,
    dataset: str | None = None,
    *,
    data_dir: str | None = None,
    batch_size: int = 256,
    steps: int | None = None,
) -> dict[str, Any]:
    """Evaluates a run directory's final weights, or any weights file of a run.

    Args:
        checkpoint: a run directory, its ``model.weights.h5``, or a stage / epoch checkpoint.
        dataset: the dataset (default: the run's, with its source options).
        data_dir: TFDS data dir or image folder root (default: the run's).
        batch_size: evaluation batch size.
        steps: evaluate this many batches only.

    Returns:
        ``{"top1", "top5", "loss", "checkpoint", "dataset", "examples"}``.
    """
    from bireal_larq.data import AugmentConfig, get_dataset

    run_dir, weights, stage = find_run(checkpoint)
    config = read_run_config(run_dir)
    overrides = config.get("model_overrides", {})
    if stage is not None:
        overrides = config.get("stage_model_overrides", {}).get(stage, overrides)
    model = create_model(
        config["model"],
        input_shape=tuple(config["input_shape"]),
        num_classes=int(config["num_classes"]),
        **overrides,
    )
    load_weights(model, weights)
    same = dataset is None or dataset == config.get("dataset")
    dataset = dataset or config["dataset"]
    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    kwargs.pop("shuffle_buffer", None)
    if same and config.get("skip_corrupt"):
        kwargs.update(skip_corrupt=True, max_skip_fraction=config["max_skip_fraction"])
    ratio = eval_resize_ratio(config, stage)
    if ratio is not None:  # the ratio the run was validated with (trick 18)
        kwargs["augment"] = AugmentConfig(eval_resize_ratio=ratio)
    ds, count = get_dataset(
        dataset,
        "test",
        batch_size=batch_size,
        training=False,
        data_dir=data_dir or (config.get("data_dir") if same else None),
        image_size=tuple(config["input_shape"][:2]),
        num_classes=int(config["num_classes"]),
        **kwargs,
    )
    model.compile(
        loss=tf.keras.losses.CategoricalCrossentropy(),
        metrics=[
            tf.keras.metrics.CategoricalAccuracy(name="top1"),
            tf.keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"),
        ],
    )
    metrics = model.evaluate(ds, steps=steps, return_dict=True, verbose=0)
    return {
        "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "checkpoint": weights,
        "dataset": dataset,
        "examples": count if steps is None else min(count, steps * batch_size),
    }


def write_result(result: dict[str, Any], run_dir: str) -> str:
    path = os.path.join(run_dir, f"eval_{result['dataset']}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return path
