"""``run_training``: a whole recipe, stage after stage, into one run directory.

The run directory's layout and files are :mod:`bireal_larq.training.rundir`'s; one stage is
:func:`bireal_larq.training.stage.run_stage`; the checks before anything is written are
:func:`bireal_larq.training.resolve.check_run`.

Rerunning the same configuration into ``DIR`` resumes: finished stages are skipped and the
unfinished one continues from its last backup (epoch, step, optimizer state; the learning
rate is a function of the restored step).
"""

from __future__ import annotations

import os
import time
from typing import Any

import tensorflow as tf

from bireal_larq.data import corrupt_image_errors, save_class_names
from bireal_larq.runs import FINAL_WEIGHTS
from bireal_larq.training.config import TrainConfig
from bireal_larq.training.data import DatasetFn, dataset_info
from bireal_larq.training.distribute import get_strategy, mixed_precision_policy
from bireal_larq.training.resolve import check_run, checked_differences
from bireal_larq.training.rundir import (
    prepare_run_directory,
    save_finite_weights,
    train_throughput,
    worker_run_dir,
    write_history,
    write_summary,
)
from bireal_larq.training.stage import RunContext, StageResult, rebuild_stage, run_stage
from bireal_larq.utils import dtype_policy

__all__ = ["run_training"]


def run_training(
    config: TrainConfig,
    output_dir: str,
    *,
    overwrite: bool = False,
    dataset_fn: DatasetFn | None = None,
    verbose: int = 1,
    strategy: tf.distribute.Strategy | None = None,
    checked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs every stage of ``config`` into ``output_dir`` and returns the summary.

    Args:
        config: the run.
        output_dir: the run directory (created; resumed when it holds this configuration).
        overwrite: delete a run made with a different configuration instead of refusing.
        dataset_fn: a ``get_dataset``-compatible function (default: bireal_larq.data's).
        verbose: Keras verbosity (1: progress bar).
        strategy: an existing strategy (default: ``get_strategy(config.strategy)``; a
            multi-worker strategy must exist before TensorFlow runs its first op).
        checked: what ``check_run(config, strategy, dataset_fn)`` returned, when the caller
            ran the checks already (they are not repeated); None: the run checks first.

    Returns:
        The summary also written to ``output_dir/summary.json``.

    Raises:
        ValueError: an invalid configuration, before anything is written (``check_run``), or
            ``checked`` resolved from another configuration.
        FileNotFoundError: missing dataset files, before anything is written.
        RunDirectoryConflict: ``output_dir`` holds another configuration.
        NonFiniteLossError: the loss became NaN or infinite (nothing is saved from it).
        CorruptImageError: an unreadable training or validation image (the message names it),
            or with ``skip_corrupt`` more than ``max_skip_fraction`` of a pass unreadable.
    """
    started = time.time()
    strategy = strategy or get_strategy(config.strategy)
    resolved = _checked_config(config, strategy, dataset_fn, checked)
    run_dir = worker_run_dir(output_dir, strategy)
    policy = _dtype_policy_name(config, strategy)
    resolved.update(dtype_policy=policy, replicas=strategy.num_replicas_in_sync)
    prepare_run_directory(run_dir, resolved, config, overwrite)
    _save_class_names(run_dir, config)

    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    context = RunContext(
        config=config,
        strategy=strategy,
        run_dir=run_dir,
        output_dir=output_dir,
        input_shape=tuple(resolved["input_shape"]),
        num_classes=resolved["num_classes"],
        dataset_fn=dataset_fn,
        verbose=verbose,
    )
    with dtype_policy(policy):
        results: list[StageResult] = []
        for index in range(len(config.stages)):
            results.append(run_stage(context, index, results[-1] if results else None))
        final = results[-1]
        if not final.live:  # every stage was done by an earlier call: rebuild the last one
            final = rebuild_stage(context, len(results) - 1, final)
        metrics = _evaluate(final)

    # Float32 variables under any policy: the file loads into a float32 model.
    save_finite_weights(final.model, os.path.join(run_dir, FINAL_WEIGHTS))
    write_history(run_dir, [(r.dir, r.record) for r in results])
    summary = _summary(config, results, metrics, started, policy, strategy)
    write_summary(run_dir, summary)
    print(f"top-1 {summary['top1']:.4f}  top-5 {summary['top5']:.4f}  -> {run_dir}")
    return summary


def _checked_config(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    dataset_fn: DatasetFn | None,
    checked: dict[str, Any] | None,
) -> dict[str, Any]:
    """The resolved configuration: a copy of ``checked``, or ``check_run``'s."""
    if checked is None:
        return check_run(config, strategy, dataset_fn)
    differing = checked_differences(config, checked)
    if differing:
        raise ValueError(
            f"checked= was resolved from another configuration (differs in {differing}); "
            "valid: what check_run returned for this config, or None"
        )
    return dict(checked)


def _dtype_policy_name(config: TrainConfig, strategy: tf.distribute.Strategy) -> str:
    """The Keras dtype policy the stages train under: float32, or the device's mixed policy."""
    if not config.mixed_precision:
        return "float32"
    policy = mixed_precision_policy(strategy)
    print(f"mixed precision: {policy} (quantizers' signs and the softmax stay float32)")
    return policy


def _save_class_names(run_dir: str, config: TrainConfig) -> None:
    """The dataset's class names beside the run, when the dataset has them."""
    class_names = dataset_info(config).class_names
    if class_names:
        save_class_names(run_dir, list(class_names))


def _evaluate(final: StageResult) -> dict[str, float]:
    """The last stage's model on its validation data."""
    with corrupt_image_errors():
        return final.trainer.evaluate(
            final.data.validation,
            steps=final.data.validation_steps,
            return_dict=True,
            verbose=0,
        )


def _summary(
    config: TrainConfig,
    results: list[StageResult],
    metrics: dict[str, float],
    started: float,
    policy: str,
    strategy: tf.distribute.Strategy,
) -> dict[str, Any]:
    """The content of ``summary.json``."""
    records = [dict(r.record) for r in results]
    return {
        "model": config.model,
        "experiment": config.experiment,
        "dataset": config.dataset,
        "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "epochs": sum(s.epochs for s in config.stages),
        "stages": records,
        "wall_time_s": time.time() - started,  # this call (a resumed run: only what was left)
        # every stage's training: a stage finished by an earlier call counts its recorded
        # time, but a stage interrupted and resumed counts only the call that finished it
        "train_time_s": sum(r["wall_time_s"] for r in records),
        **train_throughput(records, config.batch_size),
        "dtype_policy": policy,
        "replicas": strategy.num_replicas_in_sync,
    }
