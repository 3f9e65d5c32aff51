"""Process-wide settings that importing bireal_larq makes (checked in fresh processes)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ALLOCATOR = "TF_CPU_ALLOCATOR_USE_BFC"
PROBE = f"""
import bireal_larq, os, tensorflow as tf
(tf.ones([256, 256]) * 2.0).numpy()
try:
    stats = tf.config.experimental.get_memory_info("CPU:0")  # only pooling allocators count
    print(os.environ["{ALLOCATOR}"], "pool", stats["peak"] > 0)
except ValueError:
    print(os.environ["{ALLOCATOR}"], "default")
"""


def _probe(**extra: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != ALLOCATOR}  # pytest imported us
    # On CPUs where TF turns oneDNN on by default (AVX-512 VNNI / AMX, e.g. Sapphire Rapids),
    # TF takes oneDNN's pooling allocator whatever ALLOCATOR says, and the probe could not tell
    # the two allocators apart: oneDNN off, the variable alone decides.
    environ.update(TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", **extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_importing_bireal_larq_first_gives_tensorflow_the_pooling_cpu_allocator():
    assert _probe() == "true pool True"


def test_the_user_can_keep_tensorflows_default_allocator():
    assert _probe(**{ALLOCATOR: "false"}) == "false default"


WHEEL_PROBE = """
import os, sys
import bireal_larq
from bireal_larq.training.experiments import EXPERIMENTS_DIR, get_experiment, list_experiments
assert bireal_larq.__file__.startswith(sys.argv[1]), bireal_larq.__file__
print(EXPERIMENTS_DIR.relative_to(sys.argv[1]))
print(",".join(list_experiments()))
print(get_experiment("demo_fashion_mnist").model)
"""


def test_a_wheel_install_ships_the_experiments(tmp_path):
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = tmp_path / "source"  # a copy: building writes build/ into the tree
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(root, name), source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("bireal_larq", "experiments"):
        shutil.copytree(os.path.join(root, name), source / name, ignore=ignore)
    wheels, site = tmp_path / "wheels", tmp_path / "site"

    def pip(*args):
        done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]

    pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source))
    (wheel,) = wheels.glob("*.whl")
    pip("install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel))
    environ = {k: v for k, v in os.environ.items() if k != "BIREAL_EXPERIMENTS_DIR"}
    environ.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, "-c", WHEEL_PROBE, str(site)], env=environ,
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    where, names, model = done.stdout.strip().splitlines()[-3:]
    assert where == os.path.join("bireal_larq", "experiments")
    from bireal_larq.training import experiments

    # the experiment files, and the Fashion-MNIST versions the recipe files declare
    assert experiments.EXPERIMENTS_DIR == pathlib.Path(root, "experiments")
    expected = experiments.list_experiments()
    assert "fmnist_larq_zoo" in expected
    assert names.split(",") == expected
    assert model == "birealnet18_small"
