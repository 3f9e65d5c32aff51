"""The files of a training run's directory and what they hold.

Layout of ``DIR`` (the reading side, shared with evaluation and export, is
:mod:`bireal_larq.runs`)::

    config.json            resolved configuration (model, model_overrides, input_shape, ...)
    model.weights.h5       final float32 weights, loadable by name
    summary.json           final top-1 / top-5, epochs, wall time, training images/s
    history.csv, curves.png
    logs/<stage>/          TensorBoard
    stages/NN_<stage>/     backup/ (BackupAndRestore), checkpoints/epoch_NNN.weights.h5,
                           history.csv, points.csv (training values within epochs),
                           stage.weights.h5 + stage.json once the stage is done

Here: the comparison of a configuration with the one a directory already holds
(:func:`prepare_run_directory`, :class:`RunDirectoryConflict`), the paths of a stage and its
"finished" marker (``stage.json`` next to ``stage.weights.h5``), reading a history and its
points (:func:`read_history`, :func:`read_points`), the run's merged history and curves (drawn
by :mod:`bireal_larq.plots`), and ``summary.json`` with its training throughput
(:func:`train_throughput`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

import tensorflow as tf

from bireal_larq.models import create_model, save_weights
from bireal_larq.plots import plot_history
from bireal_larq.runs import RUN_CONFIG, write_run_config
from bireal_larq.training import callbacks as cb
from bireal_larq.training.config import TrainConfig
from bireal_larq.training.distribute import is_chief, task_id
from bireal_larq.utils import atomic_path, jsonable

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
HISTORY = "history.csv"
CURVES = "curves.png"
STAGE_WEIGHTS = "stage.weights.h5"
STAGE_DONE = "stage.json"
# Keys of config.json that may change between a run and its resumption: steps_per_execution
# moves where the run can stop, not the steps it runs.
_VOLATILE = ("overwrite", "steps_per_execution")


class RunDirectoryConflict(ValueError):
    """The output directory holds a run with a different configuration."""


def worker_run_dir(output_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this worker writes: ``output_dir`` on the chief, ``output_dir/workers/worker_N``
    on the other workers of a multi-worker run."""
    if is_chief(strategy):
        return output_dir
    return os.path.join(output_dir, "workers", f"worker_{task_id(strategy)}")


def stage_dir(run_dir: str, index: int, name: str) -> str:
    """``run_dir/stages/NN_<name>``: the directory of the stage at 0-based ``index``."""
    return os.path.join(run_dir, "stages", f"{index + 1:02d}_{name}")


def backup_dir(output_dir: str, index: int, name: str) -> str:
    """The stage's resume points (BackupAndRestore), under the chief's directory for every
    worker: Keras writes the chief's and has the others read it."""
    return os.path.join(stage_dir(output_dir, index, name), "backup")


def _with_added_defaults(previous: Any, config: Any) -> Any:
    """``previous`` (a saved config as JSON) with every field of ``config``'s dataclasses
    that it has no key for, at any depth (a stage's, its optimizer's, its augmentation's), set
    to the field's default (not to ``config``'s value, so a changed new field still differs).
    """
    if not (dataclasses.is_dataclass(config) and isinstance(previous, dict)):
        if isinstance(config, (list, tuple)) and isinstance(previous, list):
            if len(config) == len(previous):
                return [_with_added_defaults(p, c) for p, c in zip(previous, config)]
        return previous
    filled = dict(previous)
    for f in dataclasses.fields(config):
        if f.name in filled:
            filled[f.name] = _with_added_defaults(filled[f.name], getattr(config, f.name))
        elif f.default is not dataclasses.MISSING:
            filled[f.name] = json.loads(json.dumps(jsonable(f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            filled[f.name] = json.loads(json.dumps(jsonable(f.default_factory())))
    return filled


def config_differences(run_dir: str, resolved: dict[str, Any], config: TrainConfig) -> list[str]:
    """The keys of ``config.json`` in which ``run_dir``'s run differs from ``resolved`` (the
    resolved ``config``); empty when the directory holds no run or the same one. A field of
    ``config``'s classes that the saved run lacks counts at its default."""
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        previous = _with_added_defaults(json.load(f), config)
    new = json.loads(json.dumps(resolved, default=str))
    return sorted(
        k for k in set(previous) | set(new) if k not in _VOLATILE and previous.get(k) != new.get(k)
    )


def prepare_run_directory(
    run_dir: str, resolved: dict[str, Any], config: TrainConfig, overwrite: bool = False
) -> None:
    """Writes ``resolved`` as ``run_dir/config.json``, after checking that ``run_dir`` holds
    no run of another configuration (with ``overwrite``: deleting that run).

    Raises:
        RunDirectoryConflict: ``run_dir`` holds another configuration, and not ``overwrite``.
    """
    differing = config_differences(run_dir, resolved, config)
    if differing and not overwrite:
        raise RunDirectoryConflict(
            f"{run_dir!r} holds a run with a different configuration (differs in "
            f"{differing}); choose another --output_dir, or pass --overwrite to delete it"
        )
    if differing:
        log.warning("--overwrite: deleting the previous run in %s", run_dir)
        shutil.rmtree(run_dir)
    write_run_config(run_dir, resolved)


def save_finite_weights(model: tf.keras.Model, path: str) -> None:
    """Saves ``model``'s weights to ``path`` after checking that every one is finite.

    Raises:
        NonFiniteLossError: a weight is NaN or infinite (nothing is written).
    """
    cb.assert_finite(model)
    save_weights(model, path)


def finished_stage_record(directory: str) -> dict[str, Any] | None:
    """The record (``stage.json``) of the stage in ``directory`` when it finished (its record
    and its weights are both there), else None."""
    done = os.path.join(directory, STAGE_DONE)
    if not (os.path.exists(done) and os.path.exists(os.path.join(directory, STAGE_WEIGHTS))):
        return None
    with open(done, encoding="utf-8") as f:
        return json.load(f)


def mark_stage_finished(directory: str, record: Mapping[str, Any]) -> None:
    """Writes the stage's record as ``directory/stage.json`` (atomically), the marker that the
    stage finished; its ``stage.weights.h5`` is written before."""
    with atomic_path(os.path.join(directory, STAGE_DONE)) as tmp, \
            open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(record), f, indent=2, default=str)


def previous_stage_model(config: TrainConfig, previous_dir: str, input_shape, num_classes):
    """The model a finished stage trained (its recorded overrides), with its final weights."""
    with open(os.path.join(previous_dir, STAGE_DONE), encoding="utf-8") as f:
        overrides = json.load(f)["model_overrides"]
    return create_model(
        config.model,
        input_shape=input_shape,
        num_classes=num_classes,
        weights=os.path.join(previous_dir, STAGE_WEIGHTS),
        **overrides,
    )


def read_history(path: str) -> list[dict[str, str]]:
    """The epoch rows of a ``history.csv`` (Keras' CSVLogger: ``epoch``, the metrics, their
    ``val_`` twins), as strings; none when the file is absent."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_points(path: str, offset: float, steps_per_epoch: int) -> list[tuple[float, ...]]:
    """The points a :class:`~bireal_larq.training.callbacks.TrainingPoints` wrote to ``path``
    as ``(x, loss, top1)``, x on the run's epoch axis (the stage starts at ``offset`` epochs),
    sorted; none when absent. A line cut short (the process was killed) is skipped."""
    if not os.path.exists(path):
        return []
    points = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                x = offset + int(row["epoch"]) + int(row["step"]) / max(steps_per_epoch, 1)
                points.append((x, float(row["loss"] or "nan"), float(row["top1"] or "nan")))
            except (KeyError, TypeError, ValueError):  # a line cut short by a kill
                continue
    return sorted(points)


def merge_history(
    run_dir: str, stages: Iterable[tuple[str, Mapping[str, Any]]]
) -> tuple[list[dict[str, str]], list[tuple[float, ...]]]:
    """The epoch rows of ``stages`` ((stage directory, stage record) pairs, in order), also
    written to ``run_dir/history.csv``, and their training points within epochs, on the run's
    epoch axis."""
    rows, points = [], []
    for directory, record in stages:
        stage_rows = read_history(os.path.join(directory, HISTORY))
        points += read_points(os.path.join(directory, cb.POINTS), len(rows),
                              int(record.get("steps_per_epoch") or 1))
        rows += [{"stage": record["stage"], **row} for row in stage_rows]
    if rows:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        with open(os.path.join(run_dir, HISTORY), "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    return rows, points


def write_history(run_dir: str, stages: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """``run_dir/history.csv`` (:func:`merge_history`) and, when there are epoch rows,
    ``run_dir/curves.png``."""
    history, points = merge_history(run_dir, stages)
    if history:
        plot_history(history, os.path.join(run_dir, CURVES), points)


def train_throughput(stages: list[Mapping[str, Any]], batch_size: int) -> dict[str, float]:
    """``train_images`` (every stage's training images), ``train_seconds`` and
    ``train_images_per_s`` = train_images / train_seconds.

    The seconds are those of training only, measured over windows (``callbacks.Throughput``):
    from the start of each epoch's first training step to the end of its last, waited for on
    the device, i.e. the training steps with their wait for the input pipeline and what the
    callbacks do between them (progress lines, resume points written at step counts).
    Validation, epoch-end checkpoints, building the model and preparing the data are not
    included (a stage's ``wall_time_s`` includes them).
    A stage's record that holds only its rate (``train_images_per_s``) counts its
    epochs x steps_per_epoch x batch_size images at that rate.
    """
    images = seconds = 0.0
    for stage in stages:
        if "train_images" in stage and "train_seconds" in stage:
            images += stage["train_images"]
            seconds += stage["train_seconds"]
        elif stage.get("train_images_per_s"):
            count = stage["epochs"] * stage["steps_per_epoch"] * batch_size
            images += count
            seconds += count / stage["train_images_per_s"]
    return {
        "train_images": int(images),
        "train_seconds": seconds,
        "train_images_per_s": images / seconds if seconds else 0.0,
    }


def write_summary(run_dir: str, summary: Mapping[str, Any]) -> str:
    """Writes ``run_dir/summary.json``; returns its path."""
    path = os.path.join(run_dir, SUMMARY)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(summary), f, indent=2, default=str)
    return path
