"""The command lines of benchmarks/*.py and scripts/*.py take absl flags (``--name=value``,
underscore names), as the package's CLIs do: ``--help`` lists them in absl's format and an
unknown flag is absl's parsing error, before the script does any work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# script -> the flags it defines (update_readme_table.py takes none)
SCRIPTS = {
    "benchmarks/inference.py": ("threads", "runs", "warmup", "output", "tolerance"),
    "benchmarks/input_pipeline.py": ("num_images", "num_classes", "batch_size", "cores",
                                     "image_size", "image_dir", "output", "seed", "repeats"),
    "benchmarks/stacks.py": ("main_python", "reference_python", "benchmarks", "rounds",
                             "output", "training_args"),
    "benchmarks/training.py": ("sizes", "batch", "steps", "rounds", "classes",
                               "small_base_filters", "out", "xla", "table_from", "trainer_cost",
                               "steps_per_execution", "cost_steps"),
    "scripts/fault_report.py": ("output", "workers"),
    "scripts/update_readme_table.py": (),
}


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
        text=True, timeout=300,
    )


def test_every_script_is_covered():
    found = {f"{folder}/{name}" for folder in ("benchmarks", "scripts")
             for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py")}
    assert found == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_and_unknown_flags_behave_as_absl(script):
    done = _run(script, "--help")
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        summary = f.read().split('"""')[1].strip().splitlines()[0]
    assert summary in done.stdout, done.stderr[-2000:]
    for name in SCRIPTS[script]:
        assert f"--{name}:" in done.stdout, f"--{name} missing from the help of {script}"
    done = _run(script, "--no_such_flag=1")
    assert done.returncode == 1
    assert "FATAL Flags parsing error: Unknown command line flag 'no_such_flag'" in done.stderr
