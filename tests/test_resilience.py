"""Resilience of training runs, with real processes: SIGKILL + resume, a kill while a
checkpoint is written, NaN losses, and reruns into a directory of another configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf
from train_support import (
    ROOT,
    env,
    processes,
    run_python,
    run_train,
    train_command,
    write_experiment,
)

from bireal_larq.models import create_model, load_weights
from bireal_larq.training.callbacks import latest_checkpoint

pytestmark = processes
STAGE = os.path.join("stages", "01_binary")


def _h5_arrays(path: str) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays


def _backup_position(run_dir: str):
    ckpt = tf.train.latest_checkpoint(os.path.join(run_dir, STAGE, "backup", "chief"))
    if ckpt is None:
        return None
    try:
        epoch = tf.train.load_variable(ckpt, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")
        batch = tf.train.load_variable(ckpt, "ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE")
    except (tf.errors.NotFoundError, ValueError, RuntimeError):
        return None  # being written or rotated right now (its data file gone)
    return int(epoch), int(batch)


def _tiny_model():
    return create_model("birealnet18_small", input_shape=(16, 16, 1), num_classes=4, base_filters=8)


@pytest.mark.smoke
def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    experiment = write_experiment(tmp_path, epochs=3)
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")

    done = run_train(f"--experiment={experiment}", f"--output_dir={reference}")
    assert done.returncode == 0, done.stderr[-3000:]

    args = train_command(f"--experiment={experiment}", f"--output_dir={killed}")
    process = subprocess.Popen(
        args, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    position, deadline = None, time.time() + 240
    try:
        while time.time() < deadline and process.poll() is None:
            position = _backup_position(killed)
            if position is not None and position[0] >= 1 and 0 <= position[1] < 6:
                break  # in the middle of the second (or a later) epoch
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert position is not None and 0 <= position[1] < 6, position
    assert not os.path.exists(os.path.join(killed, "summary.json"))

    resumed = run_train(f"--experiment={experiment}", f"--output_dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at epoch" in resumed.stdout

    with open(os.path.join(reference, "summary.json")) as f:
        expected = json.load(f)
    with open(os.path.join(killed, "summary.json")) as f:
        actual = json.load(f)
    # Deterministic ops, the same data position and the restored optimizer: identical.
    assert actual["top1"] == expected["top1"]
    assert actual["top5"] == expected["top5"]
    np.testing.assert_allclose(actual["loss"], expected["loss"], rtol=1e-6)
    want, got = (
        _h5_arrays(os.path.join(reference, "model.weights.h5")),
        _h5_arrays(os.path.join(killed, "model.weights.h5")),
    )
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-7, err_msg=name)


DIE_WHILE_WRITING = """
import os, signal, sys
import bireal_larq
from bireal_larq.stack import hdf5_format as legacy_hdf5

hdf5_format = legacy_hdf5()

original = hdf5_format.save_weights_to_hdf5_group
calls = []


def dying(f, model):
    calls.append(1)
    if len(calls) == 2:  # the second epoch checkpoint: half a file, then SIGKILL
        f.create_dataset("partial", data=[1.0, 2.0])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(f, model)


hdf5_format.save_weights_to_hdf5_group = dying
from bireal_larq import train

sys.argv = ["train", *sys.argv[1:]]
train.run()
"""


@pytest.mark.smoke
def test_kill_while_writing_a_checkpoint_keeps_the_previous_one_loadable(tmp_path):
    experiment = write_experiment(tmp_path, epochs=3)
    run_dir = str(tmp_path / "run")
    died = run_python(DIE_WHILE_WRITING, f"--experiment={experiment}", f"--output_dir={run_dir}")
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]

    checkpoints = os.path.join(run_dir, STAGE, "checkpoints")
    latest = latest_checkpoint(checkpoints)
    assert os.path.basename(latest) == "epoch_001.weights.h5"
    model = _tiny_model()
    load_weights(model, latest)  # complete and loadable
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert _backup_position(run_dir) is not None  # the backup is readable too

    resumed = run_train(f"--experiment={experiment}", f"--output_dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert os.path.basename(latest_checkpoint(checkpoints)) == "epoch_003.weights.h5"


def test_nan_loss_fails_the_process_and_saves_nothing_from_it(tmp_path):
    experiment = write_experiment(tmp_path, epochs=2, real=True)
    run_dir = str(tmp_path / "run")
    result = run_train(
        f"--experiment={experiment}", f"--output_dir={run_dir}", "--learning_rate=1e35"
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "NaN or infinite" in result.stderr or "Loss is" in result.stderr
    assert not os.path.exists(os.path.join(run_dir, "model.weights.h5"))
    assert not os.path.exists(os.path.join(run_dir, STAGE, "stage.weights.h5"))
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    for directory, _, files in os.walk(run_dir):
        for name in files:
            if name.endswith(".weights.h5"):
                arrays = _h5_arrays(os.path.join(directory, name))
                assert all(np.all(np.isfinite(a)) for a in arrays.values()), name


def test_rerun_with_another_configuration_is_refused_unless_overwrite(tmp_path):
    experiment = write_experiment(tmp_path, epochs=1)
    run_dir = str(tmp_path / "run")
    first = run_train(
        f"--experiment={experiment}", f"--output_dir={run_dir}", "--steps_per_epoch=2"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("config.json", "model.weights.h5", "summary.json", "history.csv", "curves.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    again = run_train(
        f"--experiment={experiment}", f"--output_dir={run_dir}", "--steps_per_epoch=2"
    )
    assert again.returncode == 0, again.stderr[-3000:]  # same configuration: nothing to redo

    other = run_train(
        f"--experiment={experiment}", f"--output_dir={run_dir}", "--steps_per_epoch=2", "--seed=7"
    )
    assert other.returncode == 2
    assert "different configuration" in other.stderr and "seed" in other.stderr

    overwritten = run_train(
        f"--experiment={experiment}",
        f"--output_dir={run_dir}",
        "--steps_per_epoch=2",
        "--seed=7",
        "--overwrite",
    )
    assert overwritten.returncode == 0, overwritten.stderr[-3000:]
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["seed"] == 7

    evaluated = subprocess.run(
        [*train_command()[:2], "bireal_larq.evaluate", f"--checkpoint={run_dir}"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "top-1" in evaluated.stdout
    with open(os.path.join(run_dir, "eval_synthetic.json")) as f:
        result = json.load(f)
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert result["top1"] == json.load(f)["top1"]
