"""The benchmarks on the main stack next to the reference stack, interleaved, in one run each.

For each benchmark (``inference.py``, ``training.py``, ``input_pipeline.py`` in this folder) the
script runs the benchmark as a subprocess alternately with the reference and the main
interpreter, ``--rounds`` times (reference, main, reference, main, ...), so that the drifting
load of a shared machine affects both stacks alike. It reads each sub-run's JSON and reports, per
row of the benchmark and per stack, the best value over all sub-runs (interference only ever
slows a run down, so the best is the stack's own speed) and the median beside it, and the ratio
main / reference of the best values:

* latencies (``inference``, ms, lower is better): a ratio > 1 means the main stack is slower;
* throughputs (``training`` and ``input_pipeline``, images/s, higher is better): a ratio > 1
  means the main stack is faster.

Rows where the main stack is more than ``--threshold`` (5 %) slower are flagged "slower by X %"
(X: the latency ratio minus 1, or 1 minus the throughput ratio).

Every sub-run gets the environment of this process with ``TF_CPP_MIN_LOG_LEVEL=2``, the same
for both stacks; settings that change TensorFlow's speed (``TF_ENABLE_ONEDNN_OPTS``,
``TF_CPU_ALLOCATOR_USE_BFC``, ...) are recorded with the results. Each sub-run imports
``bireal_larq`` before TensorFlow, which selects Keras 2 on the main stack.

Command (2 rounds of one sub-run per stack for each benchmark: about 25-30 minutes on an idle
2-core x86-64 host, longer on a busy one. Building, tracing and converting the models takes the
reference stack two to three times as long as the main stack, so its sub-runs are the longer
ones: about 2 and 4 min for inference and training against 1.5 and 2.5 min; an input-pipeline
sub-run takes about 1.5 min, and the first one also generates the JPEGs). The script itself
needs only absl-py, so either interpreter can run it::

    .venv/bin/python benchmarks/stacks.py --main_python=.venv/bin/python \\
        --reference_python=.venv-reference/bin/python \\
        --output=benchmarks/results/stacks.json

Per sub-run, by default: ``inference.py --threads=1,2 --runs=50``; ``training.py --sizes=224,32
--batch=16 --steps=3 --rounds=2``; ``input_pipeline.py --num_images=2000 --cores=1
--repeats=3``. ``--benchmarks`` picks a subset; ``--inference_args``, ``--training_args`` and
``--input_pipeline_args`` pass further options to a benchmark (they come last, so they also
override the settings above).

Prints a markdown table per benchmark and writes the JSON (with every sub-run's own JSON) to
``--output`` and the markdown next to it (``.md``), updated after each benchmark.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable

from absl import app, flags

FLAGS = flags.FLAGS
BENCHMARKS = ("inference", "training", "input_pipeline")
STACKS = ("reference", "main")  # the order of the sub-runs in each round
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Environment variables recorded with the results: they can change what the sub-runs import
# or how fast TensorFlow runs (and the prefixes of the threading libraries' variables).
RECORDED_ENV = (
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_CPU_ALLOCATOR_USE_BFC",
    "TF_USE_LEGACY_KERAS",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_XLA_FLAGS",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONPATH",
)
RECORDED_ENV_PREFIXES = ("OMP_", "KMP_", "MKL_", "ONEDNN_", "DNNL_")
PINNED_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}

# Run by each interpreter: the versions of its stack, as the benchmarks see them (after
# `import bireal_larq`, which selects Keras 2 on the main stack).
VERSION_PROBE = """
import importlib, json, os, platform, sys
from importlib import metadata

import bireal_larq
import tensorflow as tf


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


keras_package = tf.keras.layers.Layer.__module__.split(".")[0]
try:
    from tensorflow.python.util import _pywrap_util_port

    onednn = bool(_pywrap_util_port.IsMklEnabled())
except (ImportError, AttributeError):
    onednn = None
print(json.dumps({
    "executable": sys.executable,
    "python": platform.python_version(),
    "tensorflow": tf.__version__,
    "keras": importlib.import_module(keras_package).__version__,
    "keras_package": keras_package,
    "tf_keras": version("tf-keras"),
    "larq": version("larq"),
    "larq_compute_engine": version("larq-compute-engine"),
    "larq_zoo": version("larq-zoo"),
    "numpy": version("numpy"),
    "bireal_larq": bireal_larq.__version__,
    "onednn": onednn,
}))
"""


def _define_flags() -> None:
    """The command-line flags (defined when run as a script, not when imported)."""
    flags.DEFINE_string("main_python", ".venv/bin/python", "Interpreter of the main stack.")
    flags.DEFINE_string(
        "reference_python", ".venv-reference/bin/python", "Interpreter of the reference stack."
    )
    flags.DEFINE_list("benchmarks", list(BENCHMARKS), f"Benchmarks to run, of {BENCHMARKS}.")
    flags.DEFINE_integer("rounds", 2, "Sub-runs per stack and benchmark, interleaved.")
    flags.DEFINE_float("threshold", 0.05, "Main-stack rows slower by more than this are flagged.")
    flags.DEFINE_string("output", "benchmarks/results/stacks.json", "JSON results (and .md).")
    flags.DEFINE_integer("timeout", 3600, "Seconds after which a sub-run counts as failed.")
    flags.DEFINE_list("inference_threads", ["1", "2"], "inference.py --threads.")
    flags.DEFINE_integer("inference_runs", 50, "inference.py --runs (timed runs per row).")
    flags.DEFINE_string("training_sizes", "224,32", "training.py --sizes.")
    flags.DEFINE_integer("training_batch", 16, "training.py --batch.")
    flags.DEFINE_integer("training_steps", 3, "training.py --steps (timed steps per round).")
    flags.DEFINE_integer("training_rounds", 2, "training.py --rounds (per sub-run).")
    flags.DEFINE_integer("input_pipeline_num_images", 2000, "input_pipeline.py --num_images.")
    flags.DEFINE_integer("input_pipeline_cores", 1, "input_pipeline.py --cores.")
    flags.DEFINE_integer("input_pipeline_repeats", 3, "input_pipeline.py --repeats.")
    for name in BENCHMARKS:
        flags.DEFINE_string(
            f"{name}_args", "", f"Further options of {name}.py, e.g. '--warmup=3' (shell syntax)."
        )


# ------------------------------------------------------------------------------------------
# Rows of the benchmarks' JSON results


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured quantity of a benchmark: a row of its comparison table."""

    label: str
    metric: str
    higher_is_better: bool


Samples = dict[Row, list[float]]


def _add(samples: Samples, row: Row, values: Iterable[float | None]) -> None:
    samples.setdefault(row, []).extend(float(v) for v in values if v is not None)


def inference_samples(result: dict) -> Samples:
    """``inference.py --output``: each row's median latency (ms) over the sub-run's runs."""
    samples: Samples = {}
    for timing in result["timings"]:
        n = timing["threads"]
        label = f"{timing['model']}, {n} thread{'s' * (n > 1)}"
        median = timing["median_ms"] if timing["median_ms"] is not None else timing["mean_ms"]
        _add(samples, Row(label, "median ms", higher_is_better=False), [median])
    return samples


def training_samples(result: dict) -> Samples:
    """``training.py --out``: images/s of each of the sub-run's rounds, per model and size."""
    samples: Samples = {}
    for entry in result["results"]:
        label = f"{entry['size']}x{entry['size']} {entry['model']}"
        _add(samples, Row(label, "images/s", higher_is_better=True), entry["samples"])
    return samples


# input_pipeline.py: the best pass by wall-clock and by CPU time, and the steady rate.
INPUT_PIPELINE_METRICS = (
    ("images_per_s", "images/s"),
    ("images_per_cpu_s", "images per CPU-s"),
    ("steady_images_per_cpu_s", "steady images per CPU-s"),
)


def input_pipeline_samples(result: dict) -> Samples:
    """``input_pipeline.py --output``: each variant's rates (images/s, per CPU-second)."""
    samples: Samples = {}
    for entry in result["rows"]:
        for key, metric in INPUT_PIPELINE_METRICS:
            _add(samples, Row(entry["variant"], metric, higher_is_better=True), [entry[key]])
    return samples


SAMPLERS: dict[str, Callable[[dict], Samples]] = {
    "inference": inference_samples,
    "training": training_samples,
    "input_pipeline": input_pipeline_samples,
}


# ------------------------------------------------------------------------------------------
# Comparison


def best_of(values: list[float], higher_is_better: bool) -> float | None:
    """The best value: the largest throughput or the smallest latency."""
    if not values:
        return None
    return max(values) if higher_is_better else min(values)


def slowdown(ratio: float, higher_is_better: bool) -> float:
    """How much slower the main stack is, as a fraction (negative: faster), from main / ref.

    Latencies: ``ratio - 1`` (1.10 is 10 % slower); throughputs: ``1 - ratio`` (0.90 is 10 %
    slower).
    """
    loss = 1.0 - ratio if higher_is_better else ratio - 1.0
    return round(loss, 9)  # 84 / 80 is 5 %, not 5.0000000000000044 %


def verdict(ratio: float | None, higher_is_better: bool, threshold: float) -> str:
    """The verdict on a row: slower / faster by X % beyond ``threshold``, else within it."""
    if ratio is None:
        return "not comparable"
    loss = slowdown(ratio, higher_is_better)
    if loss > threshold:
        return f"slower by {100 * loss:.1f} %"
    if loss < -threshold:
        return f"faster by {-100 * loss:.1f} %"
    return f"within {100 * threshold:g} %"


def compare(runs: dict[str, list[Samples]], threshold: float = 0.05) -> list[dict]:
    """Per row: each stack's best and median over all its samples, main / reference, verdict.

    Args:
        runs: for each stack ("reference", "main"), the samples of each of its sub-runs.
        threshold: a row whose main-stack result is slower by more than this fraction is
            flagged "slower by X %".

    Returns:
        One dict per row, in the order the rows first appear (reference runs first); a row
        that only one stack measured has ``None`` for the other stack and the ratio.
    """
    order: list[Row] = []
    merged: dict[str, Samples] = {}
    for stack in STACKS:
        merged[stack] = {}
        for samples in runs.get(stack, []):
            for row, values in samples.items():
                if row not in order:
                    order.append(row)
                merged[stack].setdefault(row, []).extend(values)
    table = []
    for row in order:
        entry: dict = {
            "label": row.label,
            "metric": row.metric,
            "higher_is_better": row.higher_is_better,
        }
        for stack in STACKS:
            values = merged[stack].get(row, [])
            entry[stack] = {
                "best": best_of(values, row.higher_is_better),
                "median": statistics.median(values) if values else None,
                "samples": values,
            }
        ref, main = entry["reference"]["best"], entry["main"]["best"]
        entry["main_over_reference"] = main / ref if ref and main is not None else None
        entry["slower"] = (
            entry["main_over_reference"] is not None
            and slowdown(entry["main_over_reference"], row.higher_is_better) > threshold
        )
        entry["verdict"] = verdict(entry["main_over_reference"], row.higher_is_better, threshold)
        table.append(entry)
    return table


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"


def render_table(rows: list[dict]) -> str:
    """The markdown comparison table of one benchmark, with what its ratios mean under it."""
    lines = [
        "| row | metric | reference best | reference median | main best | main median "
        "| main / reference | main vs reference |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r["main_over_reference"]
        cells = [
            r["label"],
            r["metric"],
            _number(r["reference"]["best"]),
            _number(r["reference"]["median"]),
            _number(r["main"]["best"]),
            _number(r["main"]["median"]),
            "-" if ratio is None else f"{ratio:.3f}",
            f"**{r['verdict']}**" if r["slower"] else r["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if any(not r["higher_is_better"] for r in rows):
        notes.append("latency: lower is better, main / reference > 1 means main is slower")
    if any(r["higher_is_better"] for r in rows):
        notes.append("throughput: higher is better, main / reference > 1 means main is faster")
    if notes:
        lines += ["", "Ratios compare the best values; " + "; ".join(notes) + "."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Sub-runs


def benchmark_args(name: str, settings: dict[str, object], extra: str = "") -> list[str]:
    """The options of one sub-run of benchmark ``name`` (without its output file)."""
    if name == "inference":
        args = [
            f"--threads={settings['inference_threads']}",
            f"--runs={settings['inference_runs']}",
        ]
    elif name == "training":
        args = [
            f"--sizes={settings['training_sizes']}",
            f"--batch={settings['training_batch']}",
            f"--steps={settings['training_steps']}",
            f"--rounds={settings['training_rounds']}",
        ]
    elif name == "input_pipeline":
        args = [
            f"--num_images={settings['input_pipeline_num_images']}",
            f"--cores={settings['input_pipeline_cores']}",
            f"--repeats={settings['input_pipeline_repeats']}",
        ]
    else:
        raise ValueError(f"benchmark={name!r} is invalid; valid: {list(BENCHMARKS)}")
    return args + shlex.split(extra)


def subrun_env() -> dict[str, str]:
    """This process's environment with the pinned variables: the same for both stacks."""
    return {**os.environ, **PINNED_ENV}


def recorded_env(env: dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` that can change TensorFlow's speed, and how TF reads them."""
    recorded = {
        k: v
        for k, v in sorted(env.items())
        if k in RECORDED_ENV or k.startswith(RECORDED_ENV_PREFIXES)
    }
    for name, unset in (
        ("TF_ENABLE_ONEDNN_OPTS", "unset: TensorFlow's default for this CPU"),
        ("TF_CPU_ALLOCATOR_USE_BFC", "unset: bireal_larq sets it to true"),
        ("TF_USE_LEGACY_KERAS", "unset: bireal_larq sets it to 1"),
    ):
        recorded.setdefault(name, unset)
    return recorded


def run_subprocess(command: list[str], env: dict[str, str], timeout: float) -> str:
    """Runs ``command`` in the repository; its stdout, or a RuntimeError with its stderr."""
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"`{shlex.join(command)}` took more than {timeout} s") from err
    if done.returncode != 0:
        raise RuntimeError(
            f"`{shlex.join(command)}` exited with {done.returncode}:\n{done.stderr[-4000:]}"
        )
    return done.stdout


def stack_versions(python: str, env: dict[str, str], timeout: float = 600) -> dict:
    """Python, TensorFlow, Keras (what ``tf.keras`` is), larq, ... of one interpreter."""
    out = run_subprocess([python, "-c", VERSION_PROBE], env, timeout)
    return json.loads(out.strip().splitlines()[-1])


def samples_by_stack(records: list[dict]) -> dict[str, list[Samples]]:
    """The samples of each stack's sub-runs, from the records of :func:`run_benchmark`."""
    runs: dict[str, list[Samples]] = {stack: [] for stack in STACKS}
    for record in records:
        samples: Samples = {}
        for entry in record["samples"]:
            row = Row(entry["label"], entry["metric"], entry["higher_is_better"])
            _add(samples, row, entry["values"])
        runs[record["stack"]].append(samples)
    return runs


def run_benchmark(
    name: str,
    pythons: dict[str, str],
    args: list[str],
    rounds: int,
    env: dict[str, str],
    timeout: float,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """``rounds`` sub-runs per stack, alternating reference and main; each sub-run's record.

    A record holds the stack, the round, the sub-run's seconds, its samples (one entry per
    :class:`Row`, with its values) and its whole JSON result.
    """
    script = os.path.join(HERE, f"{name}.py")
    output_flag = "--out" if name == "training" else "--output"
    records = []
    with tempfile.TemporaryDirectory(prefix=f"stacks_{name}_") as tmp:
        for round_index in range(1, rounds + 1):
            for stack in STACKS:
                output = os.path.join(tmp, f"{stack}_{round_index}.json")
                command = [pythons[stack], script, *args, f"{output_flag}={output}"]
                started = time.perf_counter()
                run_subprocess(command, env, timeout)
                seconds = time.perf_counter() - started
                with open(output, encoding="utf-8") as f:
                    result = json.load(f)
                records.append(
                    {
                        "stack": stack,
                        "round": round_index,
                        "seconds": round(seconds, 1),
                        "samples": [
                            {**dataclasses.asdict(row), "values": values}
                            for row, values in SAMPLERS[name](result).items()
                        ],
                        "result": result,
                    }
                )
                log(f"[{name}] round {round_index}/{rounds}, {stack}: {seconds:.0f} s")
    return records


# ------------------------------------------------------------------------------------------
# Report


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The host: CPU model, architecture, cores, OS, load average."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def render_header(report: dict) -> str:
    """Command, date, machine, environment and each stack's versions, in markdown."""
    m = report["machine"]
    env = ", ".join(
        f"{k}={v}" if not v.startswith("unset") else f"{k} {v}"
        for k, v in report["environment"].items()
    )
    lines = [
        "# Benchmarks: main stack vs reference stack",
        "",
        f"- Command: `{report['command']}`",
        f"- Date: {report['date']}"
        + (f" ({report['seconds'] / 60:.1f} min)" if "seconds" in report else ""),
        f"- Machine: {m['cpu']} ({m['machine']}), {m['cpu_count']} cores "
        f"({m['usable_cpus']} usable), {m['platform']}; load average at the start "
        f"{' / '.join(str(x) for x in m['load_average_start'])}"
        + (
            f", at the end {' / '.join(str(x) for x in m['load_average_end'])}"
            if "load_average_end" in m
            else ""
        ),
        f"- Environment of every sub-run (both stacks): {env}",
        f"- {report['rounds']} round(s) per benchmark, each one sub-run per stack in the order "
        f"{', '.join(STACKS)}; best = the best sub-run value (rounds of training.py count "
        "each), median beside it",
        "",
        "| stack | interpreter | Python | TensorFlow | Keras (tf.keras) | larq | LCE | larq-zoo "
        "| numpy | oneDNN |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stack in STACKS:
        v = report["stacks"][stack]
        onednn = {True: "on", False: "off", None: "?"}[v.get("onednn")]
        lines.append(
            f"| {stack} | {v['interpreter']} | {v['python']} | {v['tensorflow']} | "
            f"{v['keras_package']} {v['keras']} | {v['larq']} | {v['larq_compute_engine']} | "
            f"{v['larq_zoo']} | {v['numpy']} | {onednn} |"
        )
    return "\n".join(lines)


def render_benchmark(name: str, entry: dict) -> str:
    """One benchmark's section: its sub-run command, durations and comparison table."""
    durations = {
        stack: ", ".join(f"{r['seconds']:.0f}" for r in entry["runs"] if r["stack"] == stack)
        for stack in STACKS
    }
    return "\n".join(
        [
            f"## {name}",
            "",
            f"Each sub-run: `python benchmarks/{name}.py {shlex.join(entry['args'])}` "
            f"(seconds: reference {durations['reference']}; main {durations['main']}).",
            "",
            entry["table"],
        ]
    )


def render_markdown(report: dict) -> str:
    """The whole report: header, then one section per benchmark run so far."""
    parts = [render_header(report)]
    parts += [render_benchmark(n, e) for n, e in report["benchmarks"].items()]
    return "\n\n".join(parts) + "\n"


def write_report(report: dict, output: str) -> str:
    """Writes ``output`` (JSON) and its ``.md`` twin; returns the markdown's path."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    markdown = render_markdown(report)
    with open(output, "w", encoding="utf-8") as f:
        json.dump({**report, "markdown": markdown}, f, indent=2)
    md_path = os.path.splitext(output)[0] + ".md"
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown)
    return md_path


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.benchmarks) - set(BENCHMARKS))
    if unknown or not FLAGS.benchmarks:
        raise app.UsageError(f"--benchmarks={FLAGS.benchmarks} is invalid; valid: {BENCHMARKS}")
    if FLAGS.rounds < 1:
        raise app.UsageError(f"--rounds={FLAGS.rounds} is invalid; valid: an integer >= 1")
    pythons = {"reference": FLAGS.reference_python, "main": FLAGS.main_python}
    for stack, python in pythons.items():
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise app.UsageError(f"--{stack}_python={python!r} is not an executable file")
    pythons = {stack: os.path.abspath(p) for stack, p in pythons.items()}

    started = time.perf_counter()
    env = subrun_env()
    report: dict = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "environment": recorded_env(env),
        "rounds": FLAGS.rounds,
        "threshold": FLAGS.threshold,
        "stacks": {
            stack: {"interpreter": pythons[stack], **stack_versions(pythons[stack], env)}
            for stack in STACKS
        },
        "benchmarks": {},
    }
    settings = {
        name: getattr(FLAGS, name)
        for name in (
            "training_sizes",
            "training_batch",
            "training_steps",
            "training_rounds",
            "input_pipeline_num_images",
            "input_pipeline_cores",
            "input_pipeline_repeats",
            "inference_runs",
        )
    }
    settings["inference_threads"] = ",".join(FLAGS.inference_threads)
    print(render_header(report), flush=True)
    for name in [b for b in BENCHMARKS if b in FLAGS.benchmarks]:
        args = benchmark_args(name, settings, getattr(FLAGS, f"{name}_args"))
        runs = run_benchmark(
            name,
            pythons,
            args,
            FLAGS.rounds,
            env,
            FLAGS.timeout,
            log=lambda line: print(line, flush=True),
        )
        rows = compare(samples_by_stack(runs), FLAGS.threshold)
        report["benchmarks"][name] = {
            "args": args,
            "rows": rows,
            "table": render_table(rows),
            "runs": runs,
        }
        print("\n" + render_benchmark(name, report["benchmarks"][name]), flush=True)
        report["seconds"] = round(time.perf_counter() - started, 1)
        report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        md_path = write_report(report, FLAGS.output)
    print(f"\nJSON: {FLAGS.output}\nMarkdown: {md_path}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
