"""`make demo`'s orchestrator end to end, shortened: every step runs for real on Fashion-MNIST."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from bireal_larq import data as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.xdist_group("training_processes")
def test_demo_runs_every_step_and_writes_the_report(tmp_path):
    if not D.fashion_mnist_available():
        pytest.skip(
            f"Fashion-MNIST files are absent from {D.FASHION_MNIST_DIR}: "
            "`apt-get install dataset-fashion-mnist` (as root) provides them"
        )
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "bireal_larq.demo", f"--output_dir={out}",
         "--steps_per_epoch=3", "--verify_samples=100", "--benchmark_runs=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Report: {out / 'report.md'}" in done.stdout
    report = (out / "report.md").read_text()
    # The numbers come from the steps' own outputs, not placeholders.
    top1 = re.search(r"Keras model, test top-1 / top-5 \(10000 images\) \| ([\d.]+) % / ([\d.]+) %",
                     report)
    assert top1 and 0.0 < float(top1.group(1)) <= float(top1.group(2)) <= 100.0
    assert re.search(r"LCE model, test top-1 \(100 images\) \| [\d.]+ %", report)
    assert "| binary convs in Keras / LceBconv2d in the flatbuffer | 16 / 16 |" in report
    assert "lce/" in report and "tflite/xnnpack" in report  # the benchmark table
    assert (out / "train" / "curves.png").exists() and (out / "model.tflite").exists()
    # Every step's exact command, so each can be redone on its own.
    for command in ("python -m bireal_larq.prepare_data --dataset=fashion_mnist",
                    f"python -m bireal_larq.train --experiment=demo_fashion_mnist "
                    f"--output_dir={out / 'train'} --steps_per_epoch=3",
                    f"python -m bireal_larq.evaluate --checkpoint={out / 'train'}",
                    f"python -m bireal_larq.export --checkpoint={out / 'train'}",
                    "python -m bireal_larq.benchmark"):
        assert command in report, command
    if os.environ.get("TFDS_DATA_DIR"):
        assert f"export TFDS_DATA_DIR={os.environ['TFDS_DATA_DIR']}" in report
