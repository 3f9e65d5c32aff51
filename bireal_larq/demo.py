"""The main job end to end on the embedded default (``make demo``).

    python -m bireal_larq.demo --output_dir=runs/demo

Prepares Fashion-MNIST offline, trains a small Bi-Real Net on it (the experiment
``demo_fashion_mnist``), evaluates it, exports it to LCE with the binary check and
verification on real test images, benchmarks it against its real-valued twin, and writes
``OUTPUT_DIR/report.md``. Each step is the project's own command, run as a subprocess with its
output streamed to the console; the report lists those exact commands so every number in it
can be redone one step at a time.

Rerunning the same command resumes: ``OUTPUT_DIR/steps.json`` records each finished step
(its command, time and outputs), and a step is reused when it finished with the same command,
its outputs are still there and every step before it was reused too; from the first step that
runs again on, every step runs (a killed training run resumes where it stopped, see
:func:`bireal_larq.training.run_training`). Deleting ``steps.json`` redoes every step.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from absl import flags

from bireal_larq import cli
from bireal_larq.cli import parser_for
from bireal_larq.export import read_report
from bireal_larq.utils import atomic_path

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


STEPS = "steps.json"  # the finished steps of OUTPUT_DIR, to resume


class _Steps:
    """The demo's steps in order, each run or reused from ``OUTPUT_DIR/steps.json``."""

    def __init__(self, out: str):
        self.path = os.path.join(out, STEPS)
        self.log: list[dict] = []  # this run's steps, for the report
        self.reusing = True  # until the first step that runs
        try:
            with open(self.path, encoding="utf-8") as f:
                self.recorded: dict[str, dict] = json.load(f)
            if not isinstance(self.recorded, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            self.recorded = {}
        except (OSError, ValueError) as err:  # damaged: redo everything
            print(f"demo: {self.path} is unreadable ({err}); every step runs again", flush=True)
            self.recorded = {}

    def _save(self) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.recorded, f, indent=2)

    def run(
        self, title: str, args: list[str], outputs: tuple[str, ...] = (), always: bool = False
    ) -> None:
        """Runs one project command, streaming its output, unless it can be reused; stops the
        demo when it fails. ``always``: a step that checks its own outputs and is cheap when
        they are there (the offline data preparation); it runs every time, and the steps
        after it can still be reused."""
        shown = "python -m " + " ".join(shlex.quote(a) for a in args)
        entry = self.recorded.get(title)
        if (
            not always
            and self.reusing
            and isinstance(entry, dict)
            and entry.get("command") == shown
            and all(os.path.exists(p) for p in outputs)
        ):
            self.log.append({**entry, "title": title, "reused": True})
            print(f"\n=== {title}: finished earlier ({entry.get('finished', '?')}), reused\n"
                  f"$ {shown}", flush=True)
            return
        if not always:
            if self.reusing and any(e["reused"] for e in self.log):
                print(f"\ndemo: resuming at step '{title}' (delete {self.path} to redo every "
                      "step)", flush=True)
            self.reusing = False
        # This step and every later one are redone: forget their records first, so that a
        # demo killed from here on does not reuse what is redone.
        titles = list(self.recorded)
        if title in titles and not always:
            for stale in titles[titles.index(title):]:
                del self.recorded[stale]
            self._save()
        print(f"\n=== {title}\n$ {shown}", flush=True)
        start = time.time()
        done = subprocess.run([sys.executable, "-m", *args], check=False)
        seconds = time.time() - start
        if done.returncode != 0:
            cli.fail(done.returncode if done.returncode > 0 else 1,
                     f"demo: step '{title}' failed (exit {done.returncode}); its message is "
                     f"above. Fix the cause and run the demo again: it resumes at this step. "
                     f"The step alone: {shown}")
        entry = {
            "command": shown,
            "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "outputs": list(outputs),
        }
        self.recorded[title] = entry
        self._save()
        self.log.append({**entry, "title": title, "reused": False})
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
        when = " (reused from an earlier run)" if entry.get("reused") else ""
        lines += [
            f"{entry['title']} ({entry['seconds']:.0f} s{when}):",
            "",
            "    " + entry["command"],
            "",
        ]
    path = os.path.join(out, "report.md")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def main(argv) -> None:
    del argv
    out = FLAGS.output_dir
    os.makedirs(out, exist_ok=True)
    run_dir = os.path.join(out, "train")
    tflite = os.path.join(out, "model.tflite")
    steps = _Steps(out)
    start = time.time()

    steps.run(
        "Prepare Fashion-MNIST (offline, once)",
        ["bireal_larq.prepare_data", f"--dataset={DATASET}"],
        always=True,
    )
    train = ["bireal_larq.train", f"--experiment={FLAGS.experiment}", f"--output_dir={run_dir}"]
    if FLAGS.steps_per_epoch is not None:
        train.append(f"--steps_per_epoch={FLAGS.steps_per_epoch}")
    steps.run("Train", train, outputs=(os.path.join(run_dir, "summary.json"),))
    steps.run(
        "Evaluate the Keras model on the test set",
        ["bireal_larq.evaluate", f"--checkpoint={run_dir}", f"--dataset={DATASET}"],
        outputs=(os.path.join(run_dir, f"eval_{DATASET}.json"),),
    )
    steps.run(
        "Export to LCE, check every binary conv is fused, verify on test images",
        [
            "bireal_larq.export",
            f"--checkpoint={run_dir}",
            f"--output={tflite}",
            f"--verify_dataset={DATASET}",
            f"--verify_samples={FLAGS.verify_samples}",
        ],
        outputs=(tflite,),
    )
    benchmark_json = os.path.join(out, "benchmark.json")
    steps.run(
        "Benchmark the LCE model against its real-valued twin (XNNPACK)",
        [
            "bireal_larq.benchmark",
            tflite,
            "--compare_float",
            "--max_threads=2",
            f"--runs={FLAGS.benchmark_runs}",
            f"--json_output={benchmark_json}",
        ],
        outputs=(benchmark_json,),
    )
    path = write_report(out, steps.log)
    print(f"\nDemo finished in {(time.time() - start) / 60:.1f} min. Report: {path}", flush=True)


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
