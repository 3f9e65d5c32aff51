"""benchmarks/stacks.py: rows of the benchmarks' JSON, best / median / ratio, the slower-by flag,
the markdown report, and one tiny run end to end (the same interpreter for both stacks).

No test asserts a speed: timings depend on the machine and its load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "stacks.py")


def _load_stacks():
    spec = importlib.util.spec_from_file_location("benchmark_stacks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stacks = _load_stacks()


# Results in the formats the benchmark scripts write (only the fields stacks.py reads, plus a
# few others to show they are ignored).
def _inference(zoo_ms: float, ours_ms: float, twin_ms: float) -> dict:
    def timing(model, threads, median, runtime="lce/indirect_bgemm"):
        return {"model": model, "runtime": runtime, "threads": threads, "runs": 50, "warmup": 5,
                "median_ms": median, "mean_ms": median + 1.0, "std_ms": 0.5,
                "min_ms": median - 1.0, "max_ms": median + 5.0, "p25_ms": median - 0.5,
                "p75_ms": median + 0.5, "size_bytes": 4182356}

    return {
        "host": {"machine": "x86_64", "processor": "", "cpu_count": 2},
        "versions": {"tensorflow": "2.15.1"},
        "timings": [
            timing("larq_zoo BiRealNet", 1, zoo_ms),
            timing("birealnet18", 1, ours_ms),
            timing("birealnet18", 2, ours_ms / 2),
            # a device row: no median, so its mean stands for it
            {**timing("birealnet18 float twin", 1, twin_ms + 7, "tflite/xnnpack"),
             "median_ms": None, "mean_ms": twin_ms},
        ],
        "targets": {},
        "seconds": 100.0,
    }


def _training(samples_224: list[float], samples_32: list[float]) -> dict:
    return {
        "args": {"sizes": "224,32", "rounds": len(samples_224)},
        "results": [
            {"size": 224, "model": "birealnet18 (bireal_larq)",
             "images_per_s": sorted(samples_224)[len(samples_224) // 2], "samples": samples_224},
            {"size": 32, "model": "birealnet18 (bireal_larq)",
             "images_per_s": sorted(samples_32)[len(samples_32) // 2], "samples": samples_32},
        ],
        "table": "",
    }


def _input_pipeline(rate_a: float, cpu_a: float, steady_a: float) -> dict:
    def row(variant, rate, cpu, steady):
        return {"variant": variant, "images": 1984, "seconds": 2.5, "images_per_s": rate,
                "images_per_s_per_core": rate, "a_over_this": 1.0, "images_per_cpu_s": cpu,
                "a_over_this_cpu": 1.0, "steady_images_per_cpu_s": steady,
                "a_over_this_steady": 1.0}

    return {
        "setup": "2000 JPEGs",
        "rows": [row("(a) pipeline", rate_a, cpu_a, steady_a), row("(b) decode", 780, 800, 850)],
        "a_over_b": 1.0,
        "markdown": "",
    }


def _by_label(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["label"], r["metric"]): r for r in rows}


def test_rows_of_each_benchmark_format():
    inference = stacks.inference_samples(_inference(30.0, 28.0, 80.0))
    assert {(r.label, r.metric, r.higher_is_better): v for r, v in inference.items()} == {
        ("larq_zoo BiRealNet, 1 thread", "median ms", False): [30.0],
        ("birealnet18, 1 thread", "median ms", False): [28.0],
        ("birealnet18, 2 threads", "median ms", False): [14.0],
        ("birealnet18 float twin, 1 thread", "median ms", False): [80.0],
    }
    training = stacks.training_samples(_training([8.0, 8.5, 4.7], [31.0, 30.0, 32.0]))
    assert {(r.label, r.metric, r.higher_is_better): v for r, v in training.items()} == {
        ("224x224 birealnet18 (bireal_larq)", "images/s", True): [8.0, 8.5, 4.7],
        ("32x32 birealnet18 (bireal_larq)", "images/s", True): [31.0, 30.0, 32.0],
    }
    pipeline = stacks.input_pipeline_samples(_input_pipeline(770.0, 800.0, 900.0))
    assert [(r.label, r.metric) for r in pipeline] == [
        ("(a) pipeline", "images/s"),
        ("(a) pipeline", "images per CPU-s"),
        ("(a) pipeline", "steady images per CPU-s"),
        ("(b) decode", "images/s"),
        ("(b) decode", "images per CPU-s"),
        ("(b) decode", "steady images per CPU-s"),
    ]
    assert list(pipeline.values())[:3] == [[770.0], [800.0], [900.0]]
    assert all(r.higher_is_better for r in pipeline)


def test_latency_best_median_ratio_and_slower_flag():
    # Two sub-runs per stack. zoo: main 10 % slower (flagged); birealnet18 1 thread: 3 % slower
    # (within 5 %); 2 threads: faster; the device row: 5 % exactly, not flagged.
    runs = {
        "reference": [stacks.inference_samples(_inference(30.0, 28.0, 80.0)),
                      stacks.inference_samples(_inference(36.0, 40.0, 90.0))],
        "main": [stacks.inference_samples(_inference(33.0, 28.84, 84.0)),
                 stacks.inference_samples(_inference(45.0, 30.0, 100.0))],
    }
    rows = _by_label(stacks.compare(runs, threshold=0.05))
    zoo = rows["larq_zoo BiRealNet, 1 thread", "median ms"]
    assert zoo["reference"]["best"] == 30.0 and zoo["main"]["best"] == 33.0  # lowest latency
    assert zoo["reference"]["median"] == 33.0 and zoo["main"]["median"] == 39.0
    assert zoo["reference"]["samples"] == [30.0, 36.0]
    assert zoo["main_over_reference"] == pytest.approx(1.1)
    assert zoo["slower"] and zoo["verdict"] == "slower by 10.0 %"
    one = rows["birealnet18, 1 thread", "median ms"]
    assert one["main_over_reference"] == pytest.approx(1.03)
    assert not one["slower"] and one["verdict"] == "within 5 %"
    two = rows["birealnet18, 2 threads", "median ms"]
    assert two["main_over_reference"] == pytest.approx(14.42 / 14.0)
    twin = rows["birealnet18 float twin, 1 thread", "median ms"]
    assert twin["main_over_reference"] == pytest.approx(1.05) and not twin["slower"]
    # a stricter threshold flags the 3 % row too
    rows = _by_label(stacks.compare(runs, threshold=0.02))
    assert rows["birealnet18, 1 thread", "median ms"]["verdict"] == "slower by 3.0 %"


def test_throughput_best_is_the_largest_and_lower_means_slower():
    runs = {
        "reference": [stacks.training_samples(_training([8.0, 10.0], [30.0, 31.0]))],
        "main": [stacks.training_samples(_training([9.2, 7.0], [34.0, 33.0]))],
    }
    rows = _by_label(stacks.compare(runs))
    big = rows["224x224 birealnet18 (bireal_larq)", "images/s"]
    assert big["reference"]["best"] == 10.0 and big["main"]["best"] == 9.2
    assert big["main_over_reference"] == pytest.approx(0.92)
    assert big["slower"] and big["verdict"] == "slower by 8.0 %"
    small = rows["32x32 birealnet18 (bireal_larq)", "images/s"]
    assert small["main_over_reference"] == pytest.approx(34.0 / 31.0)
    assert not small["slower"] and small["verdict"] == "faster by 9.7 %"

    runs = {
        "reference": [stacks.input_pipeline_samples(_input_pipeline(800.0, 800.0, 900.0))],
        "main": [stacks.input_pipeline_samples(_input_pipeline(780.0, 700.0, 960.0))],
    }
    rows = _by_label(stacks.compare(runs))
    assert rows["(a) pipeline", "images/s"]["verdict"] == "within 5 %"
    assert rows["(a) pipeline", "images per CPU-s"]["verdict"] == "slower by 12.5 %"
    assert rows["(a) pipeline", "steady images per CPU-s"]["verdict"] == "faster by 6.7 %"
    assert rows["(b) decode", "images/s"]["main_over_reference"] == 1.0


def test_a_row_of_one_stack_only_is_not_compared():
    ref = stacks.training_samples(_training([10.0], [30.0]))
    main = stacks.training_samples(_training([10.0], [30.0]))
    main[stacks.Row("64x64 new model", "images/s", True)] = [5.0]
    rows = stacks.compare({"reference": [ref], "main": [main]})
    assert [r["label"] for r in rows][-1] == "64x64 new model"
    assert rows[-1]["reference"] == {"best": None, "median": None, "samples": []}
    assert rows[-1]["main_over_reference"] is None and not rows[-1]["slower"]
    assert "| 64x64 new model | images/s | - | - | 5.00 | 5.00 | - | not comparable |" in (
        stacks.render_table(rows))


def test_markdown_table_flags_slower_rows_and_says_what_ratios_mean():
    runs = {
        "reference": [stacks.inference_samples(_inference(30.0, 28.0, 80.0))],
        "main": [stacks.inference_samples(_inference(33.0, 27.0, 80.0))],
    }
    table = stacks.render_table(stacks.compare(runs))
    lines = table.splitlines()
    assert lines[0].startswith("| row | metric | reference best | reference median | main best")
    assert (
        "| larq_zoo BiRealNet, 1 thread | median ms | 30.00 | 30.00 | 33.00 | 33.00 | 1.100 | "
        "**slower by 10.0 %** |"
    ) in lines
    assert (
        "| birealnet18, 1 thread | median ms | 28.00 | 28.00 | 27.00 | 27.00 | 0.964 | "
        "within 5 % |"
    ) in lines
    assert table.count("slower by") == 1
    assert "latency: lower is better, main / reference > 1 means main is slower" in table
    assert "throughput" not in table
    runs = {
        "reference": [stacks.training_samples(_training([10.0], [30.0]))],
        "main": [stacks.training_samples(_training([10.0], [30.0]))],
    }
    table = stacks.render_table(stacks.compare(runs))
    assert "throughput: higher is better, main / reference > 1 means main is faster" in table
    assert "slower by" not in table and table.count("within 5 %") == 2


def test_records_survive_json_and_give_the_same_comparison():
    records = [
        {"stack": stack, "round": 1, "seconds": 1.0, "samples": [
            {"label": r.label, "metric": r.metric, "higher_is_better": r.higher_is_better,
             "values": v} for r, v in stacks.training_samples(result).items()]}
        for stack, result in (("reference", _training([10.0, 9.0], [30.0, 31.0])),
                              ("main", _training([9.0, 8.0], [33.0, 31.0])))
    ]
    runs = stacks.samples_by_stack(json.loads(json.dumps(records)))
    assert [len(runs[s]) for s in stacks.STACKS] == [1, 1]
    rows = _by_label(stacks.compare(runs))
    assert rows["224x224 birealnet18 (bireal_larq)", "images/s"]["verdict"] == "slower by 10.0 %"


def test_sub_run_options_and_recorded_environment():
    settings = {"inference_threads": "1,2", "inference_runs": 50, "training_sizes": "224,32",
                "training_batch": 16, "training_steps": 3, "training_rounds": 2,
                "input_pipeline_num_images": 2000, "input_pipeline_cores": 1,
                "input_pipeline_repeats": 3}
    assert stacks.benchmark_args("inference", settings, "--warmup=2 --runs=5") == [
        "--threads=1,2", "--runs=50", "--warmup=2", "--runs=5"]  # the extra options come last
    assert stacks.benchmark_args("training", settings) == [
        "--sizes=224,32", "--batch=16", "--steps=3", "--rounds=2"]
    assert stacks.benchmark_args("input_pipeline", settings, "--image_dir='a b'") == [
        "--num_images=2000", "--cores=1", "--repeats=3", "--image_dir=a b"]
    with pytest.raises(ValueError, match="benchmark='export' is invalid"):
        stacks.benchmark_args("export", settings)

    env = stacks.recorded_env({"TF_ENABLE_ONEDNN_OPTS": "0", "OMP_NUM_THREADS": "2",
                               "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": "/root",
                               "TF_CLI_CONFIG_FILE": "x"})
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "0" and env["OMP_NUM_THREADS"] == "2"
    assert env["TF_USE_LEGACY_KERAS"].startswith("unset")
    assert "HOME" not in env and "TF_CLI_CONFIG_FILE" not in env
    assert stacks.recorded_env({})["TF_ENABLE_ONEDNN_OPTS"].startswith("unset")


def test_report_files_hold_header_and_tables(tmp_path):
    versions = {"python": "3.12.1", "tensorflow": "2.21.0", "keras": "2.21.0",
                "keras_package": "tf_keras", "larq": "0.14.0", "larq_compute_engine": "0.16.0",
                "larq_zoo": "2.4.0", "numpy": "1.26.4", "onednn": False}
    rows = stacks.compare({
        "reference": [stacks.input_pipeline_samples(_input_pipeline(800.0, 800.0, 900.0))],
        "main": [stacks.input_pipeline_samples(_input_pipeline(700.0, 800.0, 900.0))],
    })
    report = {
        "command": "python benchmarks/stacks.py --rounds=1",
        "date": "2026-01-02 03:04 UTC",
        "seconds": 90.0,
        "machine": {"cpu": "Some CPU", "machine": "x86_64", "cpu_count": 2, "usable_cpus": 2,
                    "platform": "Linux", "load_average_start": [1.0, 2.0, 3.0]},
        "environment": {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"},
        "rounds": 1,
        "stacks": {"reference": {**versions, "interpreter": "/ref/python", "python": "3.11.7",
                                 "tensorflow": "2.15.1", "keras": "2.15.1", "onednn": True},
                   "main": {**versions, "interpreter": "/main/python"}},
        "benchmarks": {"input_pipeline": {
            "args": ["--num_images=24", "--cores=1"], "rows": rows,
            "table": stacks.render_table(rows),
            "runs": [{"stack": "reference", "seconds": 12.0}, {"stack": "main", "seconds": 11.0}],
        }},
    }
    md_path = stacks.write_report(report, str(tmp_path / "out" / "stacks.json"))
    assert md_path == str(tmp_path / "out" / "stacks.md")
    markdown = (tmp_path / "out" / "stacks.md").read_text()
    saved = json.loads((tmp_path / "out" / "stacks.json").read_text())
    assert saved["markdown"] == markdown and saved["rounds"] == 1
    assert "- Command: `python benchmarks/stacks.py --rounds=1`" in markdown
    assert "- Date: 2026-01-02 03:04 UTC (1.5 min)" in markdown
    assert "Some CPU (x86_64), 2 cores (2 usable)" in markdown
    assert "TF_ENABLE_ONEDNN_OPTS=0" in markdown
    assert "| reference | /ref/python | 3.11.7 | 2.15.1 | tf_keras 2.15.1 |" in markdown
    assert "| main | /main/python | 3.12.1 | 2.21.0 | tf_keras 2.21.0 |" in markdown
    assert markdown.count("| off |") == 1 and markdown.count("| on |") == 1
    assert "## input_pipeline" in markdown
    assert (
        "`python benchmarks/input_pipeline.py --num_images=24 --cores=1` (seconds: "
        "reference 12; main 11)"
    ) in markdown
    assert "**slower by 12.5 %**" in markdown


def test_invalid_flags_are_refused_before_any_sub_run(tmp_path):
    done = subprocess.run(
        [sys.executable, SCRIPT, "--benchmarks=inference,export", f"--main_python={sys.executable}",
         f"--reference_python={sys.executable}", f"--output={tmp_path / 'x.json'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0 and "--benchmarks=['inference', 'export'] is invalid" in (
        done.stderr)
    done = subprocess.run(
        [sys.executable, SCRIPT, f"--main_python={tmp_path / 'nope'}",
         f"--reference_python={sys.executable}", f"--output={tmp_path / 'x.json'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0 and "--main_python=" in done.stderr
    assert "is not an executable file" in done.stderr
    assert not (tmp_path / "x.json").exists()


def _env_without_keras_choice() -> dict[str, str]:
    """The tests' environment without TF_USE_LEGACY_KERAS (conftest.py sets it): a benchmark
    script must select Keras 2 itself, by importing bireal_larq before TensorFlow."""
    return {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}


def test_training_benchmark_imports_bireal_larq_before_larq_zoo(tmp_path):
    """On the main stack larq_zoo (larq) fails to import unless Keras 2 was selected first;
    --table_from imports everything and renders a stored result without measuring."""
    saved = tmp_path / "training.json"
    saved.write_text(json.dumps(_training([8.0, 9.0], [30.0, 31.0])))
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "training.py"),
         f"--table_from={saved}"],
        env={**_env_without_keras_choice(), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| 224x224 | birealnet18 (bireal_larq) | 9.0 | 8.5 |" in done.stdout
    assert json.loads(saved.read_text())["table"] in done.stdout


def test_stacks_runs_one_benchmark_end_to_end(tmp_path):
    """The input-pipeline benchmark on a few tiny images, one round, this interpreter standing
    for both stacks: two sub-runs in order, every row measured by both, reports written."""
    out = tmp_path / "results" / "stacks.json"
    done = subprocess.run(
        [sys.executable, SCRIPT, f"--main_python={sys.executable}",
         f"--reference_python={sys.executable}", "--benchmarks=input_pipeline", "--rounds=1",
         "--input_pipeline_num_images=24", "--input_pipeline_repeats=1",
         "--input_pipeline_args=--num_classes=2 --batch_size=4 --image_size=32 "
         f"--image_dir={tmp_path / 'jpegs'}", f"--output={out}"],
        env={**_env_without_keras_choice(), "TF_CPP_MIN_LOG_LEVEL": "0"},  # pinned to 2
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["benchmarks"]) == ["input_pipeline"]
    entry = result["benchmarks"]["input_pipeline"]
    assert [(r["stack"], r["round"]) for r in entry["runs"]] == [("reference", 1), ("main", 1)]
    assert all(r["result"]["rows"][0]["images"] == 24 for r in entry["runs"])
    assert len(entry["rows"]) == 4 * 3  # 4 variants x 3 rates
    for row in entry["rows"]:
        for stack in ("reference", "main"):
            assert len(row[stack]["samples"]) == 1 and row[stack]["best"] > 0
        assert row["main_over_reference"] == pytest.approx(
            row["main"]["best"] / row["reference"]["best"])
    assert result["environment"]["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert result["environment"]["TF_USE_LEGACY_KERAS"].startswith("unset")
    python = ".".join(str(n) for n in sys.version_info[:3])
    for stack in ("reference", "main"):
        assert result["stacks"][stack]["python"] == python
        assert result["stacks"][stack]["interpreter"] == os.path.abspath(sys.executable)
        assert result["stacks"][stack]["tensorflow"] and result["stacks"][stack]["keras"]
    markdown = (tmp_path / "results" / "stacks.md").read_text()
    assert markdown == result["markdown"]
    assert "| (a) bireal_larq training pipeline" in markdown and "## input_pipeline" in markdown
    assert "[input_pipeline] round 1/1, main:" in done.stdout
