"""Process-wide settings that importing bireal_larq makes (checked in fresh processes)."""

from __future__ import annotations

import os
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
    environ.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_importing_bireal_larq_first_gives_tensorflow_the_pooling_cpu_allocator():
    assert _probe() == "true pool True"


def test_the_user_can_keep_tensorflows_default_allocator():
    assert _probe(**{ALLOCATOR: "false"}) == "false default"
