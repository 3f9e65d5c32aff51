"""Top-1 / top-5 of a trained checkpoint on a dataset's test split."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import tensorflow as tf

from bireal_larq.data import (
    CLASSES_FILE,
    AugmentConfig,
    corrupt_image_errors,
    get_dataset,
    load_class_names,
)
from bireal_larq.runs import FINAL_WEIGHTS, eval_resize_ratio, find_run, model_from_run


def evaluate_checkpoint(
    checkpoint: str,
    dataset: str | None = None,
    *,
    data_dir: str | None = None,
    batch_size: int = 256,
    steps: int | None = None,
    skip_corrupt: bool | None = None,
    max_skip_fraction: float | None = None,
) -> dict[str, Any]:
    """Evaluates a run directory's final weights, or any weights file of a run.

    Args:
        checkpoint: a run directory, its ``model.weights.h5``, or a stage / epoch checkpoint.
        dataset: the dataset (default: the run's, with its source options).
        data_dir: TFDS data dir or image folder root (default: the run's).
        batch_size: evaluation batch size.
        steps: evaluate this many batches only.
        skip_corrupt: skip unreadable images (counted) instead of stopping at the first;
            default: as the run trained (its ``skip_corrupt`` on its own dataset, else off).
        max_skip_fraction: with ``skip_corrupt``, the largest fraction that may be skipped
            (default: the run's, else 0.01).

    Returns:
        ``{"top1", "top5", "loss", "checkpoint", "dataset", "examples", "test_examples",
        "skipped"}`` (``examples`` evaluated of the split's ``test_examples``; ``skipped``
        unreadable images left out of a whole pass).

    Raises:
        CorruptImageError: an unreadable image (naming it), or more skipped than allowed.

    Raises:
        FileNotFoundError: no run directory holds ``checkpoint``, or its data is missing.
        ValueError: an unknown dataset, or one whose images do not fit the model.
    """
    run_dir, weights, stage = find_run(checkpoint)
    model, config = model_from_run(run_dir, weights, stage=stage)
    same = dataset is None or dataset == config.get("dataset")
    dataset = dataset or config["dataset"]
    kwargs = dict(config.get("dataset_kwargs") or {}) if same else {}
    kwargs.pop("shuffle_buffer", None)
    if skip_corrupt is None:
        skip_corrupt = bool(same and config.get("skip_corrupt"))
    if max_skip_fraction is None:
        max_skip_fraction = config.get("max_skip_fraction", 0.01) if same else 0.01
    elif not skip_corrupt:
        raise ValueError("max_skip_fraction only applies with skip_corrupt=True "
                         "(--skip_corrupt)")
    if skip_corrupt:
        kwargs.update(skip_corrupt=True, max_skip_fraction=max_skip_fraction)
    if dataset == "imagefolder" and os.path.isfile(os.path.join(run_dir, CLASSES_FILE)):
        # The labels index the classes the model was trained on, not the folders that happen
        # to be in this val/ (one missing or extra folder would shift every index after it).
        kwargs["class_names"] = load_class_names(run_dir)
    ratio = eval_resize_ratio(config, stage)
    if ratio is not None:  # the ratio the run was validated with (Training-Tricks-for-BNNs item 18)
        kwargs["augment"] = AugmentConfig(eval_resize_ratio=ratio)
    run_data_dir = config.get("data_dir") if same else None
    # Other data than the run's own (another image folder, say): its result gets its own file.
    other_data = bool(same and data_dir and (
        run_data_dir is None or os.path.abspath(data_dir) != os.path.abspath(run_data_dir)))
    data_dir = data_dir or run_data_dir
    ds, count = get_dataset(
        dataset,
        "test",
        batch_size=batch_size,
        training=False,
        data_dir=data_dir,
        image_size=tuple(config["input_shape"][:2]),
        num_classes=int(config["num_classes"]),
        **kwargs,
    )
    channels, expected = ds.element_spec[0].shape[-1], int(config["input_shape"][-1])
    if channels is not None and channels != expected:
        raise ValueError(
            f"Dataset {dataset!r} gives {channels}-channel images but the model takes "
            f"{expected} (input {tuple(config['input_shape'])}); valid: a dataset with "
            f"{expected}-channel images, such as the run's {config.get('dataset')!r}"
        )
    model.compile(
        loss=tf.keras.losses.CategoricalCrossentropy(),
        metrics=[
            tf.keras.metrics.CategoricalAccuracy(name="top1"),
            tf.keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"),
        ],
    )
    with corrupt_image_errors():
        metrics = model.evaluate(ds, steps=steps, return_dict=True, verbose=0)
    report = getattr(ds, "skip_report", None)  # set for file and record sources
    whole = steps is None or steps * batch_size >= count  # the pass reached its end
    skipped = len(report.last_pass) if report is not None and whole else 0
    return {
        "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "checkpoint": weights,
        "dataset": dataset,
        "examples": count - skipped if whole else steps * batch_size,
        "test_examples": count,
        "skipped": skipped,
        "data_dir": data_dir,
        "other_data_dir": other_data,
    }


def result_name(result: dict[str, Any], run_dir: str, count: int | None = None) -> str:
    """``eval_<dataset>.json`` for the final weights on the whole test split of the run's own
    data; any other checkpoint, other data (``--data_dir`` elsewhere) or a partial pass gets
    its own name, so it never replaces that result (the demo's report reads it):
    ``eval_<dataset>[_<stage>_<epoch>][_data-<dir>-<hash>][_<n>images].json``.
    """
    parts = [f"eval_{result['dataset']}"]
    weights = os.path.relpath(os.path.abspath(result["checkpoint"]), os.path.abspath(run_dir))
    if weights != FINAL_WEIGHTS:
        tag = weights.replace(".weights.h5", "").replace(".h5", "")
        pieces = [p for p in tag.split(os.sep) if p not in ("stages", "checkpoints", "")]
        parts.append("_".join(re.sub(r"[^\w.-]", "_", p) for p in pieces))
    if result.get("other_data_dir"):
        where = os.path.abspath(result["data_dir"])
        base = re.sub(r"[^\w.-]", "_", os.path.basename(where.rstrip(os.sep)) or "root")
        parts.append(f"data-{base}-{hashlib.sha1(where.encode()).hexdigest()[:6]}")
    if count is None or result["examples"] + result.get("skipped", 0) < count:
        parts.append(f"{result['examples']}images")
    return "_".join(parts) + ".json"


def write_result(result: dict[str, Any], run_dir: str) -> str:
    """Writes ``result`` into the run directory under :func:`result_name`."""
    path = os.path.join(run_dir, result_name(result, run_dir, result.get("test_examples")))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return path
