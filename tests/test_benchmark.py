"""Latency tooling: the lce_benchmark_model parser, the binary runner, host timing, the CLI.

No test asserts a speed: timings depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import os
import stat

import larq as lq
import pytest
import tensorflow as tf

from bireal_larq import benchmark, export

# The output of lce_benchmark_model (TFLite's benchmark tool with LCE's ops) for a BiRealNet
# flatbuffer, 1 thread, in the tool's format: a warm-up run, the timed run, then the summary.
SAMPLE_OUTPUT = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
Graph: [/home/pi/birealnet18.tflite]
#threads used for CPU inference: [1]
Loaded model /home/pi/birealnet18.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 4.18236
Initialized session in 3.512ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
count=6 first=92118 curr=85703 min=85422 max=92118 avg=86678.3 std=2426

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
count=50 first=85611 curr=85390 min=85104 max=86523 avg=85412.6 std=251

Inference timings in us: Init: 3512, First inference: 92118, Warmup (avg): 86678.3, \
Inference (avg): 85412.6
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE \
to the actual memory footprint of the model at runtime. Take the information at your own risk.
Memory footprint delta from the start of the tool (MB): init=5.41016 overall=16.3242
"""


def test_parser_reads_the_recorded_sample():
    parsed = benchmark.parse_lce_benchmark_output(SAMPLE_OUTPUT)
    assert parsed["threads"] == 1
    assert parsed["model_size_mb"] == pytest.approx(4.18236)
    assert parsed["warmup"]["count"] == 6
    run = parsed["inference"]
    assert run["count"] == 50
    assert run["avg"] == pytest.approx(85.4126)
    assert run["std"] == pytest.approx(0.251)
    assert (run["min"], run["max"]) == (pytest.approx(85.104), pytest.approx(86.523))
    assert parsed["summary_ms"]["Inference (avg)"] == pytest.approx(85.4126)
    assert parsed["summary_ms"]["First inference"] == pytest.approx(92.118)
    assert parsed["summary_ms"]["Init"] == pytest.approx(3.512)


def test_parser_rejects_other_output():
    with pytest.raises(ValueError, match="No timings found.*Inference timings in us"):
        benchmark.parse_lce_benchmark_output("Segmentation fault\n")
    with pytest.raises(ValueError, match="No timings found"):
        benchmark.parse_lce_benchmark_output("count=3 avg=1\n")  # no summary line


def _fake_binary(tmp_path, body: str) -> str:
    path = tmp_path / "lce_benchmark_model"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _tiny_tflite(tmp_path, report: dict | None = None) -> str:
    x = tf.keras.Input((8, 8, 3), name="image")
    y = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign",
        use_bias=False,
        name="conv",
    )(x)
    y = tf.keras.layers.GlobalAveragePooling2D()(y)
    y = tf.keras.layers.Dense(3, activation="softmax")(y)
    path = str(tmp_path / "tiny.tflite")
    with open(path, "wb") as f:
        f.write(export.convert(tf.keras.Model(x, y)))
    if report is not None:
        with open(export.report_path(path), "w") as f:
            json.dump(report, f)
    return path


def test_runs_a_fake_benchmark_binary_and_parses_it(tmp_path):
    # The fake checks its arguments like the real tool would, then prints the sample.
    sample = tmp_path / "sample.txt"
    sample.write_text(SAMPLE_OUTPUT.replace("Num threads: [1]", "Num threads: [2]"))
    binary = _fake_binary(
        tmp_path,
        'case "$1" in --graph=*) ;; *) echo "bad args $*" >&2; exit 2;; esac\n'
        '[ "$2" = "--num_threads=2" ] || { echo "bad threads $2" >&2; exit 2; }\n'
        f'cat "{sample}"\n',
    )
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x" * 100)
    timing, parsed = benchmark.run_lce_benchmark_model(binary, str(model), threads=2, model="m")
    assert timing.runtime == "lce_benchmark_model" and timing.threads == 2
    assert timing.mean_ms == pytest.approx(85.4126) and timing.median_ms is None
    assert timing.runs == 50 and timing.warmup == 6 and timing.size_bytes == 100
    assert "| m | lce_benchmark_model | 2 | - |" in benchmark.format_table([timing])


def test_benchmark_binary_failures_are_explained(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="binary .* not found"):
        benchmark.run_lce_benchmark_model(str(tmp_path / "nope"), str(model))
    failing = _fake_binary(
        tmp_path, 'echo "ERROR: Op type not registered LceBconv2d" >&2\nexit 1\n'
    )
    with pytest.raises(RuntimeError, match="(?s)exited with 1.*LceBconv2d"):
        benchmark.run_lce_benchmark_model(failing, str(model))
    with pytest.raises(FileNotFoundError, match="TFLite model"):
        benchmark.run_lce_benchmark_model(failing, str(tmp_path / "missing.tflite"))


def test_backend_names_map_to_interpreter_options():
    assert benchmark.BACKENDS == (
        "default", "indirect_bgemm", "default+xnnpack", "indirect_bgemm+xnnpack"
    )
    assert benchmark.interpreter_options("default") == {
        "use_indirect_bgemm": False, "use_xnnpack": False
    }
    assert benchmark.interpreter_options("indirect_bgemm+xnnpack") == {
        "use_indirect_bgemm": True, "use_xnnpack": True
    }
    with pytest.raises(ValueError, match=r"backend='xnnpack' is invalid; valid: \['default'"):
        benchmark.interpreter_options("xnnpack")
    assert export.default_backend() in benchmark.BACKENDS


def test_runtime_label_tells_lce_from_plain_tflite(tmp_path):
    lce_model = open(_tiny_tflite(tmp_path), "rb").read()
    x = tf.keras.Input((4,))
    plain = tf.lite.TFLiteConverter.from_keras_model(
        tf.keras.Model(x, tf.keras.layers.Dense(2)(x))
    ).convert()
    assert benchmark.has_lce_ops(lce_model) and not benchmark.has_lce_ops(plain)
    assert benchmark.runtime_label(lce_model, "default+xnnpack") == "lce/default+xnnpack"
    assert benchmark.runtime_label(plain, "default+xnnpack") == "tflite/xnnpack"
    assert benchmark.runtime_label(plain, "indirect_bgemm") == "tflite"


def test_host_latency_shapes_and_backend_choice(tmp_path):
    flatbuffer = open(_tiny_tflite(tmp_path), "rb").read()
    timings, info = benchmark.host_latency(flatbuffer, model="tiny", max_threads=2, runs=3)
    assert [t.threads for t in timings] == [1, 2]
    assert info["backend"] in benchmark.BACKENDS
    assert set(info["backend_probe_ms"]) == set(benchmark.BACKENDS)
    assert info["backend"] == min(info["backend_probe_ms"], key=info["backend_probe_ms"].get)
    for t in timings:
        assert t.runtime == f"lce/{info['backend']}" and t.runs == 3
        assert 0 < t.min_ms <= t.median_ms <= t.max_ms and math.isfinite(t.std_ms)
    table = benchmark.format_table(timings)
    assert table.count("\n") == 3 and "| tiny | lce/" in table
    with pytest.raises(ValueError, match="backend='fast' is invalid"):
        benchmark.host_latency(flatbuffer, backend="fast")
    with pytest.raises(ValueError, match="runs=1 is invalid"):
        benchmark.time_flatbuffer(flatbuffer, runs=1)


def test_cli_table_json_float_twin_and_device_binary(tmp_path, capsys):
    from bireal_larq.benchmark import __main__ as cli

    # The report names a registered model so that --compare_float can rebuild its twin.
    path = _tiny_tflite(
        tmp_path, {"model": "birealnet18_small", "input_shape": [32, 32, 3], "num_classes": 10}
    )
    # --runs / --warmup reach the device tool as its own flags
    binary = _fake_binary(
        tmp_path,
        'case "$*" in *--num_runs=3*--warmup_runs=1*) ;; *) echo "args: $*" >&2; exit 2;; esac\n'
        f"cat <<'EOF'\n{SAMPLE_OUTPUT}EOF\n",
    )
    argv = [
        "benchmark",
        path,
        "--runs=3",
        "--warmup=1",
        "--backend=indirect_bgemm",
        "--compare_float",
        f"--lce_benchmark_model={binary}",
    ]
    cli.FLAGS.unparse_flags()
    cli.FLAGS(argv)
    try:
        assert cli.main(argv[:2]) == 0
    finally:
        cli.FLAGS.unparse_flags()
    out = capsys.readouterr().out
    assert "| birealnet18_small | lce/indirect_bgemm | 1 |" in out
    assert "| birealnet18_small (float twin) | tflite/xnnpack | 1 |" in out
    assert "| birealnet18_small | lce_benchmark_model | 1 | - |" in out
    result = json.loads((tmp_path / "tiny.benchmark.json").read_text())
    assert result["backend"] == "indirect_bgemm"
    assert len(result["timings"]) == 3 and result["float_twin_size_bytes"] > 0
    assert result["lce_benchmark_model"][0]["inference"]["count"] == 50


def test_float_twin_takes_its_shapes_from_the_file_and_its_settings_from_the_report(tmp_path):
    from bireal_larq.benchmark import __main__ as cli
    from bireal_larq.export import verify

    # The report's shape is wrong on purpose: the file (8x8x3 in, 3 classes) decides.
    report = {"model": "birealnet18_small", "input_shape": [32, 32, 3], "num_classes": 10,
              "model_overrides": {"base_filters": 8}}
    path = _tiny_tflite(tmp_path, report)
    twin = cli._float_twin(path, open(path, "rb").read(), report)
    io = verify.io_types(twin)
    assert io["input_shape"] == [1, 8, 8, 3] and io["output_shape"] == [1, 3]
    # the width comes from the report: 8 base filters, about 0.7 MB of float weights (the
    # default 64 would be about 45 MB)
    assert len(twin) < 2_000_000


def test_cli_errors(tmp_path, capsys):
    from bireal_larq.benchmark import __main__ as cli

    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a model at all")
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["benchmark", "--compare_float"])
    try:
        assert cli.main(["benchmark", str(bogus)]) == 1
        assert "not a TFLite flatbuffer" in capsys.readouterr().err
        path = _tiny_tflite(tmp_path)
        assert cli.main(["benchmark", path]) == 1
        assert "tiny.json' is missing; export the model" in capsys.readouterr().err
        path = _tiny_tflite(tmp_path, {"model": "birealnet18_small"})
        cli.FLAGS(["benchmark", "--compare_float", "--model=birealnet18"])
        assert cli.main(["benchmark", path]) == 1
        assert "--model='birealnet18' differs from the model of the export report" in (
            capsys.readouterr().err)
        # An output that cannot be written is refused before the timing, not after it.
        cli.FLAGS.unparse_flags()
        cli.FLAGS(["benchmark", f"--json_output={tmp_path / 'nodir' / 'x.json'}"])
        assert cli.main(["benchmark", path]) == 1
        err = capsys.readouterr()
        assert "nodir' does not exist" in err.err and "median ms" not in err.out
    finally:
        cli.FLAGS.unparse_flags()
    assert not os.path.exists(tmp_path / "bogus.benchmark.json")


def test_interleaved_timing_gives_one_row_per_config(tmp_path):
    flatbuffer = open(_tiny_tflite(tmp_path), "rb").read()
    configs = [
        benchmark.Config("a", flatbuffer, threads=1, backend="default"),
        benchmark.Config("a", flatbuffer, threads=2),
        benchmark.Config("a", flatbuffer, threads=1, backend="indirect_bgemm"),
    ]
    timings = benchmark.time_interleaved(configs, warmup=1, runs=4)
    assert [(t.model, t.runtime, t.threads) for t in timings] == [
        ("a", "lce/default", 1),
        ("a", "lce/indirect_bgemm+xnnpack", 2),
        ("a", "lce/indirect_bgemm", 1),
    ]
    assert all(t.runs == 4 and t.size_bytes == len(flatbuffer) for t in timings)
    with pytest.raises(ValueError, match="No configurations"):
        benchmark.time_interleaved([])
    with pytest.raises(ValueError, match="backend='fast' is invalid"):
        benchmark.time_interleaved([benchmark.Config("a", flatbuffer, backend="fast")])


def test_input_pipeline_benchmark_runs_and_writes_its_table(tmp_path):
    """benchmarks/input_pipeline.py, whose table is in docs/benchmarks.md, on a few tiny passes:
    every variant makes full and half passes and the JSON holds the per-pass and steady
    ratios."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, os.path.join(root, "benchmarks", "input_pipeline.py"),
         "--num_images=24", "--num_classes=2", "--batch_size=4", "--image_size=32",
         "--repeats=1", f"--image_dir={tmp_path / 'jpegs'}", f"--output={out}"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [row["images"] for row in result["rows"]] == [24, 24, 24, 24]
    for key in ("a_over_b", "a_over_c", "a_over_b_cpu", "a_over_b_steady", "a_over_c_steady"):
        assert math.isfinite(result[key]) and result[key] > 0
    assert "(a) / this (steady)" in result["markdown"]
    # the half passes read links to the first half of the generated files
    half = tmp_path / "jpegs_half" / "train"
    assert sum(len(files) for _, _, files in os.walk(half)) == 12
