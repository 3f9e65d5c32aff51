"""Fault injection over the real commands: kills, failing writes; every case has a time bound.

Each case runs the real CLI in a subprocess (``python -m bireal_larq.train`` ...) on the tiny
synthetic experiment of ``train_support``, injects one fault (SIGKILL at a chosen or
random moment, a write that fails with "No space left on device"), and checks the outcome: the
process ends within its bound with its documented exit code and a message naming the cause and
no traceback, nothing good is lost, and the rerun of the same command continues where the run
stopped. Corrupt and odd images are in ``test_odd_inputs.py``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
from test_resilience import _backup_position
from train_support import (
    ROOT,
    assert_same_weights,
    env,
    processes,
    run_train,
    train_command,
    write_experiment,
)

from bireal_larq.data import fashion_mnist_available

pytestmark = processes
STAGE = os.path.join("stages", "01_binary")
EXIT_BOUND = 240  # seconds: a tiny run takes about 20 s; a hang fails instead of stalling CI


def _start(*args: str, code: str | None = None) -> subprocess.Popen:
    command = train_command(*args)
    if code is not None:  # the fault, installed before the command's module runs
        command = [sys.executable, "-c", code + "\nimport runpy, sys\nsys.argv = "
                   + repr(["train", *args]) + "\nrunpy.run_module('bireal_larq.train', "
                   "run_name='__main__')"]
    return subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_an_epoch_end_is_a_resume_point_and_the_rerun_says_where_it_resumes(tmp_path):
    # Resume points every 1000 steps: only the epoch ends (8 steps each) can be resume points.
    experiment = write_experiment(tmp_path, epochs=3)
    args = (f"--experiment={experiment}", "--backup_every_steps=1000")
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    done = run_train(*args, f"--output_dir={reference}", timeout=EXIT_BOUND)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 1/1: starting from the beginning (a new stage)" in done.stdout

    process = _start(*args, f"--output_dir={killed}")
    deadline, point = time.time() + EXIT_BOUND, None
    try:
        while time.time() < deadline and process.poll() is None and point is None:
            if os.path.exists(os.path.join(killed, STAGE, "checkpoints", "epoch_001.weights.h5")):
                point = _backup_position(killed)
            time.sleep(0.05)
    finally:
        _kill(process)
    assert point == (0, 7), point  # the first epoch's end: epoch 0, its last batch

    resumed = run_train(*args, f"--output_dir={killed}", timeout=EXIT_BOUND)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage 1/1: resuming at epoch 2/3, step 0/8 (8 batches done" in resumed.stdout
    # Deterministic ops, the same data position and the restored optimizer: identical.
    assert_same_weights(os.path.join(reference, "model.weights.h5"),
                         os.path.join(killed, "model.weights.h5"))


DISK_FULL_AT_SECOND_CHECKPOINT = """
import errno, os
import bireal_larq
from bireal_larq.stack import hdf5_format

module = hdf5_format()
original, calls = module.save_weights_to_hdf5_group, []


def disk_full(f, model):
    calls.append(1)
    if len(calls) == 2:  # the second epoch's checkpoint: half a file, then the disk is full
        f.create_dataset("partial", data=[1.0, 2.0])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return original(f, model)


module.save_weights_to_hdf5_group = disk_full
"""


def test_a_full_disk_during_a_checkpoint_stops_cleanly_and_the_rerun_resumes(tmp_path):
    experiment = write_experiment(tmp_path, epochs=3)
    args = (f"--experiment={experiment}", "--backup_every_steps=1000",
            f"--output_dir={tmp_path / 'run'}")
    process = _start(*args, code=DISK_FULL_AT_SECOND_CHECKPOINT)
    out, err = process.communicate(timeout=EXIT_BOUND)
    assert process.returncode == 6, err[-3000:]
    checkpoints = tmp_path / "run" / STAGE / "checkpoints"
    assert (f"ERROR: Could not write {checkpoints / 'epoch_002.weights.h5'}: No space left on "
            "device. The previous version of the file, if any, is unchanged.") in err
    assert "Traceback" not in out + err
    # The first epoch's checkpoint is whole and loads; the failed one left no file behind.
    assert sorted(os.listdir(checkpoints)) == ["epoch_001.weights.h5"]
    from bireal_larq.models import create_model

    create_model("birealnet18_small", input_shape=(16, 16, 1), num_classes=4, base_filters=8,
                 weights=str(checkpoints / "epoch_001.weights.h5"))

    resumed = run_train(*args, timeout=EXIT_BOUND)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at epoch 2/3, step 0/8" in resumed.stdout
    assert sorted(os.listdir(checkpoints))[-1] == "epoch_003.weights.h5"


def test_a_failing_export_write_keeps_the_previous_flatbuffer(tmp_path, monkeypatch):
    from bireal_larq import utils
    from bireal_larq.export import export_model, read_report
    from bireal_larq.models import create_model

    model = create_model("birealnet18_small", input_shape=(32, 32, 1), num_classes=4,
                         base_filters=8)
    output = str(tmp_path / "m.tflite")
    export_model(model, output, verify_samples=2)
    before, report = open(output, "rb").read(), read_report(output)

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(utils.os, "replace", no_space)
    with pytest.raises(utils.WriteError, match=r"Could not write .*: No space left on device\. "
                       "The previous version of the file, if any, is unchanged"):
        export_model(model, output, verify_samples=2)
    monkeypatch.undo()
    assert open(output, "rb").read() == before and read_report(output) == report
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.tflite"]  # no temporary files left


@pytest.mark.slow
def test_several_kills_in_a_row_across_stages_end_like_an_uninterrupted_run(tmp_path):
    stages = ("(StageConfig('twin', 2, OptimizerConfig('adam', 1e-3, 16), "
              "ScheduleConfig('linear'), real_valued=True), "
              "StageConfig('binary', 2, OptimizerConfig('adam', 1e-3, 16), "
              "ScheduleConfig('linear')))")
    experiment = write_experiment(tmp_path, stages=stages)
    args = (f"--experiment={experiment}", "--backup_every_steps=3")
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    done = run_train(*args, f"--output_dir={reference}", timeout=EXIT_BOUND)
    assert done.returncode == 0, done.stderr[-3000:]

    # Kills at moments of the run's own progress (the clock alone misses them on a slow or
    # busy host), each a random fraction of a second after: just after the first resume point
    # of stage 1, after its first epoch's checkpoint, between the stages (stage 1 done) and
    # inside stage 2 after its first resume point.
    def exists(*parts):
        return lambda: os.path.exists(os.path.join(killed, "stages", *parts))

    moments = [
        exists("01_twin", "backup"),
        exists("01_twin", "checkpoints", "epoch_001.weights.h5"),
        exists("01_twin", "stage.json"),
        exists("02_binary", "backup"),
    ]
    rng = random.Random(0)
    kills = 0
    for reached in moments:
        process = _start(*args, f"--output_dir={killed}")
        deadline = time.time() + EXIT_BOUND
        while not reached() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        if process.poll() is not None:  # finished before the moment came: nothing to kill
            out, err = process.communicate()
            assert process.returncode == 0, err[-3000:]
            continue
        _kill(process)
        kills += 1
    assert kills >= 3, kills
    final = run_train(*args, f"--output_dir={killed}", timeout=EXIT_BOUND)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "resuming at epoch" in final.stdout or "finished earlier" in final.stdout
    assert_same_weights(os.path.join(reference, "model.weights.h5"),
                         os.path.join(killed, "model.weights.h5"))
    with open(os.path.join(reference, "summary.json")) as f:
        expected = json.load(f)
    with open(os.path.join(killed, "summary.json")) as f:
        assert json.load(f)["top1"] == expected["top1"]


STUDY = """
import sys
from bireal_larq.study import run_study
from bireal_larq.training.experiments import load_experiment

rows, failures = run_study("tiny", load_experiment(sys.argv[1]), sys.argv[2],
                           only=["real_valued_twin", "bireal", "bireal_seed1"])
print("ROWS", [r["name"] for r in rows], "FAILED", failures, flush=True)
"""


def _tiny_suite(tmp_path) -> str:
    from test_study import TINY_SUITE

    path = tmp_path / "study_tiny.py"
    path.write_text(TINY_SUITE)
    return str(path)


@pytest.mark.slow
def test_a_killed_study_resumes_where_it_stopped(tmp_path):
    suite, results = _tiny_suite(tmp_path), str(tmp_path / "results")
    command = [sys.executable, "-c", STUDY, suite, results]
    first_row = os.path.join(results, "tiny_runs", "real_valued_twin", "study_row.json")
    process = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + EXIT_BOUND
    try:
        while time.time() < deadline and process.poll() is None:
            if os.path.exists(first_row):
                time.sleep(2.0)  # into the second row's training
                break
            time.sleep(0.05)
    finally:
        _kill(process)
    stamp = os.path.getmtime(first_row)
    done = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=2 * EXIT_BOUND)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS ['real_valued_twin', 'bireal', 'bireal_seed1'] FAILED []" in done.stdout
    assert os.path.getmtime(first_row) == stamp  # a finished row is kept, not redone


@pytest.mark.slow
def test_a_study_row_that_cannot_be_written_is_reported_and_the_others_run(tmp_path):
    suite, results = _tiny_suite(tmp_path), str(tmp_path / "results")
    code = """
import errno, os, types
from bireal_larq import utils
real_replace = os.replace


def replace(src, dst):
    if dst.endswith(os.path.join("bireal", "study_row.json")):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_replace(src, dst)


utils.os = types.SimpleNamespace(**{**vars(os), "replace": replace})  # a full disk for rows
""" + STUDY
    done = subprocess.run([sys.executable, "-c", code, suite, results], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=2 * EXIT_BOUND)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS ['real_valued_twin', 'bireal_seed1'] FAILED ['bireal']" in done.stdout
    assert "### bireal failed: Could not write" in done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert not os.path.exists(os.path.join(results, "tiny_runs", "bireal", "study_row.json"))


# Every command's error exit: (command line after `python -m`, exit code, message). Each names
# the cause (and where the remedy is not obvious, the remedy) and ends at once.
ERROR_EXITS = {
    "train": (["bireal_larq.train", "--model=birealnet18_small", "--dataset=imagefolder",
               "--data_dir={tmp}/no_images", "--epochs=1", "--output_dir={tmp}/run"], 5,
              r"ERROR: '{tmp}/no_images' is not an image folder: it needs train/ and val/"),
    "evaluate": (["bireal_larq.evaluate", "--checkpoint={tmp}/no_run"], 1,
                 r"Checkpoint '{tmp}/no_run' does not exist"),
    "export": (["bireal_larq.export", "--checkpoint={tmp}/no_run", "--output={tmp}/m.tflite"], 1,
               r"export failed: Checkpoint '{tmp}/no_run' not found; expected a run directory"),
    "benchmark": (["bireal_larq.benchmark", "{tmp}/none.tflite"], 1,
                  r"benchmark failed: TFLite model '{tmp}/none.tflite' not found"),
    "report": (["bireal_larq.report", "{tmp}/none.tflite"], 1,
               r"report failed: .*{tmp}/none.tflite"),
    "study": (["bireal_larq.study", "--results_dir={tmp}/file/results"], 6,
              r"study: Could not write {tmp}/file/results/fashion_mnist_runs: Not a directory\. "
              r".*fix the directory's permissions, then run the same command again"),
    "demo": (["bireal_larq.demo", "--experiment=nope", "--output_dir={tmp}/demo"], 1,
             r"Unknown experiment 'nope'; valid: .*\n(.*\n)*demo: step 'Train' failed \(exit 1\)"
             r".*it resumes at this step"),
    "prepare_data": (["bireal_larq.prepare_data", "--dataset=imagenet2012",
                      "--manual_dir={tmp}/manual", "--data_dir={tmp}/tfds"], 1,
                     r"{tmp}/manual/ILSVRC2012_img_val\.tar: .*\[MISSING\]"),
    "convert_weights": (["bireal_larq.convert_weights", "--source=pytorch",
                         "--input={tmp}/none.pth", "--output={tmp}/w.h5"], 1,
                        r"convert_weights: PyTorch checkpoint '{tmp}/none.pth' not found"),
}


@pytest.mark.parametrize("name", list(ERROR_EXITS))
def test_every_command_ends_at_once_with_its_exit_code_and_the_cause(tmp_path, name):
    args, code, message = ERROR_EXITS[name]
    if name == "demo" and not fashion_mnist_available():
        pytest.skip("the demo's first step prepares Fashion-MNIST: its files are absent")
    tmp = str(tmp_path)
    (tmp_path / "file").write_text("a file where a folder is expected")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *(a.format(tmp=tmp) for a in args)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=EXIT_BOUND)
    output = done.stdout + done.stderr
    assert done.returncode == code, output[-3000:]
    assert re.search(message.format(tmp=re.escape(tmp)), done.stderr), done.stderr[-3000:]
    assert "Traceback" not in output, output[-3000:]
    print(f"{name}: exit {code} after {time.monotonic() - started:.1f} s")
