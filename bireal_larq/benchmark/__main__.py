"""Latency of an exported ``.tflite``: a markdown table on stdout and a JSON file.

Examples::

    # host latency through LCE's interpreter, 1..2 threads, fastest backend for this host
    python -m bireal_larq.benchmark birealnet18.tflite --max_threads=2 --compare_float
    # LCE's official benchmark binary (on a Raspberry Pi, or through a wrapper that runs it there)
    python -m bireal_larq.benchmark birealnet18.tflite --lce_benchmark_model=./lce_benchmark_model

``--compare_float`` rebuilds the real-valued twin of the exported model (its name and settings
from the export report beside the file, its input and output shapes from the file), converts
it with the plain TFLite converter and times it with XNNPACK in the same process.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from bireal_larq import benchmark, cli
from bireal_larq.benchmark import BACKEND_CHOICES
from bireal_larq.cli import parser_for
from bireal_larq.export import read_flatbuffer, read_report, report_path, verify

FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS, positional=1)  # app.run's flags parser: the .tflite path
flags.DEFINE_integer("max_threads", 1, "Time with 1..N interpreter threads.", flag_values=FLAGS)
flags.DEFINE_integer("warmup", 5, "Untimed runs before timing.", flag_values=FLAGS)
flags.DEFINE_integer("runs", 30, "Timed runs per configuration.", flag_values=FLAGS)
flags.DEFINE_enum(
    "backend",
    "auto",
    list(BACKEND_CHOICES),
    "LCE bgemm kernel, with or without XNNPACK for the float layers (auto: probe them all).",
    flag_values=FLAGS,
)
flags.DEFINE_bool(
    "compare_float", False, "Also time the real-valued twin with XNNPACK.", flag_values=FLAGS
)
flags.DEFINE_string(
    "model",
    None,
    "Registry name of the model, for the table (default: from the report; --compare_float "
    "builds the report's model and refuses another name).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "lce_benchmark_model", None, "Path of LCE's benchmark binary to run too.", flag_values=FLAGS
)
flags.DEFINE_string(
    "json_output", None, "JSON results (default: <model>.benchmark.json).", flag_values=FLAGS
)


def _float_twin(path: str, flatbuffer: bytes, report: dict, model: str | None = None) -> bytes:
    """The real-valued twin of the exported model: its registry name and settings (width,
    overrides) from the export report, its input and output shapes from the flatbuffer."""
    if "model" not in report:
        raise ValueError(
            f"--compare_float rebuilds the exported model's real-valued twin from its export "
            f"report (registry name, width and other settings), but {report_path(path)!r} is "
            "missing; export the model with bireal_larq.export to get one"
        )
    if model is not None and model != report["model"]:
        raise ValueError(
            f"--model={model!r} differs from the model of the export report "
            f"({report['model']!r}), whose settings the twin is built with; leave --model out"
        )
    io = verify.io_types(flatbuffer)
    return benchmark.float_twin_flatbuffer(
        report["model"],
        input_shape=io["input_shape"][1:],
        num_classes=io["output_shape"][-1],
        overrides=report.get("model_overrides"),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("Usage: python -m bireal_larq.benchmark MODEL.tflite [flags]")

    path = argv[1]
    output = FLAGS.json_output or os.path.splitext(path)[0] + ".benchmark.json"
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder) or os.path.isdir(output):
        # Checked before the timing, whose results would otherwise be lost.
        print(f"benchmark failed: cannot write {output!r}: "
              + ("it is a directory" if os.path.isdir(output) else f"{folder!r} does not exist")
              + "; valid: a file path in an existing directory", file=sys.stderr)
        return 1
    try:
        flatbuffer = read_flatbuffer(path)
        report = read_report(path) or {}
        name = FLAGS.model or report.get("model") or os.path.basename(path)
        timings, info = benchmark.host_latency(
            flatbuffer,
            model=name,
            max_threads=FLAGS.max_threads,
            warmup=FLAGS.warmup,
            runs=FLAGS.runs,
            backend=FLAGS.backend,
        )
        if FLAGS.compare_float:
            twin = _float_twin(path, flatbuffer, report, FLAGS.model)
            info["float_twin_size_bytes"] = len(twin)
            for n in range(1, FLAGS.max_threads + 1):
                timings.append(
                    benchmark.time_flatbuffer(
                        twin,
                        model=f"{name} (float twin)",
                        threads=n,
                        warmup=FLAGS.warmup,
                        runs=FLAGS.runs,
                        backend="default+xnnpack",
                    )
                )
        device = []
        if FLAGS.lce_benchmark_model:
            for n in range(1, FLAGS.max_threads + 1):
                timing, parsed = benchmark.run_lce_benchmark_model(
                    FLAGS.lce_benchmark_model,
                    path,
                    threads=n,
                    model=name,
                    # TFLite's benchmark tool: --num_runs is its minimum of timed runs
                    extra_args=(f"--num_runs={FLAGS.runs}", f"--warmup_runs={FLAGS.warmup}"),
                )
                timings.append(timing)
                device.append(parsed)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    table = benchmark.format_table(timings)
    print(table)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(
            {
                "tflite": os.path.abspath(path),
                **info,
                "timings": [t.to_dict() for t in timings],
                "lce_benchmark_model": device or None,
                "table": table,
            },
            f,
            indent=2,
        )
    print(f"\nJSON: {output}")
    return 0


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
