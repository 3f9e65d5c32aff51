"""Distribution with real processes: MirroredStrategy over two logical CPUs, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 that must end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import h5py
import numpy as np
from train_support import ROOT, env, processes, run_python, train_command, write_experiment

pytestmark = processes

MIRRORED = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from bireal_larq.training import check_batch_size, get_experiment, get_strategy, run_training

strategy = get_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
try:
    check_batch_size(strategy, 15)
except ValueError as err:
    print("ODD BATCH:", err)
# 2 steps per execution over 3-step epochs: a full execution, then a partial one
config = get_experiment(sys.argv[1]).replace(
    strategy="mirrored", steps_per_epoch=3, steps_per_execution=2
)
summary = run_training(config, sys.argv[2], verbose=0)
print("SUMMARY", json.dumps(summary))
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    experiment = write_experiment(tmp_path, epochs=2)
    result = run_python(MIRRORED, experiment, str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ODD BATCH: batch_size=15 is not divisible by the 2 replicas" in result.stdout
    summary = json.loads(result.stdout.split("SUMMARY", 1)[1])
    assert summary["replicas"] == 2
    assert np.isfinite(summary["loss"])
    assert summary["stages"][0]["steps_per_execution"] == 2
    assert summary["train_images"] == 2 * 3 * 16  # every step of both epochs, counted once


RESUME = """
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from bireal_larq.training import StageConfig, TrainConfig, get_strategy
from bireal_larq.training.data import stage_data

strategy = get_strategy("mirrored")
config = TrainConfig(
    model="birealnet18_small", dataset="synthetic", batch_size=8, seed=3,
    dataset_kwargs={"image_shape": (8, 8, 3), "num_examples": {"train": 256, "test": 16}},
    stages=(StageConfig("s", 1),),
)

def labels(skip, steps):
    data = stage_data(config, config.stages[0], strategy, skip_batches=skip)
    batches = iter(data.train)
    out = []
    for _ in range(steps):
        _, y = next(batches)
        local = strategy.experimental_local_results(y)
        out.append(np.concatenate([t.numpy() for t in local]).argmax(-1).tolist())
    return out

full, resumed = labels(0, 5), labels(3, 2)
print("RESUMED", resumed == full[3:], full, resumed)
"""


def test_a_resumed_mirrored_run_continues_with_the_next_global_batch(tmp_path):
    result = run_python(RESUME)
    assert result.returncode == 0, result.stderr[-3000:]
    # skipping 3 steps skips 3 batches of each of the 2 replicas, not 3 per-replica batches
    assert "RESUMED True" in result.stdout, result.stdout[-2000:]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _arrays(path: str) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays


def test_two_multi_worker_processes_end_with_identical_weights(tmp_path):
    experiment = write_experiment(tmp_path, epochs=1)
    run_dir = str(tmp_path / "run")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes_ = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes_.append(
            subprocess.Popen(
                train_command(
                    f"--experiment={experiment}",
                    f"--output_dir={run_dir}",
                    "--strategy=multi_worker",
                    "--steps_per_epoch=4",
                    "--steps_per_execution=2",  # resume points (every step) every 2
                ),
                cwd=ROOT,
                env=env(TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for p in processes_:
            outputs.append(p.communicate(timeout=400))
    finally:
        for p in processes_:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(processes_, outputs):
        assert p.returncode == 0, err[-3000:]

    chief = _arrays(os.path.join(run_dir, "model.weights.h5"))
    other = _arrays(os.path.join(run_dir, "workers", "worker_1", "model.weights.h5"))
    assert chief.keys() == other.keys() and chief
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["replicas"] == 2 and summary["stages"][0]["steps_per_execution"] == 2


CENTERS = """
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from bireal_larq.training import LossConfig, OptimizerConfig, StageConfig, compile_for_recipe
from bireal_larq.training import losses


def student():
    tf.keras.utils.set_random_seed(1)
    inputs = tf.keras.Input((6,))
    hidden = tf.keras.layers.Dense(5)(inputs)
    logits = tf.keras.layers.Dense(3, name="logits")(hidden)
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(logits))


rng = np.random.default_rng(0)
x = rng.standard_normal((8, 6)).astype("float32")
y = np.eye(3, dtype="float32")[[0, 0, 0, 1, 2, 2, 1, 0]]  # classes split unevenly
# learning rate 0: only the centers move, by one global-batch update of Wen et al.
stage = StageConfig("s", 1, optimizer=OptimizerConfig("sgd", learning_rate=0.0),
                    loss=LossConfig(center_weight=0.1, center_alpha=0.5))
model = student()
embedding = tf.keras.Model(model.input, model.get_layer("logits").input)(x)
expected = losses.center_update(embedding, tf.constant(y), tf.zeros((3, 5)), 0.5).numpy()
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for strategy in (tf.distribute.get_strategy(), mirrored):
    with strategy.scope():
        trainer = compile_for_recipe(student(), stage, batch_size=8, steps_per_epoch=1)
    trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), verbose=0)
    error = float(np.abs(trainer.centers.numpy() - expected).max())
    print("REPLICAS", strategy.num_replicas_in_sync, error)
"""


def test_center_loss_centers_follow_the_global_batch_on_two_replicas():
    # Averaging per-replica updates shrank the centers' step with the number of replicas.
    result = run_python(CENTERS)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = dict(line.split()[1:] for line in result.stdout.splitlines()
                  if line.startswith("REPLICAS"))
    assert set(errors) == {"1", "2"}
    assert all(float(e) < 1e-5 for e in errors.values()), errors
