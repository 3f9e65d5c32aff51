"""``run_training``: a whole recipe, stage after stage, into one run directory.

Layout of ``DIR`` (see also :mod:`bireal_larq.runs`)::

    config.json            resolved configuration (model, model_overrides, input_shape, ...)
    model.weights.h5       final float32 weights, loadable by name
    summary.json           final top-1 / top-5, epochs, wall time, training images/s
    history.csv, curves.png
    logs/<stage>/          TensorBoard
    stages/NN_<stage>/     backup/ (BackupAndRestore), checkpoints/epoch_NNN.weights.h5,
                           history.csv, stage.weights.h5 + stage.json once the stage is done

Rerunning the same configuration into ``DIR`` resumes: finished stages are skipped and the
unfinished one continues from its last backup (epoch, step, optimizer state; the learning
rate is a function of the restored step).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from typing import Any

import tensorflow as tf

from bireal_larq.data import corrupt_image_errors
from bireal_larq.models import (
    create_model,
    get_model_config,
    save_weights,
    transfer_weights,
)
from bireal_larq.models.config import BiRealConfig, real_valued_twin
from bireal_larq.runs import FINAL_WEIGHTS, RUN_CONFIG, jsonable, write_run_config
from bireal_larq.training import callbacks as cb
from bireal_larq.training.config import (
    DEFAULT_STEPS_PER_EXECUTION,
    StageConfig,
    TeacherConfig,
    TrainConfig,
)
from bireal_larq.training.data import (
    DatasetFn,
    dataset_info,
    dataset_shape,
    stage_data,
    steps_per_epoch,
    train_examples,
)
from bireal_larq.training.distribute import (
    check_batch_size,
    get_strategy,
    is_chief,
    mixed_precision_policy,
    task_id,
)
from bireal_larq.training.model import compile_for_recipe
from bireal_larq.utils import atomic_path

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
STAGE_WEIGHTS = "stage.weights.h5"
STAGE_DONE = "stage.json"
# How a CorruptImageError raised in the input pipeline reads inside a TF op error.
# Keys of config.json that may change between a run and its resumption: steps_per_execution
# moves where the run can stop, not the steps it runs.
_VOLATILE = ("overwrite", "steps_per_execution")


class RunDirectoryConflict(ValueError):
    """The output directory holds a run with a different configuration."""


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


def _prepare_directory(
    run_dir: str, resolved: dict[str, Any], overwrite: bool, config: TrainConfig
) -> None:
    path = os.path.join(run_dir, RUN_CONFIG)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        new = json.loads(json.dumps(resolved, default=str))
        # A field added to the config classes after the run started, at its default, changes
        # nothing.
        previous = _with_added_defaults(previous, config)
        differing = sorted(
            k
            for k in set(previous) | set(new)
            if k not in _VOLATILE and previous.get(k) != new.get(k)
        )
        if differing and not overwrite:
            raise RunDirectoryConflict(
                f"{run_dir!r} holds a run with a different configuration (differs in "
                f"{differing}); choose another --output_dir, or pass --overwrite to delete it"
            )
        if differing:
            log.warning("--overwrite: deleting the previous run in %s", run_dir)
            shutil.rmtree(run_dir)
    write_run_config(run_dir, resolved)


def _load_teacher(
    teacher: TeacherConfig, config: TrainConfig, previous: str | None, input_shape, num_classes
) -> tf.keras.Model:
    """The teacher or label refinery ``teacher`` describes. A registry teacher's weights load
    through ``bireal_larq.models.load_weights``: a file recorded from another variant than the
    one described (other ``pad_values``, ``padding_alignment``, ...) is refused, naming the
    fields."""
    if teacher.source == "model_file":
        return tf.keras.models.load_model(teacher.path, compile=False)
    if teacher.source == "previous":
        if previous is None:
            raise ValueError("The teacher comes from the previous stage, which has no weights")
        return previous_stage_model(config, previous, input_shape, num_classes)
    return create_model(
        teacher.model,
        input_shape=input_shape,
        num_classes=num_classes,
        real_valued=teacher.real_valued,
        twin_activation=teacher.twin_activation,
        weights=teacher.weights,
        **teacher.model_overrides,
    )


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


def _save_finite(model: tf.keras.Model, path: str) -> None:
    cb.assert_finite(model)
    save_weights(model, path)


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


def _resume_point(backup_dir: str) -> tuple[int, int] | None:
    """The (epoch, batch) of the newest backup, both 0-based (Keras' own counters), or None."""
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
    if checkpoint is None:
        return None
    epoch = int(tf.train.load_variable(checkpoint, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(tf.train.load_variable(checkpoint, "ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    if epoch < 0 or batch < 0:
        return None
    return epoch, batch


def _resume_message(
    stage: StageConfig, index: int, count: int, point: tuple[int, int] | None,
    steps_per_epoch: int, attempted: bool, backup_dir: str, every: int,
) -> str:
    """Where a stage starts, in words: the resume point it continues from, or why none."""
    where = f"[{stage.name}] stage {index + 1}/{count}"
    if point is None:
        why = (
            "an earlier attempt stopped before its first resume point (one is taken every "
            f"{every} steps and at each epoch's end)" if attempted else "a new stage"
        )
        return f"{where}: starting from the beginning ({why})"
    consumed = point[0] * steps_per_epoch + point[1] + 1
    epoch, step = divmod(consumed, steps_per_epoch)
    return (
        f"{where}: resuming at epoch {epoch + 1}/{stage.epochs}, step {step}/{steps_per_epoch} "
        f"({consumed} batches done; resume point in {backup_dir})"
    )


def _run_stage(
    config: TrainConfig,
    index: int,
    stage: StageConfig,
    run_dir: str,
    previous_dir: str | None,
    strategy: tf.distribute.Strategy,
    input_shape,
    num_classes: int,
    dataset_fn: DatasetFn | None,
    verbose: int,
    backup_root: str,
) -> dict[str, Any]:
    stage_name = f"{index + 1:02d}_{stage.name}"
    stage_dir = os.path.join(run_dir, "stages", stage_name)
    done = os.path.join(stage_dir, STAGE_DONE)
    if os.path.exists(done) and os.path.exists(os.path.join(stage_dir, STAGE_WEIGHTS)):
        print(f"[{stage.name}] stage {index + 1}/{len(config.stages)}: finished earlier "
              f"({stage_dir})")
        with open(done, encoding="utf-8") as f:
            return json.load(f) | {"dir": stage_dir}
    attempted = os.path.isdir(stage_dir)
    os.makedirs(stage_dir, exist_ok=True)
    # One backup for all workers: Keras writes the chief's and has the others read it.
    backup_dir = os.path.join(backup_root, "stages", stage_name, "backup")
    overrides = stage_model_overrides(config, stage)
    started = time.time()

    # Steps per epoch must be known before the data (the skip) and the schedule; the split
    # is counted once (listing an image folder of ImageNet's size takes a while).
    examples = train_examples(config, stage, dataset_fn)
    steps = steps_per_epoch(config, examples)
    point = _resume_point(backup_dir)
    # Keras never runs an execution across an epoch's end, and takes resume points between
    # executions only.
    per_execution = min(resolve_steps_per_execution(config, strategy), steps)
    backup_every = cb.backup_interval(config.backup_every_steps, per_execution)
    print(_resume_message(stage, index, len(config.stages), point, steps,
                          attempted, backup_dir, backup_every))
    # The resume point is the last step of an execution: the next step is the first not run.
    skip = 0
    if point is not None and config.exact_resume:
        skip = point[0] * steps + point[1] + 1
    data = stage_data(config, stage, strategy, skip_batches=skip, dataset_fn=dataset_fn,
                      examples=examples)

    # Twin -> binary activations -> fully binary: another variant on purpose, with the same
    # layer names and shapes; its file loads (checked) into its own model, then moves by name.
    start = (
        previous_stage_model(config, previous_dir, input_shape, num_classes)
        if previous_dir is not None
        else None
    )
    with strategy.scope():
        model = create_model(
            config.model, input_shape=input_shape, num_classes=num_classes, **overrides
        )
        if start is not None:
            transfer_weights(start, model)
            del start
        teacher = refinery = None
        if stage.loss.needs_teacher:
            teacher = _load_teacher(
                stage.loss.teacher, config, previous_dir, input_shape, num_classes
            )
        if stage.loss.refinery is not None:
            refinery = _load_teacher(
                stage.loss.refinery, config, previous_dir, input_shape, num_classes
            )
        trainer = compile_for_recipe(
            model,
            stage,
            batch_size=config.batch_size,
            steps_per_epoch=data.steps_per_epoch,
            teacher=teacher,
            refinery=refinery,
            jit_compile=config.jit_compile,
            steps_per_execution=per_execution,
        )

    throughput = cb.Throughput(config.batch_size)
    callbacks = [
        cb.FailOnNonFinite(),  # first: a broken batch reaches no checkpointing callback
        cb.EpochCheckpoint(model, os.path.join(stage_dir, "checkpoints")),
        tf.keras.callbacks.CSVLogger(os.path.join(stage_dir, "history.csv"), append=True),
        cb.TrainingPoints(os.path.join(stage_dir, cb.POINTS), data.steps_per_epoch),
        # Scalars (losses, metrics, the learning rate) and histograms of every weight, the
        # latent (real-valued) weights of the binary layers included, once an epoch.
        tf.keras.callbacks.TensorBoard(os.path.join(run_dir, "logs", stage.name),
                                       histogram_freq=1),
        # After the epoch's checkpoint and history row: its epoch-end resume point comes last.
        cb.SafeBackupAndRestore(backup_dir, save_freq=backup_every, delete_checkpoint=False),
        # After the restore of a resume point: its first epoch compares with those weights.
        cb.BinaryWeightFlips(model, os.path.join(run_dir, "logs", stage.name, "binary")),
        throughput,
    ]
    print(
        f"[{stage.name}] {stage.epochs} epochs x "
        f"{data.steps_per_epoch} steps, batch {config.batch_size}, "
        f"lr {stage.optimizer.scaled_learning_rate(config.batch_size):g} "
        f"({stage.optimizer.name}), {per_execution} step(s) per execution, resume points "
        f"every {backup_every} steps and at each epoch's end"
    )
    if verbose == 1 and not sys.stdout.isatty():
        # Not a terminal: plain progress lines instead of a bar that never shows.
        callbacks.append(cb.LineProgress(data.steps_per_epoch, stage.epochs))
        verbose = 0
    # An unreadable image surfaces as the data package's own error (file and remedy).
    with corrupt_image_errors():
        trainer.fit(
            data.train,
            epochs=stage.epochs,
            steps_per_epoch=data.steps_per_epoch,
            validation_data=data.validation,
            validation_steps=data.validation_steps,
            callbacks=callbacks,
            verbose=verbose,
        )
    _save_finite(model, os.path.join(stage_dir, STAGE_WEIGHTS))
    result = {
        "stage": stage.name,
        "epochs": stage.epochs,
        "steps_per_epoch": data.steps_per_epoch,
        "steps_per_execution": per_execution,
        "model_overrides": overrides,
        "wall_time_s": time.time() - started,
        # Training batches run by this call (a resumed stage: those after the resume point)
        # and their seconds, as in train_throughput.
        "train_images": throughput.images,
        "train_seconds": throughput.seconds,
        "train_images_per_s": throughput.images_per_second,
    }
    with atomic_path(done) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    if is_chief(strategy):
        shutil.rmtree(backup_dir, ignore_errors=True)
    return result | {"dir": stage_dir, "model": model, "trainer": trainer, "data": data}


def _check_teacher(stage: StageConfig, role: str, teacher: TeacherConfig | None) -> None:
    """A registry teacher's model and weights file, or a model file, exist (before the run
    directory is written, not when the stage starts)."""
    if teacher is None or teacher.source == "previous":
        return
    if teacher.source == "registry":
        get_model_config(teacher.model, **teacher.model_overrides)
        path, what = teacher.weights, "weights file"
    else:
        path, what = teacher.path, "model file"
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise FileNotFoundError(
            f"Stage {stage.name!r}: the {role}'s {what} {path!r} does not exist; valid: the "
            f"file of a trained model (e.g. a finished run's {FINAL_WEIGHTS})"
        )


def check_run(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    dataset_fn: DatasetFn | None = None,
) -> dict[str, Any]:
    """Every check that needs no training, before anything is written: the model and its
    fields, the batch against the replicas and the training examples, and each stage's
    augmentation against the dataset's images.

    Returns:
        The resolved configuration (as ``resolve_run_config``).

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


def run_training(
    config: TrainConfig,
    output_dir: str,
    *,
    overwrite: bool = False,
    dataset_fn: DatasetFn | None = None,
    verbose: int = 1,
    strategy: tf.distribute.Strategy | None = None,
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

    Returns:
        The summary also written to ``output_dir/summary.json``.

    Raises:
        ValueError: an invalid configuration, before anything is written (``check_run``).
        FileNotFoundError: missing dataset files, before anything is written.
        RunDirectoryConflict: ``output_dir`` holds another configuration.
        NonFiniteLossError: the loss became NaN or infinite (nothing is saved from it).
        CorruptImageError: an unreadable training or validation image (the message names it),
            or with ``skip_corrupt`` more than ``max_skip_fraction`` of a pass unreadable.
    """
    started = time.time()
    strategy = strategy or get_strategy(config.strategy)
    resolved = check_run(config, strategy, dataset_fn)
    input_shape, num_classes = tuple(resolved["input_shape"]), resolved["num_classes"]

    chief = is_chief(strategy)
    run_dir = (
        output_dir if chief else os.path.join(output_dir, "workers", f"worker_{task_id(strategy)}")
    )
    policy = "float32"
    if config.mixed_precision:
        policy = mixed_precision_policy(strategy)
        print(f"mixed precision: {policy} (quantizers' signs and the softmax stay float32)")
    resolved["dtype_policy"] = policy
    resolved["replicas"] = strategy.num_replicas_in_sync
    _prepare_directory(run_dir, resolved, overwrite, config)
    class_names = dataset_info(config).class_names
    if class_names:
        from bireal_larq.data import save_class_names

        save_class_names(run_dir, list(class_names))

    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    previous_policy = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        results, previous_dir = [], None
        for index, stage in enumerate(config.stages):
            result = _run_stage(
                config,
                index,
                stage,
                run_dir,
                previous_dir,
                strategy,
                input_shape,
                num_classes,
                dataset_fn,
                verbose,
                output_dir,
            )
            results.append(result)
            previous_dir = result["dir"]
        final = results[-1]
        if "trainer" not in final:  # every stage was already done: rebuild the last one
            final |= _rebuild_final(config, final, strategy, input_shape, num_classes, dataset_fn)
        with corrupt_image_errors():
            metrics = final["trainer"].evaluate(
                final["data"].validation,
                steps=final["data"].validation_steps,
                return_dict=True,
                verbose=0,
            )
    finally:
        tf.keras.mixed_precision.set_global_policy(previous_policy)

    # Float32 variables under any policy: the file loads into a float32 model.
    _save_finite(final["model"], os.path.join(run_dir, FINAL_WEIGHTS))
    history, points = _merge_history(run_dir, results)
    if history:
        cb.plot_history(history, os.path.join(run_dir, "curves.png"), points)
    seconds = sum(r["wall_time_s"] for r in results)
    summary = {
        "model": config.model,
        "experiment": config.experiment,
        "dataset": config.dataset,
        "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]),
        "loss": float(metrics["loss"]),
        "epochs": sum(s.epochs for s in config.stages),
        "stages": [
            {k: v for k, v in r.items() if k not in ("model", "trainer", "data", "dir")}
            for r in results
        ],
        "wall_time_s": time.time() - started,  # this call (a resumed run: only what was left)
        # every stage's training: a stage finished by an earlier call counts its recorded
        # time, but a stage interrupted and resumed counts only the call that finished it
        "train_time_s": seconds,
        **train_throughput(results, config.batch_size),
        "dtype_policy": policy,
        "replicas": strategy.num_replicas_in_sync,
    }
    with open(os.path.join(run_dir, SUMMARY), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=str)
    print(f"top-1 {summary['top1']:.4f}  top-5 {summary['top5']:.4f}  -> {run_dir}")
    return summary


def train_throughput(stages: list[dict[str, Any]], batch_size: int) -> dict[str, float]:
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


def _rebuild_final(config, final, strategy, input_shape, num_classes, dataset_fn):
    stage = config.stages[-1]
    data = stage_data(config, stage, strategy, dataset_fn=dataset_fn)
    with strategy.scope():
        model = previous_stage_model(config, final["dir"], input_shape, num_classes)
        trainer = compile_for_recipe(
            model,
            dataclasses.replace(stage, loss=type(stage.loss)()),
            batch_size=config.batch_size,
            steps_per_epoch=data.steps_per_epoch,
        )
    return {"model": model, "trainer": trainer, "data": data}


def _merge_history(
    run_dir: str, results: list[dict[str, Any]]
) -> tuple[list[dict[str, str]], list[tuple[float, ...]]]:
    """The stages' epoch rows (also written to ``run_dir/history.csv``) and their training
    points within epochs, on the run's epoch axis."""
    rows, points = [], []
    for r in results:
        stage_rows = cb.read_history(os.path.join(r["dir"], "history.csv"))
        points += cb.read_points(os.path.join(r["dir"], cb.POINTS), len(rows),
                                 int(r.get("steps_per_epoch") or 1))
        rows += [{"stage": r["stage"], **row} for row in stage_rows]
    if rows:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        with open(os.path.join(run_dir, "history.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    return rows, points
