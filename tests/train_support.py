"""Helpers shared by the training tests: tiny experiments and CLI processes.

Every process-level test trains ``birealnet18_small`` with 8 base filters on 16x16x1
synthetic images (4 classes, 128 training / 32 test examples) so a run takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run the heavy process-level tests on one xdist worker, one after the other.
processes = pytest.mark.xdist_group("training_processes")

TINY_EXPERIMENT = '''
"""Tiny synthetic experiment for tests."""
from bireal_larq.training import *

MODELS = ("birealnet18_small",)


def get_config(model):
    return TrainConfig(
        model=model,
        dataset="synthetic",
        model_overrides={{"base_filters": 8}},
        input_shape=(16, 16, 1),
        num_classes=4,
        dataset_kwargs={{"image_shape": (16, 16, 1), "num_examples": {{"train": 128, "test": 32}}}},
        batch_size=16,
        deterministic=True,
        backup_every_steps=1,
        stages={stages},
    )
'''

ONE_STAGE = (
    "(StageConfig('binary', {epochs}, OptimizerConfig('{optimizer}', {lr}, 16), "
    "ScheduleConfig('linear'), real_valued={real}),)"
)


def write_experiment(
    directory, name="tiny", *, stages=None, epochs=2, optimizer="adam", lr=1e-3, real=False
) -> str:
    """Writes a tiny experiment file and returns its path (for ``--experiment``)."""
    stages = stages or ONE_STAGE.format(epochs=epochs, optimizer=optimizer, lr=lr, real=real)
    path = os.path.join(str(directory), f"{name}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(TINY_EXPERIMENT.format(stages=stages)))
    return path


def env(**extra) -> dict[str, str]:
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    environ.pop("TF_CONFIG", None)
    environ.update(extra)
    return environ


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bireal_larq.train", *args]


def run_train(*args: str, timeout: float = 300, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(*args),
        cwd=ROOT,
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code: str, *args: str, timeout: float = 300, **extra_env):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# The in-process runs of the training tests: synthetic 16x16x1 images, 4 classes, the tiny width.
SHAPE = (16, 16, 1)


def synthetic_config(train: int = 64, **changes):
    """A run on synthetic SHAPE images, 4 classes, at the tiny width (``train`` examples,
    batch 16); ``changes`` replace any field."""
    from bireal_larq.training import StageConfig, TrainConfig

    fields = dict(
        model="birealnet18_small",
        dataset="synthetic",
        model_overrides={"base_filters": 8},
        input_shape=SHAPE,
        num_classes=4,
        dataset_kwargs={"image_shape": SHAPE, "num_examples": {"train": train, "test": 16}},
        batch_size=16,
        stages=(StageConfig("binary", 1),),
    )
    return TrainConfig(**{**fields, **changes})


def weight_arrays(path: str) -> dict:
    """Every dataset of an HDF5 weights file by its path in the file."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def assert_same_weights(a: str, b: str) -> None:
    """Two weights files hold the same arrays, bit for bit."""
    import numpy as np

    want, got = weight_arrays(a), weight_arrays(b)
    assert want.keys() == got.keys() and want
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
