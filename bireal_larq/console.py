"""What the commands print: their own progress, results, warnings that matter and errors.

TensorFlow, TFDS and the TFLite converter log a great deal that says nothing about a run
(start-up notes of the native libraries, "Load dataset info", converter internals). The
commands (``python -m bireal_larq.<command>``) leave it out unless ``--verbose`` is given:

* while ``bireal_larq`` imports TensorFlow, larq and tf-keras, the native libraries' start-up
  lines on stderr are held back and only those that may matter are printed afterwards
  (:func:`held_native_logs`, :func:`is_noise`);
* Python logging (absl, TensorFlow's and TFDS's loggers) shows warnings and errors only
  (:func:`quiet_python_logs`);
* TensorFlow's later native logs are limited to errors (``TF_CPP_MIN_LOG_LEVEL=2``, set by
  ``bireal_larq`` for a command unless the environment sets it).

Library use (``import bireal_larq`` in a notebook or script) changes none of this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence

# Lines of the native libraries that never concern a run: absl's note on early logs, info
# and warning lines in absl's format (TF >= 2.16: "I0000 00:00:1796.. 1234 file.cc:12] ...")
# and in TF 2.15's ("2026-12-06 05:16:55.836764: W tensorflow/... ] ..."), the second line
# of the CPU-feature note, and the CUDA plugins registered twice by TF 2.15's wheels.
_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^[IW]\d{4} \d+:\d+:\d+\.\d+\s+\d+ [^\]]+\] "),
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "),
    re.compile(r"^To enable the following instructions: "),
    re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory"),
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
    # XLA on TF 2.15 reports streams without priorities as errors, harmlessly
    re.compile(r"\] SetPriority unimplemented for this stream\.$"),
)
VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")

# An error line that matters only where an NVIDIA driver is installed: there, cuInit failing
# means the GPU is not used.
_CUINIT = re.compile(r"failed call to cuInit")


def verbose_requested(argv: Sequence[str]) -> bool:
    """Whether a command line asks for ``--verbose`` (read before the flags are parsed)."""
    return any(arg in VERBOSE_ARGS for arg in argv[1:])


# Whether this process is a command run without --verbose (set by bireal_larq.cli.run).
quiet = False


def held_if_quiet() -> contextlib.AbstractContextManager:
    """:func:`held_native_logs` in a command without ``--verbose``, else nothing: for the
    short steps whose native libraries log at length (the TFLite conversion)."""
    return held_native_logs() if quiet else contextlib.nullcontext()


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA kernel driver loaded (Linux), without TensorFlow."""
    return os.path.exists("/proc/driver/nvidia/version")


def is_noise(line: str, nvidia_driver: bool | None = None) -> bool:
    """Whether a line the native libraries printed at start-up is left out of a command's
    output (see the module docstring). Errors stay, except cuInit failing on a machine
    without an NVIDIA driver, where no GPU can be used anyway."""
    if any(pattern.search(line) for pattern in _NOISE):
        return True
    if _CUINIT.search(line):
        return not (nvidia_driver_present() if nvidia_driver is None else nvidia_driver)
    return False


@contextlib.contextmanager
def held_native_logs() -> Iterator[None]:
    """Holds back what is written to the process's stderr (file descriptor 2, where native
    libraries log) inside the block, then writes the lines that are not :func:`is_noise`.

    Python's ``sys.stderr`` goes to the same descriptor, so a Python error raised inside the
    block is printed as usual after it (the held lines come first).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr (e.g. closed): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            driver = nvidia_driver_present()
            kept = [line for line in text.splitlines() if not is_noise(line, driver)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


# Warnings of TensorFlow's Python logger that say nothing about a run of these commands.
_NOISY_WARNINGS = (
    # export and evaluate load models to convert or evaluate them, never to train them
    re.compile(r"compiled metrics have yet to be built"),
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in _NOISY_WARNINGS)


def quiet_python_logs() -> None:
    """Python logging of a command without ``--verbose``: warnings and errors only, for absl
    and the loggers of TensorFlow and TFDS; TensorFlow's warnings once (not again through
    absl's handler) and without those that never concern these commands."""
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("tensorflow", "tensorflow_datasets", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    tf_logger = logging.getLogger("tensorflow")
    if tf_logger.handlers:  # TensorFlow's own stderr handler prints it: not absl's as well
        tf_logger.propagate = False
    if not any(isinstance(f, _DropNoise) for f in tf_logger.filters):
        tf_logger.addFilter(_DropNoise())
