"""`make demo`'s orchestrator end to end, shortened: every step runs for real on Fashion-MNIST,
killed once (SIGKILL) during the export and rerun: the rerun reuses the finished steps and
redoes the rest, and writes the report (Markdown and one self-contained HTML page). Also the
study rows that the report cites for the real-valued twin."""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from bireal_larq import console, demo
from bireal_larq import data as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BOUND = 900  # seconds for each of the two demo processes: longer is a hang

# The demo's own progress: blank lines, each step's header and end ("=== ..."), its command
# ("$ python -m ..."), the demo's notes ("demo: ...", "Demo finished in ...") and the
# training's progress lines ("epoch 1/1 step 45/468 (10 %, ...", "epoch 1/1 done in ...").
PROGRESS = re.compile(
    r"^(\s*$|=== |\$ python -m |demo: |Demo finished in |epoch \d+/\d+ (step \d+/\d+ |done in ))"
)
MAX_OTHER_LINES = 60  # what the demo prints besides its progress: results, tables, warnings


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
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BOUND,
                          env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The libraries' chatter stays out: no start-up notes, no TFDS info lines, no converter
    # internals, no traceback.
    chatter = [line for line in (first + done.stdout + done.stderr).splitlines()
               if console.is_noise(line, nvidia_driver=False) or "Load dataset info" in line
               or "Non-Converted Ops" in line or "Traceback" in line]
    assert not chatter, chatter[:20]
    # Together the two processes ran every step once (the data preparation twice).
    other = [line for line in (first + done.stdout + done.stderr).splitlines()
             if not PROGRESS.match(line)]
    assert len(other) < MAX_OTHER_LINES, (
        f"{len(other)} lines besides the demo's progress:\n" + "\n".join(other))
    for title in ("Train", "Evaluate the Keras model on the test set"):
        assert re.search(rf"=== {title}: finished earlier \(.+\), reused", done.stdout), title
    assert f"demo: resuming at step '{export_title}'" in done.stdout
    assert f"=== {export_title}: done in" in done.stdout
    assert "Benchmark the LCE model against its real-valued twin (XNNPACK): done in" in done.stdout
    assert ("=== Classify test images with the LCE model (pictures, confusion matrix): done in"
            in done.stdout)
    assert f"Report: {out / 'report.md'} (one-file HTML: {out / 'report.html'})" in done.stdout
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
    _check_comparison_and_pictures(out, report)


def _cells(report: str, first_cell: str) -> list[str]:
    line = next(x for x in report.splitlines() if x.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split(" | ")[1:]]


def _check_comparison_and_pictures(out, report: str) -> None:
    """The binary-vs-twin table is filled from the steps' outputs and the committed study; the
    pictures are drawn; report.html holds them as data URIs."""
    study_twin = json.loads((ROOT_RUNS / "real_valued_twin" / "study_row.json").read_text())
    binary, twin = _cells(report, "test top-1, Fashion-MNIST")
    assert re.fullmatch(r"\*\*[\d.]+ %\*\* LCE on 100 images; Keras [\d.]+ % on 10,000 "
                        r"\(1 epoch\)", binary), binary
    assert twin.startswith(f"**{100 * study_twin['keras_top1']:.2f} %** after "
                           f"{study_twin['epochs']} epochs: study row `real_valued_twin`"), twin
    params = _cells(report, "parameters")
    assert params[0] == params[1] and int(params[0].replace(",", "")) > 100_000, params
    sizes = [float(re.match(r"\*\*([\d.]+) MB", c).group(1)) for c in _cells(report,
                                                                           ".tflite file")]
    assert 0 < 10 * sizes[0] < sizes[1], sizes  # 1-bit weights: over 10x smaller
    for threads in ("1 thread", "2 threads"):
        row = _cells(report, f"latency on this host, {threads} (median)")
        assert re.match(r"[\d.]+ ms \(`lce/", row[0]) and re.match(
            r"[\d.]+ ms \(`tflite/xnnpack`\)", row[1]), row
    assert "LCE has hand-written binary kernels only for 64-bit ARM (aarch64)" in report
    assert "41.7 ms on a Pixel 1 phone, 85.4 ms on a Raspberry Pi 4B" in report
    assert "    ./lce_benchmark_model --graph=model.tflite --num_threads=1" in report

    # The LCE model's predictions: the same 100 images as the export's verification.
    predictions = json.loads((out / "test_predictions.json").read_text())
    verification = json.loads((out / "model.json").read_text())["verification"]
    assert predictions["samples"] == 100 == int(np.sum(predictions["confusion"]))
    assert abs(predictions["top1"] - verification["lce_top1_accuracy"]) < 1e-9
    assert len(predictions["shown"]) == 24
    pictures = {name: (out / name).read_bytes()
                for name in ("predictions.png", "confusion.png", "train/curves.png")}
    for name, png in pictures.items():
        image = Image.open(io.BytesIO(png)).convert("RGB")
        colors = len(np.unique(np.asarray(image).reshape(-1, 3), axis=0))
        assert image.size[0] >= 400 and colors > 50, (name, image.size, colors)
        assert f"]({name})" in report, name

    page = (out / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(pictures)
    embedded = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        embedded.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    assert sorted(embedded) == sorted(pictures.values())
    assert "<td>parameters</td>" in page and "real_valued_twin" in page


ROOT_RUNS = pathlib.Path(ROOT) / demo.STUDY_RUNS
RUN_CONFIG = {"dataset": "fashion_mnist", "model": "birealnet18_small", "batch_size": 128,
              "model_overrides": {"base_filters": 16}, "stages": [{"epochs": 1}]}


def test_the_study_rows_the_report_cites_fit_the_demo_model():
    study, why = demo.study_rows(RUN_CONFIG, ROOT)
    assert study is not None, why
    assert study["twin"]["name"] == "real_valued_twin" and not study["twin"]["binary"]
    assert study["binary"]["name"] == "bireal" and study["binary"]["binary"]
    assert study["twin"]["parameters"] == study["binary"]["parameters"]
    epochs = study["twin"]["epochs"]
    assert f"{epochs} epochs (this run: 1)" in study["differences"]


def test_study_rows_refuse_another_model_and_missing_files(tmp_path):
    study, why = demo.study_rows({**RUN_CONFIG, "model_overrides": {"base_filters": 64}}, ROOT)
    assert study is None and "not this model" in why
    study, why = demo.study_rows(RUN_CONFIG, str(tmp_path))
    assert study is None and "not readable here" in why
