"""Latency of exported models: on the host through LCE's interpreter, on a device through
LCE's ``lce_benchmark_model`` binary, and the float twin with XNNPACK for comparison.

Host numbers are for comparing models and backends on one machine; what a Raspberry Pi or a
phone does is measured with ``lce_benchmark_model`` there (docs/raspberry-pi.md), whose
output :func:`parse_lce_benchmark_output` reads into the same table.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bireal_larq.export.backends import BACKENDS, KERNELS, interpreter_options
from bireal_larq.export.flatbuffer import op_table
from bireal_larq.export.verify import interpreter
from bireal_larq.models import create_model

BACKEND_CHOICES = ("auto", *BACKENDS)


def has_lce_ops(flatbuffer: bytes) -> bool:
    """Whether the flatbuffer holds LCE's custom ops (else it is a plain TFLite model)."""
    return any(op.startswith("Lce") for op in op_table(flatbuffer))


def runtime_label(flatbuffer: bytes, backend: str) -> str:
    """``lce/<backend>`` for LCE models; ``tflite/xnnpack`` or ``tflite`` for plain ones."""
    interpreter_options(backend)
    if has_lce_ops(flatbuffer):
        return f"lce/{backend}"
    return "tflite/xnnpack" if backend.endswith("+xnnpack") else "tflite"


@dataclasses.dataclass
class Timing:
    """Latency of one model, runtime and thread count, in milliseconds."""

    model: str
    runtime: str  # "lce/indirect_bgemm", "lce/default", "tflite/xnnpack", "lce_benchmark_model"
    threads: int
    runs: int
    warmup: int
    median_ms: float | None
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p25_ms: float | None = None
    p75_ms: float | None = None
    size_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_counts(threads: int, warmup: int, runs: int) -> None:
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} is invalid; valid: an integer >= 1")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} is invalid; valid: an integer >= 0")
    if not isinstance(runs, int) or runs < 2:
        raise ValueError(f"runs={runs!r} is invalid; valid: an integer >= 2")


def _summary(
    samples_s: Sequence[float], *, model: str, runtime: str, threads: int, warmup: int, size: int
) -> Timing:
    ms = np.asarray(samples_s) * 1e3
    return Timing(
        model=model,
        runtime=runtime,
        threads=threads,
        runs=len(ms),
        warmup=warmup,
        median_ms=float(np.median(ms)),
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        p25_ms=float(np.percentile(ms, 25)),
        p75_ms=float(np.percentile(ms, 75)),
        size_bytes=size,
    )


def time_flatbuffer(
    flatbuffer: bytes,
    *,
    model: str = "model",
    threads: int = 1,
    warmup: int = 5,
    runs: int = 30,
    backend: str = "indirect_bgemm+xnnpack",
    seed: int = 0,
) -> Timing:
    """Times single-image inference of ``flatbuffer`` in LCE's interpreter.

    Args:
        flatbuffer: an LCE or plain TFLite model.
        model: its name in the table.
        threads: interpreter threads.
        warmup: untimed runs first (allocation, caches).
        runs: timed runs; the median and spread are over these.
        backend: one of :data:`BACKENDS` (the LCE bgemm kernel, with or without XNNPACK).

    Raises:
        ValueError: invalid counts or backend.
    """
    _check_counts(threads, warmup, runs)
    it = interpreter(flatbuffer, num_threads=threads, backend=backend)
    shape = tuple(it.input_shapes[0])
    dtype = np.dtype(it.input_types[0])
    rng = np.random.default_rng(seed)
    if dtype == np.int8:
        x = rng.integers(-128, 128, shape, dtype=np.int8)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    for _ in range(warmup):
        it.predict(x)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        it.predict(x)
        samples.append(time.perf_counter() - start)
    return _summary(
        samples,
        model=model,
        runtime=runtime_label(flatbuffer, backend),
        threads=threads,
        warmup=warmup,
        size=len(flatbuffer),
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """One row of an interleaved comparison (see :func:`time_interleaved`)."""

    model: str
    flatbuffer: bytes
    threads: int = 1
    backend: str = "indirect_bgemm+xnnpack"


def time_interleaved(configs: Sequence[Config], *, warmup: int = 5, runs: int = 30) -> list[Timing]:
    """Times several models round-robin: one run of each per round.

    On a shared machine the load drifts over minutes; interleaving gives every model the same
    share of that drift, so their medians stay comparable (timing them one after the other
    does not).
    """
    if not configs:
        raise ValueError("No configurations to time")
    prepared = []
    for c in configs:
        _check_counts(c.threads, warmup, runs)
        it = interpreter(c.flatbuffer, num_threads=c.threads, backend=c.backend)
        x = np.random.default_rng(0).standard_normal(tuple(it.input_shapes[0]))
        x = x.astype(np.dtype(it.input_types[0]))
        for _ in range(warmup):
            it.predict(x)
        prepared.append((it, x))
    samples: list[list[float]] = [[] for _ in configs]
    for _ in range(runs):
        for (it, x), times in zip(prepared, samples):
            start = time.perf_counter()
            it.predict(x)
            times.append(time.perf_counter() - start)
    return [
        _summary(
            times,
            model=c.model,
            runtime=runtime_label(c.flatbuffer, c.backend),
            threads=c.threads,
            warmup=warmup,
            size=len(c.flatbuffer),
        )
        for c, times in zip(configs, samples)
    ]


def fastest_backend(
    flatbuffer: bytes, *, threads: int = 1, warmup: int = 2, runs: int = 7
) -> tuple[str, dict[str, float]]:
    """Probes every backend on this host, round-robin; returns the fastest and each median.

    On x86-64 the indirect bgemm is several times faster than LCE's default kernel, and
    XNNPACK speeds up the float layers around the binary ones.
    """
    timings = time_interleaved(
        [Config(b, flatbuffer, threads, b) for b in BACKENDS], warmup=warmup, runs=runs
    )
    medians = {t.model: t.median_ms for t in timings}
    return min(medians, key=medians.get), medians


def host_latency(
    flatbuffer: bytes,
    *,
    model: str = "model",
    max_threads: int = 1,
    warmup: int = 5,
    runs: int = 30,
    backend: str = "auto",
) -> tuple[list[Timing], dict[str, Any]]:
    """Latency with 1..``max_threads`` threads, with the fastest backend for the host.

    Returns:
        ``(timings, info)``: one :class:`Timing` per thread count, and ``info`` with the chosen
        ``backend`` and, for "auto", the probe medians of each backend (1 thread).
    """
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"backend={backend!r} is invalid; valid: {list(BACKEND_CHOICES)}")
    if not isinstance(max_threads, int) or max_threads < 1:
        raise ValueError(f"max_threads={max_threads!r} is invalid; valid: an integer >= 1")
    info: dict[str, Any] = {}
    if backend == "auto":
        backend, info["backend_probe_ms"] = fastest_backend(flatbuffer)
    info["backend"] = backend
    timings = [
        time_flatbuffer(
            flatbuffer, model=model, threads=n, warmup=warmup, runs=runs, backend=backend
        )
        for n in range(1, max_threads + 1)
    ]
    return timings, info


def float_twin_flatbuffer(
    model_name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int = 1000,
    overrides: dict[str, Any] | None = None,
) -> bytes:
    """The real-valued twin of a registered model, converted by the plain TFLite converter.

    Untrained weights: latency does not depend on their values.
    """
    import tensorflow as tf

    twin = create_model(
        model_name,
        input_shape=tuple(input_shape) if input_shape is not None else None,
        num_classes=num_classes,
        real_valued=True,
        **(overrides or {}),
    )
    return tf.lite.TFLiteConverter.from_keras_model(twin).convert()


# ------------------------------------------------------------------------------ device binary

_COUNT_LINE = re.compile(r"count=(\d+)((?:\s+\w+=[-\d.e+]+)+)")
_SUMMARY_LINE = re.compile(r"Inference timings in us:(.*)")
_THREADS_LINE = re.compile(r"Num threads:\s*\[(\d+)\]")
_SIZE_LINE = re.compile(r"model file size \(MB\):\s*([\d.]+)")


def parse_lce_benchmark_output(text: str) -> dict[str, Any]:
    """Reads the timings printed by ``lce_benchmark_model`` (TFLite's benchmark tool).

    Args:
        text: its stdout/stderr.

    Returns:
        ``threads`` (if printed), ``model_size_mb`` (if printed), ``warmup`` and ``inference``
        (each ``count``, ``first``, ``curr``, ``min``, ``max``, ``avg``, ``std`` in ms) and
        ``summary_ms`` (Init, First inference, Warmup (avg), Inference (avg)).

    Raises:
        ValueError: the text holds no benchmark timings.
    """
    runs = []
    for match in _COUNT_LINE.finditer(text):
        values = {"count": int(match.group(1))}
        for pair in match.group(2).split():
            key, value = pair.split("=")
            values[key] = float(value) / 1e3  # the tool prints microseconds
        runs.append(values)
    summary_match = _SUMMARY_LINE.search(text)
    if not runs or summary_match is None:
        raise ValueError(
            "No timings found: expected lce_benchmark_model output with 'count=... avg=...' "
            "lines and an 'Inference timings in us:' line"
        )
    summary = {}
    for part in summary_match.group(1).split(","):
        if ":" in part:
            key, value = part.rsplit(":", 1)
            summary[key.strip()] = float(value) / 1e3
    result: dict[str, Any] = {
        "warmup": runs[0] if len(runs) > 1 else None,
        "inference": runs[-1],
        "summary_ms": summary,
    }
    threads = _THREADS_LINE.search(text)
    result["threads"] = int(threads.group(1)) if threads else None
    size = _SIZE_LINE.search(text)
    result["model_size_mb"] = float(size.group(1)) if size else None
    return result


def run_lce_benchmark_model(
    binary: str,
    tflite_path: str,
    *,
    threads: int = 1,
    model: str | None = None,
    extra_args: Sequence[str] = (),
    timeout_s: float = 600,
) -> tuple[Timing, dict[str, Any]]:
    """Runs LCE's benchmark binary on ``tflite_path`` and parses its timings.

    Args:
        binary: path of ``lce_benchmark_model`` (or a wrapper that runs it on a device).
        tflite_path: the model.
        threads: ``--num_threads``.
        model: its name in the table (default: the file name).
        extra_args: more flags for the binary.

    Returns:
        ``(timing, parsed)``: the inference run as a :class:`Timing` (no median: the tool
        prints mean and std) and everything :func:`parse_lce_benchmark_output` read.

    Raises:
        FileNotFoundError: the binary or the model does not exist.
        RuntimeError: the binary failed (its output is quoted).
        ValueError: its output holds no timings.
    """
    if not os.path.isfile(binary):
        raise FileNotFoundError(f"lce_benchmark_model binary {binary!r} not found")
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"lce_benchmark_model binary {binary!r} is not executable")
    if not os.path.isfile(tflite_path):
        raise FileNotFoundError(f"TFLite model {tflite_path!r} not found")
    command = [binary, f"--graph={tflite_path}", f"--num_threads={threads}", *extra_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    output = done.stdout + "\n" + done.stderr
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{output.strip()[-2000:]}"
        )
    parsed = parse_lce_benchmark_output(output)
    run = parsed["inference"]
    timing = Timing(
        model=model or os.path.basename(tflite_path),
        runtime="lce_benchmark_model",
        threads=parsed["threads"] or threads,
        runs=run["count"],
        warmup=parsed["warmup"]["count"] if parsed["warmup"] else 0,
        median_ms=None,
        mean_ms=run["avg"],
        std_ms=run.get("std", float("nan")),
        min_ms=run["min"],
        max_ms=run["max"],
        size_bytes=os.path.getsize(tflite_path),
    )
    return timing, parsed


# ------------------------------------------------------------------------------ output


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(timings: Sequence[Timing]) -> str:
    """A markdown table of timings (ms), one row per model, runtime and thread count."""
    header = (
        "| model | runtime | threads | median ms | IQR ms | mean ms | std ms | min ms | "
        "max ms | runs | size MB |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in timings:
        iqr = None if t.p25_ms is None or t.p75_ms is None else t.p75_ms - t.p25_ms
        size = "-" if t.size_bytes is None else f"{t.size_bytes / 1e6:.2f}"
        lines.append(
            f"| {t.model} | {t.runtime} | {t.threads} | {_fmt(t.median_ms)} | {_fmt(iqr)} | "
            f"{_fmt(t.mean_ms)} | {_fmt(t.std_ms)} | {_fmt(t.min_ms)} | {_fmt(t.max_ms)} | "
            f"{t.runs} | {size} |"
        )
    return "\n".join(lines)


def median_of(timings: Sequence[Timing], model: str, threads: int) -> float | None:
    """The median (or the mean, for device rows) of one row of the table."""
    for t in timings:
        if t.model == model and t.threads == threads:
            return t.median_ms if t.median_ms is not None else t.mean_ms
    return None


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "Config",
    "KERNELS",
    "Timing",
    "fastest_backend",
    "float_twin_flatbuffer",
    "format_table",
    "has_lce_ops",
    "host_latency",
    "interpreter_options",
    "median_of",
    "parse_lce_benchmark_output",
    "run_lce_benchmark_model",
    "runtime_label",
    "time_flatbuffer",
    "time_interleaved",
]
