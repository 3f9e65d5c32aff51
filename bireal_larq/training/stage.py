"""One stage of a run: build its model from the previous stage's weights, train it with the
run's callbacks, save it and mark it finished.

:func:`run_stage` takes what every stage of a run shares (:class:`RunContext`) and returns a
:class:`StageResult`: the stage's JSON record (``stage.json``, a row of ``summary.json``)
apart from the live model, trainer and data. A stage found finished in the run directory is
not trained again; its result holds the record only, and :func:`rebuild_stage` makes the live
parts from its weights when they are needed (the final evaluation).

A stage resumes from the newest resume point (``backup/``, BackupAndRestore) of an earlier
attempt: epoch, step and optimizer state are restored, the learning rate is a function of the
restored step, and with ``exact_resume`` the input pipeline skips the batches already run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from typing import Any

import tensorflow as tf

from bireal_larq.data import corrupt_image_errors
from bireal_larq.models import create_model, transfer_weights
from bireal_larq.training import callbacks as cb
from bireal_larq.training.config import StageConfig, TeacherConfig, TrainConfig
from bireal_larq.training.data import (
    DatasetFn,
    StageData,
    stage_data,
    steps_per_epoch,
    train_examples,
)
from bireal_larq.training.distribute import is_chief
from bireal_larq.training.model import compile_for_recipe
from bireal_larq.training.resolve import resolve_steps_per_execution, stage_model_overrides
from bireal_larq.training.rundir import (
    STAGE_WEIGHTS,
    backup_dir,
    finished_stage_record,
    mark_stage_finished,
    previous_stage_model,
    save_finite_weights,
    stage_dir,
)


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares.

    Attributes:
        config: the run.
        strategy: the distribution strategy the stages train under.
        run_dir: this worker's run directory (``rundir.worker_run_dir``).
        output_dir: the chief's run directory, which holds every worker's resume points.
        input_shape: the model's input shape (resolved from the dataset).
        num_classes: the model's classes (resolved from the dataset).
        dataset_fn: a ``get_dataset``-compatible function, or None for bireal_larq.data's.
        verbose: Keras verbosity (1: a progress bar, or progress lines when stdout is not a
            terminal).
    """

    config: TrainConfig
    strategy: tf.distribute.Strategy
    run_dir: str
    output_dir: str
    input_shape: tuple[int, ...]
    num_classes: int
    dataset_fn: DatasetFn | None = None
    verbose: int = 1


@dataclasses.dataclass(frozen=True)
class StageResult:
    """A finished stage.

    Attributes:
        record: the stage's record as ``stage.json`` holds it (JSON-able): ``stage``,
            ``epochs``, ``steps_per_epoch``, ``steps_per_execution``, ``model_overrides``,
            ``wall_time_s``, ``train_images``, ``train_seconds``, ``train_images_per_s``.
        dir: the stage's directory (``stages/NN_<stage>``).
        model: the trained model; None for a stage finished by an earlier call.
        trainer: the compiled ``RecipeModel`` that trained it (None likewise).
        data: the stage's data (None likewise).
    """

    record: dict[str, Any]
    dir: str
    model: tf.keras.Model | None = None
    trainer: tf.keras.Model | None = None
    data: StageData | None = None

    @property
    def live(self) -> bool:
        """The model, trainer and data are here (the stage was trained by this call, or
        rebuilt)."""
        return self.model is not None


def load_teacher(
    teacher: TeacherConfig, context: RunContext, previous_dir: str | None
) -> tf.keras.Model:
    """The teacher or label refinery ``teacher`` describes. A registry teacher's weights load
    through ``bireal_larq.models.load_weights``: a file recorded from another variant than the
    one described (other ``pad_values``, ``padding_alignment``, ...) is refused, naming the
    fields."""
    if teacher.source == "model_file":
        return tf.keras.models.load_model(teacher.path, compile=False)
    if teacher.source == "previous":
        if previous_dir is None:
            raise ValueError("The teacher comes from the previous stage, which has no weights")
        return previous_stage_model(
            context.config, previous_dir, context.input_shape, context.num_classes
        )
    return create_model(
        teacher.model,
        input_shape=context.input_shape,
        num_classes=context.num_classes,
        real_valued=teacher.real_valued,
        twin_activation=teacher.twin_activation,
        weights=teacher.weights,
        **teacher.model_overrides,
    )


def resume_point(backup: str) -> tuple[int, int] | None:
    """The (epoch, batch) of the newest resume point in ``backup``, both 0-based (Keras' own
    counters), or None."""
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup, "chief"))
    if checkpoint is None:
        return None
    epoch = int(tf.train.load_variable(checkpoint, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(tf.train.load_variable(checkpoint, "ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    if epoch < 0 or batch < 0:
        return None
    return epoch, batch


def batches_done(point: tuple[int, int] | None, steps: int) -> int:
    """Training batches run up to and including the resume point ``point`` (its step is the
    last of an execution) in epochs of ``steps`` batches; 0 without one."""
    if point is None:
        return 0
    return point[0] * steps + point[1] + 1


def resume_message(
    stage: StageConfig, index: int, count: int, point: tuple[int, int] | None,
    steps: int, attempted: bool, backup: str, every: int,
) -> str:
    """Where a stage starts, in words: the resume point it continues from, or why none."""
    where = f"[{stage.name}] stage {index + 1}/{count}"
    if point is None:
        why = (
            "an earlier attempt stopped before its first resume point (one is taken every "
            f"{every} steps and at each epoch's end)" if attempted else "a new stage"
        )
        return f"{where}: starting from the beginning ({why})"
    consumed = batches_done(point, steps)
    epoch, step = divmod(consumed, steps)
    return (
        f"{where}: resuming at epoch {epoch + 1}/{stage.epochs}, step {step}/{steps} "
        f"({consumed} batches done; resume point in {backup})"
    )


def _build_trainer(
    context: RunContext, stage: StageConfig, overrides: dict[str, Any],
    previous_dir: str | None, data: StageData, per_execution: int,
) -> tuple[tf.keras.Model, tf.keras.Model]:
    """The stage's model (from the previous stage's weights, by layer name) and its compiled
    trainer with the stage's teacher and refinery."""
    config = context.config
    # Twin -> binary activations -> fully binary: another variant on purpose, with the same
    # layer names and shapes; its file loads (checked) into its own model, then moves by name.
    start = (
        previous_stage_model(config, previous_dir, context.input_shape, context.num_classes)
        if previous_dir is not None
        else None
    )
    with context.strategy.scope():
        model = create_model(
            config.model, input_shape=context.input_shape, num_classes=context.num_classes,
            **overrides,
        )
        if start is not None:
            transfer_weights(start, model)
            del start
        teacher = refinery = None
        if stage.loss.needs_teacher:
            teacher = load_teacher(stage.loss.teacher, context, previous_dir)
        if stage.loss.refinery is not None:
            refinery = load_teacher(stage.loss.refinery, context, previous_dir)
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
    return model, trainer


def _callbacks(
    context: RunContext, stage: StageConfig, directory: str, backup: str, model: tf.keras.Model,
    data: StageData, backup_every: int, throughput: cb.Throughput,
) -> list[tf.keras.callbacks.Callback]:
    """The stage's callbacks, in the order they must run."""
    logs = os.path.join(context.run_dir, "logs", stage.name)
    return [
        cb.FailOnNonFinite(),  # first: a broken batch reaches no checkpointing callback
        cb.EpochCheckpoint(model, os.path.join(directory, "checkpoints")),
        tf.keras.callbacks.CSVLogger(os.path.join(directory, "history.csv"), append=True),
        cb.TrainingPoints(os.path.join(directory, cb.POINTS), data.steps_per_epoch),
        # Scalars (losses, metrics, the learning rate) and histograms of every weight, the
        # latent (real-valued) weights of the binary layers included, once an epoch.
        tf.keras.callbacks.TensorBoard(logs, histogram_freq=1),
        # After the epoch's checkpoint and history row: its epoch-end resume point comes last.
        cb.SafeBackupAndRestore(backup, save_freq=backup_every, delete_checkpoint=False),
        # After the restore of a resume point: its first epoch compares with those weights.
        cb.BinaryWeightFlips(model, os.path.join(logs, "binary")),
        throughput,
    ]


def run_stage(context: RunContext, index: int, previous: StageResult | None) -> StageResult:
    """Trains the stage ``context.config.stages[index]`` from ``previous``'s weights (None: the
    first stage, from the model's initialisation), resuming an interrupted attempt; a stage
    the run directory holds finished is returned without training.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (nothing is saved from it).
        CorruptImageError: an unreadable image (the message names it).
        ValueError: a teacher that does not fit the student.
    """
    config = context.config
    stage = config.stages[index]
    count = len(config.stages)
    directory = stage_dir(context.run_dir, index, stage.name)
    record = finished_stage_record(directory)
    if record is not None:
        print(f"[{stage.name}] stage {index + 1}/{count}: finished earlier ({directory})")
        return StageResult(record=record, dir=directory)
    attempted = os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    backup = backup_dir(context.output_dir, index, stage.name)
    overrides = stage_model_overrides(config, stage)
    started = time.time()

    # Steps per epoch must be known before the data (the skip) and the schedule; the split
    # is counted once (listing an image folder of ImageNet's size takes a while).
    examples = train_examples(config, stage, context.dataset_fn)
    steps = steps_per_epoch(config, examples)
    point = resume_point(backup)
    # Keras never runs an execution across an epoch's end, and takes resume points between
    # executions only.
    per_execution = min(resolve_steps_per_execution(config, context.strategy), steps)
    backup_every = cb.backup_interval(config.backup_every_steps, per_execution)
    print(resume_message(stage, index, count, point, steps, attempted, backup, backup_every))
    # The resume point is the last step of an execution: the next step is the first not run.
    skip = batches_done(point, steps) if config.exact_resume else 0
    data = stage_data(config, stage, context.strategy, skip_batches=skip,
                      dataset_fn=context.dataset_fn, examples=examples)
    previous_dir = previous.dir if previous is not None else None
    model, trainer = _build_trainer(context, stage, overrides, previous_dir, data, per_execution)

    throughput = cb.Throughput(config.batch_size)
    callbacks = _callbacks(context, stage, directory, backup, model, data, backup_every,
                           throughput)
    print(
        f"[{stage.name}] {stage.epochs} epochs x "
        f"{data.steps_per_epoch} steps, batch {config.batch_size}, "
        f"lr {stage.optimizer.scaled_learning_rate(config.batch_size):g} "
        f"({stage.optimizer.name}), {per_execution} step(s) per execution, resume points "
        f"every {backup_every} steps and at each epoch's end"
    )
    verbose = context.verbose
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
    save_finite_weights(model, os.path.join(directory, STAGE_WEIGHTS))
    record = {
        "stage": stage.name,
        "epochs": stage.epochs,
        "steps_per_epoch": data.steps_per_epoch,
        "steps_per_execution": per_execution,
        "model_overrides": overrides,
        "wall_time_s": time.time() - started,
        # Training batches run by this call (a resumed stage: those after the resume point)
        # and their seconds, as in rundir.train_throughput.
        "train_images": throughput.images,
        "train_seconds": throughput.seconds,
        "train_images_per_s": throughput.images_per_second,
    }
    mark_stage_finished(directory, record)
    if is_chief(context.strategy):
        shutil.rmtree(backup, ignore_errors=True)
    return StageResult(record=record, dir=directory, model=model, trainer=trainer, data=data)


def rebuild_stage(context: RunContext, index: int, result: StageResult) -> StageResult:
    """``result`` (a stage finished by an earlier call) with its live parts: the stage's model
    with its saved weights, compiled for evaluation (its loss without teacher or refinery),
    and its data."""
    stage = context.config.stages[index]
    data = stage_data(context.config, stage, context.strategy, dataset_fn=context.dataset_fn)
    with context.strategy.scope():
        model = previous_stage_model(
            context.config, result.dir, context.input_shape, context.num_classes
        )
        trainer = compile_for_recipe(
            model,
            dataclasses.replace(stage, loss=type(stage.loss)()),
            batch_size=context.config.batch_size,
            steps_per_epoch=data.steps_per_epoch,
        )
    return dataclasses.replace(result, model=model, trainer=trainer, data=data)
