"""Several training steps per call into TensorFlow (``steps_per_execution``) and a trainer
that does not synchronise with the host after every step: the setting and its flag, no
per-step conversion of the logs, non-finite losses inside an execution, the recipe pieces,
and an exact resume from a resume point taken between executions."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_resilience import _backup_position
from train_support import (
    assert_same_weights,
    processes,
    run_python,
    run_train,
    synthetic_config,
    weight_arrays,
    write_experiment,
)

from bireal_larq.data import get_dataset, preset
from bireal_larq.training import (
    LossConfig,
    NonFiniteLossError,
    StageConfig,
    TeacherConfig,
    TrainConfig,
    get_strategy,
    run_training,
)
from bireal_larq.training.callbacks import backup_interval
from bireal_larq.training.resolve import resolve_steps_per_execution

STAGE = os.path.join("stages", "01_binary")


def config(train=128, **changes) -> TrainConfig:
    """The tests' synthetic run (train_support.synthetic_config), deterministic, 8 steps per
    epoch by default."""
    return synthetic_config(train, **{"deterministic": True, **changes})


def _weight_files(run_dir: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(run_dir) for f in files
            if f.endswith(".weights.h5")]


def test_the_setting_its_flag_and_the_resume_point_interval():
    assert config().steps_per_execution is None  # auto
    with pytest.raises(ValueError, match=r"steps_per_execution=0 is invalid; valid: None "
                       r"\(by device: 1 on CPU, 20 on GPU, 100 on TPU\) or an int >= 1"):
        config(steps_per_execution=0)
    with pytest.raises(ValueError, match="valid: None"):
        config(steps_per_execution=2.0)
    # auto on this machine's CPU: 1; an explicit value wins
    strategy = get_strategy("one_device")
    assert resolve_steps_per_execution(config(), strategy) == 1
    assert resolve_steps_per_execution(config(steps_per_execution=16), strategy) == 16
    # resume points fall between executions: the interval rounds up to a multiple
    assert [backup_interval(e, k) for e, k in [(200, 20), (200, 100), (1, 4), (10, 4), (7, 1)]] \
        == [200, 200, 4, 12, 7]

    from bireal_larq import train

    def parse(*flags):
        train.FLAGS.unparse_flags()
        train.FLAGS(["train", "--experiment=fmnist_authors_pytorch", "--output_dir=/tmp/x",
                     *flags])
        try:
            return train.config_from_flags()
        finally:
            train.FLAGS.unparse_flags()

    assert parse().steps_per_execution is None
    assert parse("--steps_per_execution=16").steps_per_execution == 16
    assert parse("--steps_per_execution=auto").steps_per_execution is None
    for bad in ("0", "-3", "many"):
        with pytest.raises(ValueError, match="valid: 'auto' or an int >= 1"):
            parse(f"--steps_per_execution={bad}")


def test_no_default_callback_converts_the_logs_to_numpy_per_step(tmp_path, monkeypatch):
    # Keras converts every batch's logs to NumPy (a host sync) unless every callback with
    # batch hooks takes tensors (_supports_tf_logs); count its conversions during a run.
    tf_utils = sys.modules[tf.keras.callbacks.CallbackList.__module__].tf_utils
    convert, calls = tf_utils.sync_to_numpy_or_python_type, []

    def counting(value):
        calls.append(1)
        return convert(value)

    monkeypatch.setattr(tf_utils, "sync_to_numpy_or_python_type", counting)
    # One step per execution, so batch hooks run at every step; a pipe, not a terminal:
    # plain progress lines (LineProgress) with every default callback.
    counts = {}
    for steps in (4, 16):
        calls.clear()
        run = config(train=256, steps_per_epoch=steps, steps_per_execution=1,
                     backup_every_steps=2)
        summary = run_training(run, str(tmp_path / str(steps)), verbose=1)
        counts[steps] = len(calls)
        assert summary["train_images"] == steps * 16  # every step counted once
    # Keras converts the logs a few times per epoch (after training, validation, the epoch's
    # end) and for the final evaluation, never per step: 12 more steps, no more conversions.
    assert counts[16] == counts[4], counts


def test_a_short_run_with_the_default_callbacks_draws_no_slow_callback_warning(tmp_path, caplog):
    # Keras warns when the batch hooks take longer than the steps ("... is slow compared to
    # the batch time"); caught also where TensorFlow's logger does not propagate.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(caplog.handler)
    try:
        run = config(train=512, steps_per_epoch=32, steps_per_execution=1)
        run_training(run, str(tmp_path), verbose=1)
    finally:
        tf_logger.removeHandler(caplog.handler)
    slow = [r.getMessage() for r in caplog.records
            if "compared to the batch time" in r.getMessage()]
    assert not slow, slow


def _nan_at(step: int):
    """A ``get_dataset`` whose training batch ``step`` (0-based, in every pass) is NaN."""

    def read(name, split, **kwargs):
        ds, examples = get_dataset(name, split, **kwargs)
        if split != "train":
            return ds, examples

        def poison(i, batch):
            x, y = batch
            return tf.where(i == step, tf.fill(tf.shape(x), float("nan")), x), y

        return ds.enumerate().map(poison), examples

    return read


def test_a_nan_inside_an_execution_stops_the_run_before_anything_is_written(tmp_path):
    # 16 steps per epoch, 4 per execution, resume points only at the epoch's end: the NaN of
    # step 5 (the second execution's first) is found between executions, within the epoch.
    run = config(train=256, steps_per_execution=4, backup_every_steps=1000)
    with pytest.raises(NonFiniteLossError, match="Loss is nan at batch 7 of epoch 1"):
        run_training(run, str(tmp_path), dataset_fn=_nan_at(4), verbose=0)
    assert _weight_files(str(tmp_path)) == []
    assert _backup_position(str(tmp_path)) is None
    assert not os.path.exists(tmp_path / "summary.json")


NAN_CLI = """
import sys
import tensorflow as tf
import bireal_larq.training.data as training_data

get_dataset = training_data.get_dataset


def poisoned(name, split, **kwargs):
    ds, examples = get_dataset(name, split, **kwargs)
    if split != "train":
        return ds, examples

    def poison(i, batch):
        x, y = batch
        return tf.where(i == 4, tf.fill(tf.shape(x), float("nan")), x), y

    return ds.enumerate().map(poison), examples


training_data.get_dataset = poisoned
from bireal_larq import train

sys.argv = ["train", *sys.argv[1:]]
train.run()
"""


@processes
def test_a_nan_at_step_5_of_executions_of_4_exits_with_code_3_and_saves_nothing_from_it(
        tmp_path):
    # Resume points every step are rounded to every 4: the one after step 4 is written, the
    # one after step 8 is refused (its weights went NaN at step 5).
    experiment = write_experiment(tmp_path, epochs=2)
    run_dir = str(tmp_path / "run")
    result = run_python(NAN_CLI, f"--experiment={experiment}", f"--output_dir={run_dir}",
                        "--steps_per_execution=4")
    assert result.returncode == 3, result.stderr[-3000:]
    assert "non-finite" in result.stderr or "Loss is nan" in result.stderr, result.stderr[-2000:]
    assert "resume points every 4 steps" in result.stdout
    assert _backup_position(run_dir) == (0, 3)  # after step 4, the last finite state
    assert not os.path.exists(os.path.join(run_dir, "model.weights.h5"))
    assert not os.path.exists(os.path.join(run_dir, STAGE, "stage.weights.h5"))
    for path in _weight_files(run_dir):
        assert all(np.all(np.isfinite(a)) for a in weight_arrays(path).values()), path
    backup = tf.train.latest_checkpoint(os.path.join(run_dir, STAGE, "backup", "chief"))
    reader = tf.train.load_checkpoint(backup)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_every_recipe_piece_trains_with_several_steps_per_execution(tmp_path):
    # Twin, then binary with distillation + feature matching + center loss + label refinery
    # on mixup/cutmix labels; 3 steps per execution over 4-step epochs (a partial execution
    # ends each epoch), next to 1 step per call.
    mix = preset("fashion_mnist", mixup_alpha=0.2, cutmix_alpha=1.0)
    stages = (
        StageConfig("twin", 1, real_valued=True, twin_activation="clip", augment=mix),
        StageConfig("binary", 2, augment=mix, loss=LossConfig(
            label_smoothing=0.1, teacher=TeacherConfig("previous"), kd_weight=1.0,
            temperature=2.0, feature_weight=0.5, center_weight=0.01,
            refinery=TeacherConfig("previous"))),
    )
    runs = {}
    for k in (3, 1):
        run = config(train=64, stages=stages, steps_per_execution=k, backup_every_steps=2)
        runs[k] = run_training(run, str(tmp_path / f"k{k}"), verbose=0)
    grouped = runs[3]
    assert [s["steps_per_execution"] for s in grouped["stages"]] == [3, 3]
    assert grouped["train_images"] == (1 + 2) * 4 * 16
    assert np.isfinite(grouped["loss"])
    # The same steps, grouped differently: equal up to floating-point rounding (the loop's
    # graph is optimised on its own).
    np.testing.assert_allclose(grouped["loss"], runs[1]["loss"], rtol=1e-5)
    one, three = (weight_arrays(str(tmp_path / f"k{k}" / "model.weights.h5")) for k in (1, 3))
    assert one.keys() == three.keys()
    for name in one:
        np.testing.assert_allclose(three[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # the step count is a performance setting: a rerun with another value resumes the run
    again = config(train=64, stages=stages, steps_per_execution=None, backup_every_steps=2)
    assert run_training(again, str(tmp_path / "k3"), verbose=0)["epochs"] == 3


DIE_AFTER_BACKUP = """
import os, signal, sys
from bireal_larq.training import callbacks

backup = callbacks.SafeBackupAndRestore._backup


def dying(self, epoch, batch=0):
    backup(self, epoch, batch)
    if (epoch, batch) == (1, 3):  # the second epoch's first resume point, mid-epoch
        os.kill(os.getpid(), signal.SIGKILL)


callbacks.SafeBackupAndRestore._backup = dying
from bireal_larq import train

sys.argv = ["train", *sys.argv[1:]]
train.run()
"""


@processes
def test_a_run_killed_between_executions_resumes_exactly(tmp_path):
    # 8 steps per epoch, 4 per execution, a resume point after every execution. Keras records
    # an execution's first step in its resume point; resuming there would repeat 3 steps.
    experiment = write_experiment(tmp_path, epochs=2)
    args = (f"--experiment={experiment}", "--steps_per_execution=4")
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    done = run_train(*args, f"--output_dir={reference}")
    assert done.returncode == 0, done.stderr[-3000:]

    died = run_python(DIE_AFTER_BACKUP, *args, f"--output_dir={killed}")
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert _backup_position(killed) == (1, 3)

    resumed = run_train(*args, f"--output_dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at epoch 2/2, step 4/8 (12 batches done" in resumed.stdout
    # Deterministic ops, the same data position and the restored optimizer: identical.
    assert_same_weights(os.path.join(reference, "model.weights.h5"),
                         os.path.join(killed, "model.weights.h5"))
    with open(os.path.join(killed, "summary.json")) as f:
        summary = json.load(f)
    assert summary["train_images"] == 4 * 16  # the 4 steps this call ran


def test_an_interval_that_is_not_a_multiple_is_rounded_and_said(tmp_path, capsys):
    run = config(steps_per_execution=3, backup_every_steps=4)
    summary = run_training(run, str(tmp_path), verbose=0)
    out = capsys.readouterr().out
    assert "3 step(s) per execution, resume points every 6 steps" in out
    assert summary["stages"][0]["steps_per_execution"] == 3
    # a value larger than an epoch runs whole epochs
    run = dataclasses.replace(run, steps_per_execution=50)
    summary = run_training(run, str(tmp_path / "long"), verbose=0)
    assert summary["stages"][0]["steps_per_execution"] == 8
