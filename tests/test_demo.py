"""`make demo`'s orchestrator end to end, shortened: every step runs for real on Fashion-MNIST,
killed once (SIGKILL) during the export and rerun: the rerun reuses the finished steps and
redoes the rest."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from bireal_larq import data as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BOUND = 900  # seconds for each of the two demo processes: longer is a hang


def _kill_at(command: list[str], marker: str) -> str:
    """Runs ``command`` and SIGKILLs its whole process group (its steps included) one second
    after ``marker`` appears in its output; returns the output up to then."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    seen, deadline = [], time.monotonic() + BOUND
    try:
        while not any(marker in line for line in seen):
            assert proc.poll() is None or not lines.empty(), "".join(seen)[-3000:]
            assert time.monotonic() < deadline, "no " + marker + " in time: " + "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return "".join(seen)


@pytest.mark.xdist_group("training_processes")
def test_demo_runs_every_step_resumes_after_a_kill_and_writes_the_report(tmp_path):
    if not D.fashion_mnist_available():
        pytest.skip(
            f"Fashion-MNIST files are absent from {D.FASHION_MNIST_DIR}: "
            "`apt-get install dataset-fashion-mnist` (as root) provides them"
        )
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "bireal_larq.demo", f"--output_dir={out}",
               "--steps_per_epoch=3", "--verify_samples=100", "--benchmark_runs=2"]
    export_title = "Export to LCE, check every binary conv is fused, verify on test images"
    first = _kill_at(command, "=== " + export_title)
    assert "=== Evaluate the Keras model on the test set: done in" in first
    assert not (out / "model.tflite").exists()  # killed before the export wrote it
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BOUND)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for title in ("Train", "Evaluate the Keras model on the test set"):
        assert re.search(rf"=== {title}: finished earlier \(.+\), reused", done.stdout), title
    assert f"demo: resuming at step '{export_title}'" in done.stdout
    assert f"=== {export_title}: done in" in done.stdout
    assert "Benchmark the LCE model against its real-valued twin (XNNPACK): done in" in done.stdout
    assert f"Report: {out / 'report.md'}" in done.stdout
    report = (out / "report.md").read_text()
    assert re.search(r"Train \(\d+ s \(reused from an earlier run\)\):", report), report
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
