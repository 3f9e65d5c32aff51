"""The main job end to end on the embedded default (``make demo``).

    python -m bireal_larq.demo --output_dir=runs/demo

Prepares Fashion-MNIST offline, trains a small Bi-Real Net on it (the experiment
``demo_fashion_mnist``), evaluates it, exports it to LCE with the binary check and
verification on real test images, benchmarks it against its real-valued twin, and writes
``OUTPUT_DIR/report.md``. Each step is the project's own command, run as a subprocess with its
output streamed to the console; the report lists those exact commands so every number in it
can be redone one step at a time. Rerunning resumes: training picks up where it stopped and
finished steps are reused only when their outputs are newer than the training run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from absl import app, flags

from bireal_larq.cli import parser_for
from bireal_larq.export import read_report

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_string(
    "output_dir", "runs/demo", "Where the run, the model and the report go.", flag_values=FLAGS
)
flags.DEFINE_string(
    "experiment", "demo_fashion_mnist", "The training experiment to run.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "verify_samples", 10000, "Test images the LCE model is verified on.", lower_bound=0,
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "benchmark_runs", 20, "Timed inference runs per configuration (at least 2: the benchmark "
    "reports a spread).", lower_bound=2, flag_values=FLAGS,
)
flags.DEFINE_integer(
    "steps_per_epoch", None, "Cap on training steps (smoke runs).", lower_bound=1,
    flag_values=FLAGS,
)

DATASET = "fashion_mnist"


def _step(title: str, args: list[str], log: list[dict]) -> None:
    """Runs one project command, streaming its output; stops the demo when it fails."""
    command = [sys.executable, "-m", *args]
    shown = "python -m " + " ".join(shlex.quote(a) for a in args)
    print(f"\n=== {title}\n$ {shown}", flush=True)
    start = time.time()
    done = subprocess.run(command, check=False)
    seconds = time.time() - start
    log.append({"title": title, "command": shown, "seconds": seconds, "rc": done.returncode})
    if done.returncode != 0:
        sys.exit(f"demo: step '{title}' failed (exit {done.returncode}): {shown}")
    print(f"=== {title}: done in {seconds:.0f} s", flush=True)


def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f} %"


def write_report(out: str, log: list[dict]) -> str:
    """Gathers the JSON outputs of the steps into ``out/report.md``."""
    run_dir = os.path.join(out, "train")
    summary = _read(os.path.join(run_dir, "summary.json"))
    evaluation = _read(os.path.join(run_dir, f"eval_{DATASET}.json"))
    export = read_report(os.path.join(out, "model.tflite")) or {}
    bench = _read(os.path.join(out, "benchmark.json"))
    verification = export.get("verification") or {}
    ops = export.get("op_table", {})
    lines = [
        "# bireal_larq demo report",
        "",
        f"Model `{summary['model']}` (experiment `{summary.get('experiment')}`) trained on "
        f"Fashion-MNIST, exported to Larq Compute Engine. Generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "",
        "## Numbers",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| Keras model, test top-1 / top-5 ({evaluation.get('examples', '?')} images) | "
        f"{_pct(evaluation.get('top1'))} / {_pct(evaluation.get('top5'))} |",
        f"| LCE model, test top-1 ({verification.get('samples', '?')} images) | "
        f"{_pct(verification.get('lce_top1_accuracy'))} (Keras on the same images: "
        f"{_pct(verification.get('keras_top1_accuracy'))}) |",
        f"| top-1 agreement Keras vs LCE | {_pct(verification.get('top1_agreement'))} |",
        f"| max abs difference of the softmax outputs | "
        f"{verification.get('max_output_difference', 'n/a')} |",
        f"| binary convs in Keras / LceBconv2d in the flatbuffer | "
        f"{export.get('binary_layers')} / {export.get('lce_bconv2d_ops')} |",
        f"| flatbuffer size | {export.get('file_size_bytes', 0) / 1e6:.3f} MB |",
        f"| training | {summary.get('epochs')} epoch(s), {summary.get('train_time_s', 0) / 60:.1f} "
        f"min, {summary.get('train_images_per_s', 0):.0f} images/s |",
        "",
        "Flatbuffer ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())),
        "",
        "## Inference latency on this host (LCE interpreter vs the float twin with XNNPACK)",
        "",
        bench.get("table", "(no table)"),
        "",
        "## Training curves",
        "",
        "![training curves](train/curves.png)",
        "",
        "## Commands (each step can be redone on its own)",
        "",
    ]
    data_dir = os.environ.get("TFDS_DATA_DIR")
    if data_dir:
        lines += [
            "The prepared dataset was read from the TFDS data dir of this run (`make demo` sets "
            "it); set it the same way before redoing a step:",
            "",
            f"    export TFDS_DATA_DIR={shlex.quote(data_dir)}",
            "",
        ]
    for entry in log:
        lines += [
            f"{entry['title']} ({entry['seconds']:.0f} s):",
            "",
            "    " + entry["command"],
            "",
        ]
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def main(argv) -> None:
    del argv
    out = FLAGS.output_dir
    os.makedirs(out, exist_ok=True)
    run_dir = os.path.join(out, "train")
    tflite = os.path.join(out, "model.tflite")
    log: list[dict] = []
    start = time.time()

    _step(
        "Prepare Fashion-MNIST (offline, once)",
        ["bireal_larq.prepare_data", f"--dataset={DATASET}"],
        log,
    )
    train = ["bireal_larq.train", f"--experiment={FLAGS.experiment}", f"--output_dir={run_dir}"]
    if FLAGS.steps_per_epoch is not None:
        train.append(f"--steps_per_epoch={FLAGS.steps_per_epoch}")
    _step("Train", train, log)
    _step(
        "Evaluate the Keras model on the test set",
        ["bireal_larq.evaluate", f"--checkpoint={run_dir}", f"--dataset={DATASET}"],
        log,
    )
    _step(
        "Export to LCE, check every binary conv is fused, verify on test images",
        [
            "bireal_larq.export",
            f"--checkpoint={run_dir}",
            f"--output={tflite}",
            f"--verify_dataset={DATASET}",
            f"--verify_samples={FLAGS.verify_samples}",
        ],
        log,
    )
    _step(
        "Benchmark the LCE model against its real-valued twin (XNNPACK)",
        [
            "bireal_larq.benchmark",
            tflite,
            "--compare_float",
            "--max_threads=2",
            f"--runs={FLAGS.benchmark_runs}",
            f"--json_output={os.path.join(out, 'benchmark.json')}",
        ],
        log,
    )
    path = write_report(out, log)
    print(f"\nDemo finished in {(time.time() - start) / 60:.1f} min. Report: {path}", flush=True)


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    app.run(main, flags_parser=PARSER)


if __name__ == "__main__":
    run()
