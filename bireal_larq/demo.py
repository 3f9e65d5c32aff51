"""The main job end to end on the embedded default (``make demo``).

    python -m bireal_larq.demo --output_dir=runs/demo

Prepares Fashion-MNIST offline, trains a small Bi-Real Net on it (the experiment
``demo_fashion_mnist``), evaluates it, exports it to LCE with the binary check and
verification on real test images, benchmarks it against its real-valued twin, classifies the
test images with the LCE model for the report's pictures (:mod:`bireal_larq.report`), and writes
``OUTPUT_DIR/report.md`` and ``OUTPUT_DIR/report.html`` (the same report as one self-contained
page). Each step is the project's own command, run as a subprocess with its output streamed to
the console; the report lists those exact commands so every number in it can be redone one step
at a time.

The report compares the binary model with its real-valued twin: size and latency are measured
here (the benchmark converts the twin); the twin's accuracy is cited from the committed
Fashion-MNIST study (``results/fashion_mnist.md``), since training the twin would about double
the demo's time.

Rerunning the same command resumes: ``OUTPUT_DIR/steps.json`` records each finished step
(its command, time and outputs), and a step is reused when it finished with the same command,
its outputs are still there and every step before it was reused too; from the first step that
runs again on, every step runs (a killed training run resumes where it stopped, see
:func:`bireal_larq.training.run_training`). Deleting ``steps.json`` redoes every step.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time

from absl import flags

from bireal_larq import cli, report
from bireal_larq.cli import parser_for
from bireal_larq.export import read_report
from bireal_larq.utils import atomic_path, cpu_model

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
    "verify_samples", 10000, "Test images the LCE model is verified on, and classified for the "
    "report's confusion matrix and pictures (0: neither).", lower_bound=0, flag_values=FLAGS,
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


# The committed Fashion-MNIST study (python -m bireal_larq.study --suite=fashion_mnist): its
# real-valued twin row is the twin accuracy the report cites.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_DOC = "results/fashion_mnist.md"
STUDY_RUNS = "results/fashion_mnist_runs"
STUDY_TWIN, STUDY_BINARY = "real_valued_twin", "bireal"
# Switch the binary layers off in the twin; not a difference of recipe.
_TWIN_KEYS = {"input_quantizer", "kernel_quantizer", "weight_clip"}


def _epochs(config: dict) -> int:
    return sum(int(stage.get("epochs", 0)) for stage in config.get("stages", []))


def study_rows(run_config: dict, root: str = ROOT) -> tuple[dict | None, str]:
    """The study's real-valued twin and binary rows for this run's model, and how the study's
    recipe differs from the run's; ``(None, why)`` when there are none to cite."""
    runs = os.path.join(root, STUDY_RUNS)
    try:
        rows, configs = {}, {}
        for name in (STUDY_TWIN, STUDY_BINARY):
            rows[name] = _read(os.path.join(runs, name, "study_row.json"))
            configs[name] = _read(os.path.join(runs, name, "config.json"))
    except (OSError, ValueError) as err:
        return None, (f"the study's rows are not readable here ({err}); see {STUDY_DOC} in the "
                      "repository")
    study = configs[STUDY_BINARY]
    mine = run_config.get("model_overrides") or {}
    theirs = study.get("model_overrides") or {}
    same_model = (
        run_config.get("dataset") == study.get("dataset")
        and run_config.get("model") == study.get("model")
        and mine.get("base_filters") == theirs.get("base_filters")
    )
    if not same_model:
        return None, (f"the study ({STUDY_DOC}) trained `{study.get('model')}` with base_filters "
                      f"{theirs.get('base_filters')} on {study.get('dataset')}, not this model")
    differences = []
    if _epochs(study) != _epochs(run_config):
        differences.append(f"{_epochs(study)} epochs (this run: {_epochs(run_config)})")
    for key in sorted((set(mine) | set(theirs)) - _TWIN_KEYS):
        if mine.get(key) != theirs.get(key):
            differences.append(f"`{key}={theirs.get(key)}` (this run: "
                               f"{'the default' if key not in mine else mine[key]})")
    if study.get("batch_size") != run_config.get("batch_size"):
        differences.append(f"batch {study.get('batch_size')} (this run: "
                           f"{run_config.get('batch_size')})")
    return {
        "doc": STUDY_DOC,
        "runs": STUDY_RUNS,
        "twin": rows[STUDY_TWIN],
        "binary": rows[STUDY_BINARY],
        "differences": differences,
    }, ""


def host() -> dict:
    """This machine, for the report: architecture, CPU model, CPU count, load average."""
    cpu = cpu_model()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"machine": platform.machine(), "cpu": cpu, "cpus": os.cpu_count(), "load": load}


def write_report(
    out: str, log: list[dict], tflite: str | None = None, pictures: bool = True
) -> tuple[str, str]:
    """Gathers the outputs of the steps into ``out/report.md`` and the self-contained
    ``out/report.html``; returns both paths. ``pictures``: the classification step ran (its
    files of an earlier run are ignored otherwise)."""
    run_dir = os.path.join(out, "train")
    tflite = tflite or os.path.join(out, "model.tflite")
    predictions_path = os.path.join(out, report.PREDICTIONS_JSON)
    predictions = (_read(predictions_path) if pictures and os.path.exists(predictions_path)
                   else None)
    try:
        run_config = _read(os.path.join(run_dir, "config.json"))
        study, study_note = study_rows(run_config)
    except (OSError, ValueError) as err:
        study, study_note = None, f"the run's config.json is not readable ({err})"
    figures = {
        "curves": os.path.join("train", "curves.png"),
        "predictions": report.PREDICTIONS_PNG if predictions else None,
        "confusion": report.CONFUSION_PNG if predictions else None,
    }
    facts = {
        "summary": _read(os.path.join(run_dir, "summary.json")),
        "evaluation": _read(os.path.join(run_dir, f"eval_{DATASET}.json")),
        "export": read_report(tflite) or {},
        "benchmark": _read(os.path.join(out, "benchmark.json")),
        "predictions": predictions,
        "predictions_note": "(--verify_samples=0)",
        "study": study,
        "study_note": study_note,
        "host": host(),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "figures": {k: v for k, v in figures.items()
                    if v and os.path.exists(os.path.join(out, v))},
        "tflite": tflite,
        "steps": log,
        "data_dir": os.environ.get("TFDS_DATA_DIR"),
    }
    return report.write_report(report.demo_blocks(facts), out, "report",
                               title="bireal_larq demo report")


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
    if FLAGS.verify_samples:
        steps.run(
            "Classify test images with the LCE model (pictures, confusion matrix)",
            ["bireal_larq.report", tflite, f"--samples={FLAGS.verify_samples}"],
            outputs=tuple(os.path.join(out, name) for name in (
                report.PREDICTIONS_JSON, report.PREDICTIONS_PNG, report.CONFUSION_PNG)),
        )
    path, page = write_report(out, steps.log, tflite, pictures=FLAGS.verify_samples > 0)
    print(f"\nDemo finished in {(time.time() - start) / 60:.1f} min. Report: {path} "
          f"(one-file HTML: {page})", flush=True)


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
