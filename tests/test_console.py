"""What the commands print: their own lines by default, the libraries' logs with --verbose."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from bireal_larq import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lines as TensorFlow 2.21 (absl's format) and 2.15 (its own format) print them at start-up.
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796534925.682751   15312 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results",
    "I0000 00:00:1796534925.683090   15312 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "2026-12-06 05:16:55.836764: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261"
    "] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when "
    "one has already been registered",
    "2026-12-06 05:16:58.628817: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] "
    "TF-TRT Warning: Could not find TensorRT",
    "2026-12-06 05:39:14.896373: E external/local_xla/xla/stream_executor/"
    "stream_executor_internal.h:177] SetPriority unimplemented for this stream.",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
CUINIT = ("E0000 00:00:1796534928.621950   15312 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
KEPT = [
    "convert_weights: PyTorch checkpoint '/x.pth' not found",
    "E0000 00:00:1796534928.621950   15312 some_kernel.cc:12] Out of memory while allocating",
    "2026-12-06 05:16:55.836764: E tensorflow/core/framework/op_kernel.cc:1827] OP_REQUIRES "
    "failed",
    "Traceback (most recent call last):",
    "WARNING:tensorflow:5 out of the last 5 calls triggered tf.function retracing",
]


@pytest.mark.parametrize("line", NOISE)
def test_start_up_chatter_is_noise(line):
    assert console.is_noise(line, nvidia_driver=False)
    assert console.is_noise(line, nvidia_driver=True)


@pytest.mark.parametrize("line", KEPT)
def test_errors_and_our_own_lines_are_kept(line):
    assert not console.is_noise(line, nvidia_driver=False)


def test_cuinit_failing_matters_only_where_an_nvidia_driver_is_installed():
    assert console.is_noise(CUINIT, nvidia_driver=False)
    assert not console.is_noise(CUINIT, nvidia_driver=True)


def test_held_native_logs_keeps_what_matters_in_order(capfd):
    with console.held_native_logs():
        os.write(2, ("\n".join([NOISE[0], "first kept", NOISE[1], "second kept"]) + "\n").encode())
    assert capfd.readouterr().err == "first kept\nsecond kept\n"


def test_quiet_python_logs_drops_tensorflows_noise_but_not_its_warnings(caplog):
    logger = logging.getLogger("tensorflow")
    saved = (logger.level, logger.propagate, list(logger.filters))
    try:
        console.quiet_python_logs()
        assert logger.getEffectiveLevel() == logging.WARNING
        record = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1,
                                   "Compiled the loaded model, but the compiled metrics have "
                                   "yet to be built.", None, None)
        assert not logger.filter(record)
        record.msg = "5 out of the last 5 calls triggered tf.function retracing"
        assert logger.filter(record)
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.filters = saved[2]


def _command(*flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has
    return subprocess.run(
        [sys.executable, "-m", "bireal_larq.convert_weights", "--source=pytorch",
         "--input=/nonexistent/none.pth", "--output=/nonexistent/w.h5", *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )


def test_a_command_prints_its_own_message_alone_and_more_with_verbose():
    quiet = _command()
    assert quiet.returncode == 1
    message = "convert_weights: PyTorch checkpoint '/nonexistent/none.pth' not found"
    assert quiet.stderr.splitlines() == [message], quiet.stderr
    verbose = _command("--verbose")
    assert verbose.returncode == 1 and message in verbose.stderr
    # TensorFlow's start-up lines (at least its CPU or CUDA note) are back
    assert any(console.is_noise(line, False) for line in verbose.stderr.splitlines()), (
        verbose.stderr
    )
